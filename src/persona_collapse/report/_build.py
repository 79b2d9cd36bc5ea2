"""Writing a report folder: ``report.html``, ``figures/*.png|pdf``, ``tables/*.csv|md|tex``."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from ..errors import ConfigError
from ..stats import published_band
from ._figures import FigureFile, write_figures
from ._html import WrittenTable, render_html
from ._results import Progress, StudyResult, analyse_study
from ._study import Study, study_to_toml
from ._table_formats import write_table
from ._tables import report_tables
from ._verdict import FamilyVerdict, family_verdict

REPORT_FILE = "report.html"
STUDY_FILE = "study.toml"


@dataclass(frozen=True)
class ReportOutput:
    """What a report run wrote, and the analysis behind it."""

    folder: Path
    html: Path
    study_file: Path
    figures: tuple[FigureFile, ...]
    tables: tuple[WrittenTable, ...]
    verdicts: tuple[FamilyVerdict, ...]
    result: StudyResult


def _prepare(folder: Path) -> Path:
    if folder.exists() and not folder.is_dir():
        raise ConfigError(f"-o {folder} is a file; give a folder for the report")
    try:
        folder.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise ConfigError(f"cannot create {folder} ({exc.strerror}); choose another -o") from None
    return folder.resolve()


def write_report(
    result: StudyResult, folder: Path, progress: Progress | None = None
) -> ReportOutput:
    """Write figures, tables and the HTML page of an analysed study into ``folder``."""
    say = progress or (lambda _msg: None)
    root = _prepare(folder)
    band = published_band()
    say("drawing figures")
    figures = write_figures(result, root / "figures", band)
    say("writing tables")
    tables = [WrittenTable(t, write_table(t, root / "tables")) for t in report_tables(result, band)]
    verdicts = [family_verdict(f, band) for f in result.families]
    study_file = root / STUDY_FILE
    study_file.write_text(study_to_toml(result.study), encoding="utf-8")
    page = root / REPORT_FILE
    page.write_text(render_html(result, verdicts, figures, tables, root, band), encoding="utf-8")
    say(f"wrote {page}")
    return ReportOutput(
        folder=root,
        html=page,
        study_file=study_file,
        figures=tuple(figures),
        tables=tuple(tables),
        verdicts=tuple(verdicts),
        result=result,
    )


def build_report(
    study: Study, folder: str | Path, progress: Progress | None = None
) -> ReportOutput:
    """Analyse a study and write its report folder."""
    root = _prepare(Path(folder))
    return write_report(analyse_study(study, progress), root, progress)
