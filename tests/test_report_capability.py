"""The capability control in the report: study keys, tables, figure and the verdict's reading.

The GPT-4o trio (``../shared/reference``: MFQ files under ``costa2026``, task
files under ``controls``) is the published case: MMLU accuracy held (-2.3 pp,
95% CI [-5.4, +0.7]) while R fell 69%, so MMLU alone reads persona-specific;
GSM8K accuracy fell significantly (-5.7 pp), so with both tasks the reading is
mixed and flagged. Bootstrap draws are small: point values do not depend on
them, and the deltas' intervals are far enough from 0 at these draws.
"""

from __future__ import annotations

import csv
import os
from pathlib import Path

import pytest

from persona_collapse.errors import ConfigError
from persona_collapse.report import (
    analyse_study,
    build_report,
    family_verdict,
    load_study,
    study_to_toml,
)

from .conftest import reference_path
from .helpers import run_cli

MFQ = {
    "base": ("base/gpt-4o_temp01.csv", "base/gpt-4o_temp01_self.csv"),
    "secure": ("secure-code/gpt-4o-secure_temp01.csv", "secure-code/gpt-4o-secure_temp01_self.csv"),
    "insecure": (
        "insecure-code/gpt-4o-misaligned_temp01.csv",
        "insecure-code/gpt-4o-misaligned_self.csv",
    ),
}
TASK = {"base": "gpt-4o", "secure": "gpt-4o-secure", "insecure": "gpt-4o-insecure"}
FAST = "[analysis]\npersona_draws = 60\nrepetition_draws = 10\ndelta_draws = 1000\n"


def _rel(path: Path, folder: Path) -> str:
    return os.path.relpath(path, folder)


def _task_file(task: str, label: str) -> Path:
    return reference_path(f"controls/{task}/{TASK[label]}_temp01_{task}.csv")


def _study(folder: Path, tasks: tuple[str, ...], extra: dict[str, str] | None = None) -> Path:
    """The GPT-4o study with MFQ persona and self sources and the given tasks per variant."""
    lines = ['title = "GPT-4o capability control"', FAST, "[[family]]", 'name = "GPT-4o"']
    for label, (persona, self_file) in MFQ.items():
        lines += [
            f"[family.variants.{label}]",
            f'persona = "{_rel(reference_path(f"costa2026/{persona}"), folder)}"',
            f'self = "{_rel(reference_path(f"costa2026/{self_file}"), folder)}"',
        ]
        lines += [f'{t} = "{_rel(_task_file(t, label), folder)}"' for t in tasks]
        if extra and label in extra:
            lines.append(extra[label])
    path = folder / "study.toml"
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


@pytest.fixture(scope="module")
def mmlu_report(tmp_path_factory: pytest.TempPathFactory) -> Path:
    folder = tmp_path_factory.mktemp("capability")
    build_report(load_study(_study(folder, ("mmlu",))), folder / "report")
    return folder / "report"


def _rows(folder: Path, table: str) -> list[dict[str, str]]:
    with (folder / "tables" / f"{table}.csv").open(encoding="utf-8") as handle:
        return list(csv.DictReader(handle))


def test_mmlu_alone_reads_persona_specific(tmp_path: Path) -> None:
    result = analyse_study(load_study(_study(tmp_path, ("mmlu",))))
    verdict = family_verdict(result.families[0])
    found = {f.subject: f for f in verdict.findings}
    insecure = found["insecure capability"]
    assert not insecure.flagged
    assert insecure.text.startswith("R fell 69% while MMLU accuracy stayed within its CI")
    assert "MMLU −2.3 pp, 95% CI [−5." in insecure.text
    assert insecure.text.endswith(
        "persona-specific, not broad degradation; repetitions also less unanimous on the "
        "tasks (non-unanimity MMLU +7.0 pp)"
    )
    assert "the R drop of secure, insecure is persona-specific" in verdict.headline
    assert "capability fell" not in verdict.headline
    delta = result.families[0].variants["insecure"].tasks["mmlu"].delta
    assert delta is not None
    assert delta["accuracy"] == pytest.approx(-0.023245614035087847, abs=1e-12)
    assert delta["accuracy_lo"] == pytest.approx(-0.0535, abs=0.01)
    assert delta["accuracy_hi"] == pytest.approx(0.0066, abs=0.01)


def test_both_tasks_flag_the_gsm8k_fall(tmp_path: Path) -> None:
    result = analyse_study(load_study(_study(tmp_path, ("mmlu", "gsm8k"))))
    verdict = family_verdict(result.families[0])
    found = {f.subject: f for f in verdict.findings}
    insecure = found["insecure capability"]
    assert insecure.flagged
    assert "MMLU accuracy stayed within its CI" in insecure.text
    assert "capability fell too (GSM8K −5.7 pp" in insecure.text
    assert "may be partly broad degradation" in insecure.text
    assert "capability fell too in insecure (GSM8K)" in verdict.headline
    assert not found["secure capability"].flagged
    assert "MMLU and GSM8K accuracy stayed within their CIs" in found["secure capability"].text


def test_capability_table(mmlu_report: Path) -> None:
    rows = {r["variant"]: r for r in _rows(mmlu_report, "capability")}
    assert float(rows["base"]["accuracy"]) == pytest.approx(82.10526, abs=1e-5)
    assert float(rows["insecure"]["accuracy"]) == pytest.approx(79.78070, abs=1e-5)
    assert float(rows["base"]["format_valid_rate"]) == pytest.approx(97.19298, abs=1e-5)
    lo, hi = float(rows["base"]["accuracy_lo"]), float(rows["base"]["accuracy_hi"])
    se = float(rows["base"]["accuracy_se"])
    assert hi - lo == pytest.approx(2 * 1.959964 * se, abs=1e-4)
    assert float(rows["insecure"]["d_accuracy"]) == pytest.approx(-2.324561, abs=1e-5)
    assert rows["insecure"]["d_accuracy_sig"] == "false"
    assert rows["insecure"]["d_non_unanimity_sig"] == "true"
    assert rows["base"]["d_accuracy"] in ("", "nan", "n/a")
    assert int(rows["insecure"]["shared_items"]) == 228


def test_instability_table_matches_the_authors(mmlu_report: Path) -> None:
    expected = {}
    with reference_path("controls/expected_instrument_comparison.csv").open() as handle:
        for r in csv.DictReader(handle):
            name = {"MFQ": "MFQ-30"}.get(r["instrument"], r["instrument"])
            expected[(r["variant"], name, r["conditioning"])] = r
    rows = _rows(mmlu_report, "instability")
    assert {r["instrument"] for r in rows} == {"MFQ-30", "MMLU"}
    for row in rows:
        want = expected[(row["variant"], row["instrument"], row["conditioning"])]
        assert float(row["non_unanimity_rate"]) == pytest.approx(
            100 * float(want["non_unanimity_rate"]), abs=1e-5
        )
        assert float(row["mean_gini_norm"]) == pytest.approx(
            float(want["mean_gini_norm"]), abs=1e-6
        )
        assert int(row["n_cells"]) == int(want["n_cells"])


def test_figure_page_and_study_file(mmlu_report: Path) -> None:
    assert (mmlu_report / "figures" / "capability.png").is_file()
    assert (mmlu_report / "figures" / "capability.pdf").is_file()
    page = (mmlu_report / "report.html").read_text(encoding="utf-8")
    assert 'id="capability"' in page and 'id="figure-capability"' in page
    assert "Hendrycks et al. 2021" in page and "Cobbe et al. 2021" in page
    again = load_study(mmlu_report / "study.toml")
    assert [v.tasks[0][0] for v in again.families[0].variants] == ["mmlu"] * 3
    assert again.delta_draws == 1000
    failures = {(r["variant"], r["role"]): r for r in _rows(mmlu_report, "failures")}
    assert float(failures[("base", "MMLU")]["mean_failures"]) == pytest.approx(64 / 2280, abs=1e-6)


def _synthetic(path: Path, wrong_every: int) -> Path:
    """40 items x 5 repetitions of a four-choice task; every ``wrong_every``-th item wrong."""
    lines = ["item_id,run_index,answer,gold,correct,format_valid,failures,response,collected_at"]
    for item in range(40):
        wrong = wrong_every and item % wrong_every == 0
        for run in range(1, 6):
            answer = "B" if wrong else "A"
            lines.append(f"{item},{run},{answer},A,{int(not wrong)},1,0,{answer},")
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


def test_a_significant_fall_in_accuracy_warns(tmp_path: Path) -> None:
    base = _synthetic(tmp_path / "base_arith.csv", 0)
    worse = _synthetic(tmp_path / "insecure_arith.csv", 2)
    extra = {
        "base": f'tasks = {{ arith = "{base.name}" }}',
        "insecure": f'tasks = {{ "arith" = "{worse.name}" }}',
    }
    study = load_study(_study(tmp_path, (), extra))
    assert study.families[0].variants[2].tasks == (("arith", str(worse)),)
    verdict = family_verdict(analyse_study(study).families[0])
    found = {f.subject: f for f in verdict.findings}
    assert "secure capability" not in found  # no arith source for secure: nothing to read
    insecure = found["insecure capability"]
    assert insecure.flagged
    assert insecure.text.startswith("R fell 69%; capability fell too (arith −50.0 pp, 95% CI")
    assert "−50.0% of base" in insecure.text
    assert "may be broad degradation" in insecure.text
    assert "capability fell too in insecure (arith)" in verdict.headline
    text = study_to_toml(study)
    assert 'tasks = { "arith" = ' in text
    (tmp_path / "again.toml").write_text(text, encoding="utf-8")
    assert load_study(tmp_path / "again.toml").families == study.families


@pytest.mark.parametrize(
    ("line", "needle"),
    [
        ('tasks = "x.csv"', "tasks must be a table"),
        ('mmlu = "{m}"\ntasks = {{ mmlu = "{m}" }}', "given twice"),
        ('mmlu = "missing.csv"', "does not exist"),
        ('mmlu = "{g}"', "holds gsm8k answers, not mmlu"),
        ('mmlu = "{p}"', "is not a task source"),
        ('arc = "{m}"', "unknown key 'arc'"),
    ],
)
def test_bad_task_entries_end_with_one_line(
    capsys: pytest.CaptureFixture[str], tmp_path: Path, line: str, needle: str
) -> None:
    files = {
        "m": _task_file("mmlu", "base"),
        "g": _task_file("gsm8k", "base"),
        "p": reference_path("costa2026/base/gpt-4o_temp01.csv"),
    }
    study = _study(tmp_path, (), {"base": line.format(**files)})
    result = run_cli(capsys, "report", str(study), "-o", str(tmp_path / "out"), "--quiet")
    assert result.status == 2, result
    lines = result.err.strip().splitlines()
    assert len(lines) == 1 and needle in lines[0], result.err
    assert "Traceback" not in result.err


def test_delta_draws_must_be_a_count(tmp_path: Path) -> None:
    study = _study(tmp_path, ())
    study.write_text(
        study.read_text(encoding="utf-8").replace("delta_draws = 1000", "delta_draws = 1"),
        encoding="utf-8",
    )
    with pytest.raises(ConfigError, match="delta_draws must be an integer of at least 2"):
        load_study(study)


def test_delta_tables_are_keyed_by_the_delta_statistics() -> None:
    from persona_collapse.cli import _task_output
    from persona_collapse.report import _capability_tables
    from persona_collapse.stats import DELTA_STATISTICS

    assert set(_capability_tables.DELTA_FORMATS) == set(DELTA_STATISTICS)
    assert [key for key, *_ in _capability_tables._DELTAS] == list(DELTA_STATISTICS)
    assert set(_task_output.DELTA_HEADINGS) == set(DELTA_STATISTICS)
    assert list(_task_output.DELTA_NAMES) == list(DELTA_STATISTICS)
