"""Reports, figures, tables, ``reproduce`` and the offline ``demo``.

The GPT-4o study of the published data (``../shared/reference``) is reported
once per module with reduced bootstrap draws: the point estimates (S, R) do
not depend on them, and the SEs are not what these tests check.
"""

from __future__ import annotations

import contextlib
import csv
import hashlib
import io
import json
import os
import re
import shutil
import sqlite3
import subprocess
import sys
import time
from dataclasses import dataclass
from html.parser import HTMLParser
from pathlib import Path
from typing import Any

import pytest

from persona_collapse.cli import invoke as main

from .conftest import reference_path
from .helpers import run_cli

FAST = ("--persona-draws", "60", "--repetition-draws", "10", "--quiet")
VARIANT_FILES = {
    "base": ("base/gpt-4o_temp01.csv", "base/gpt-4o_temp01_self.csv"),
    "secure": ("secure-code/gpt-4o-secure_temp01.csv", "secure-code/gpt-4o-secure_temp01_self.csv"),
    "insecure": (
        "insecure-code/gpt-4o-misaligned_temp01.csv",
        "insecure-code/gpt-4o-misaligned_self.csv",
    ),
}
EXPECTED_S = {"base": 0.79, "secure": 0.72, "insecure": 1.68}
EXPECTED_R = {"base": 9.75, "secure": 5.56, "insecure": 3.05}
FIGURES = {
    "s_and_r",
    "relative_change",
    "sigma_bar_change",
    "foundation_changes",
    "self_profile_radar",
    "toxic_profile_radar",
    "heatmap_gpt-4o",
    "answer_distribution",
    "scale_usage",
}
TABLES = {
    "metrics",
    "metrics_by_foundation",
    "changes",
    "changes_by_foundation",
    "excess",
    "summary",
    "scale_usage",
    "self_profiles",
    "toxic_profiles",
    "failures",
    "provenance",
}
VOID = {"meta", "img", "br", "hr", "link", "input", "source", "col", "wbr", "area", "base"}


def _invoke(*argv: str) -> tuple[int, str, str]:
    """The command line in-process, outside pytest's capture (for module-scoped fixtures)."""
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        try:
            status = main(list(argv))
        except SystemExit as exc:
            status = int(exc.code or 0)
    return status, out.getvalue(), err.getvalue()


def _write_study(folder: Path, *, toxic: bool = True) -> Path:
    """The GPT-4o study, with sources relative to the study file (as users write them)."""
    lines = ['title = "GPT-4o: base, secure and insecure"', "", "[[family]]", 'name = "GPT-4o"']
    for label, (persona, self_file) in VARIANT_FILES.items():
        rel_p = os.path.relpath(reference_path(f"costa2026/{persona}"), folder)
        rel_s = os.path.relpath(reference_path(f"costa2026/{self_file}"), folder)
        lines += [f"[family.variants.{label}]", f'persona = "{rel_p}"', f'self = "{rel_s}"']
        if toxic and label == "insecure":
            # Any persona-mode file exercises the toxic radar; the published toxic-persona
            # responses are not part of the reference data.
            lines.append(f'toxic = "{rel_p}"')
    path = folder / "study.toml"
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


@dataclass
class Report:
    folder: Path
    stdout: str
    html: str


@pytest.fixture(scope="module")
def gpt4o_report(tmp_path_factory: pytest.TempPathFactory) -> Report:
    base = tmp_path_factory.mktemp("gpt4o")
    study = _write_study(base)
    out = base / "report"
    status, stdout, stderr = _invoke("report", str(study), "-o", str(out), *FAST)
    assert status == 0, stderr
    return Report(out, stdout, (out / "report.html").read_text(encoding="utf-8"))


# -- HTML parsing -------------------------------------------------------------------


class _Page(HTMLParser):
    """Collects references, ids, table cells (by ``data-column``) and nesting errors."""

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.refs: list[str] = []
        self.ids: set[str] = set()
        self.stack: list[str] = []
        self.errors: list[str] = []
        self.scripts = 0
        self.cells: dict[str, list[dict[str, str]]] = {}
        self._table: str | None = None
        self._row: dict[str, str] | None = None
        self._column: str | None = None

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        a = {k: v or "" for k, v in attrs}
        if tag == "script":
            self.scripts += 1
        for key in ("src", "href"):
            if key in a:
                self.refs.append(a[key])
        if "id" in a:
            if a["id"] in self.ids:
                self.errors.append(f"duplicate id {a['id']}")
            self.ids.add(a["id"])
        if tag == "table":
            self._table = a.get("id", "")
            self.cells[self._table] = []
        elif tag == "tr" and self._table is not None:
            self._row = {}
        elif tag == "td" and self._row is not None:
            self._column = a.get("data-column", "")
            self._row[self._column] = ""
        if tag not in VOID:
            self.stack.append(tag)

    def handle_endtag(self, tag: str) -> None:
        if tag in VOID:
            return
        if not self.stack or self.stack[-1] != tag:
            self.errors.append(f"</{tag}> does not close <{self.stack[-1] if self.stack else ''}>")
            return
        self.stack.pop()
        if tag == "td":
            self._column = None
        elif tag == "tr" and self._row is not None and self._table is not None:
            if self._row:
                self.cells[self._table].append(self._row)
            self._row = None
        elif tag == "table":
            self._table = None

    def handle_data(self, data: str) -> None:
        if self._row is not None and self._column is not None:
            self._row[self._column] += data


def _parse(text: str) -> _Page:
    page = _Page()
    page.feed(text)
    page.close()
    return page


def _number(text: str) -> float:
    return float(text.split("±")[0].strip().replace("−", "-"))


# -- the GPT-4o report --------------------------------------------------------------


def test_report_tables_show_published_s_and_r(gpt4o_report: Report) -> None:
    with (gpt4o_report.folder / "tables" / "metrics.csv").open(encoding="utf-8") as handle:
        rows = {r["variant"]: r for r in csv.DictReader(handle) if r["family"] == "GPT-4o"}
    assert set(rows) == set(EXPECTED_S)
    for label in EXPECTED_S:
        assert round(float(rows[label]["S"]), 2) == EXPECTED_S[label]
        assert round(float(rows[label]["R"]), 2) == EXPECTED_R[label]
        assert rows[label]["personas"] == "100"
    assert rows["insecure"]["outside_band"] == "true"
    assert rows["base"]["outside_band"] == "false"
    assert rows["insecure"]["left_band"] == "true" and rows["base"]["left_band"] == ""


def test_report_html_shows_published_s_and_r(gpt4o_report: Report) -> None:
    page = _parse(gpt4o_report.html)
    rows = {r["variant"]: r for r in page.cells["table-metrics"]}
    for label in EXPECTED_S:
        assert rows[label]["S"].startswith(f"{EXPECTED_S[label]:.2f} ± ")
        assert _number(rows[label]["R"]) == EXPECTED_R[label]
    assert "persona collapse in insecure" in gpt4o_report.html
    assert "GPT-4o: persona collapse in insecure" in gpt4o_report.stdout


def test_report_html_is_valid_self_contained_and_its_references_exist(gpt4o_report: Report) -> None:
    text = gpt4o_report.html
    assert text.startswith("<!DOCTYPE html>")
    page = _parse(text)
    assert page.errors == []
    assert page.stack == []
    assert page.scripts == 0
    assert not re.search(r"""(src|href)=["']?(https?:)?//""", text), "external resource"
    assert "@import" not in text and "url(" not in text
    images = [r for r in page.refs if r.startswith("data:image/png;base64,")]
    assert len(images) == len(FIGURES)
    for ref in page.refs:
        if ref.startswith("data:"):
            continue
        if ref.startswith("#"):
            assert ref[1:] in page.ids, ref
            continue
        assert (gpt4o_report.folder / ref).is_file(), ref


def test_report_writes_every_figure_as_png_and_pdf(gpt4o_report: Report) -> None:
    figures = gpt4o_report.folder / "figures"
    assert {p.stem for p in figures.glob("*.png")} == FIGURES
    assert {p.stem for p in figures.glob("*.pdf")} == FIGURES
    for name in FIGURES:
        assert (figures / f"{name}.png").read_bytes().startswith(b"\x89PNG\r\n\x1a\n")
        assert (figures / f"{name}.pdf").read_bytes().startswith(b"%PDF")


def test_report_writes_every_table_in_three_formats(gpt4o_report: Report) -> None:
    tables = gpt4o_report.folder / "tables"
    for ext in ("csv", "md", "tex"):
        assert {p.stem for p in tables.glob(f"*.{ext}")} == TABLES, ext
    md = (tables / "metrics.md").read_text(encoding="utf-8")
    assert "| GPT-4o | insecure | 100 | 1.68 ± " in md
    tex = (tables / "metrics.tex").read_text(encoding="utf-8")
    assert "\\begin{tabular}" in tex and "\\bottomrule" in tex
    assert "1.68 $\\pm$ " in tex


def test_report_changes_and_excess(gpt4o_report: Report, published: dict[str, Any]) -> None:
    with (gpt4o_report.folder / "tables" / "changes.csv").open(encoding="utf-8") as handle:
        rows = {r["variant"]: r for r in csv.DictReader(handle)}
    # (R_insecure - R_base) / R_base from the published exact values.
    exact = {(v["model"], v["variant"]): v["exact"] for v in published["variants"]}
    base, ins = exact[("GPT-4o", "base")], exact[("GPT-4o", "insecure")]
    assert float(rows["insecure"]["dR"]) == pytest.approx((ins["R"] / base["R"] - 1) * 100, 1e-6)
    assert float(rows["insecure"]["dR_se"]) > 0
    assert (gpt4o_report.folder / "tables" / "excess.csv").read_text().count("GPT-4o") == 6


def test_report_provenance_and_failures(gpt4o_report: Report) -> None:
    with (gpt4o_report.folder / "tables" / "provenance.csv").open(encoding="utf-8") as handle:
        rows = list(csv.DictReader(handle))
    assert len(rows) == 7  # 3 persona + 3 self + 1 toxic
    base = next(r for r in rows if r["variant"] == "base" and r["role"] == "persona")
    ref = reference_path("costa2026/base/gpt-4o_temp01.csv")
    assert base["file"] == ref.name
    assert base["sha256"] == hashlib.sha256(ref.read_bytes()).hexdigest()
    with (gpt4o_report.folder / "tables" / "failures.csv").open(encoding="utf-8") as handle:
        fails = {(r["variant"], r["role"]): r for r in csv.DictReader(handle)}
    assert float(fails[("insecure", "persona")]["mean_failures"]) == pytest.approx(0.54, abs=0.01)
    assert 0.0 <= float(fails[("base", "persona")]["missing_share"]) < 0.01
    assert "Provenance and failures" in gpt4o_report.html


def test_report_self_profile_matches_published(
    gpt4o_report: Report, published: dict[str, Any]
) -> None:
    with (gpt4o_report.folder / "tables" / "self_profiles.csv").open(encoding="utf-8") as handle:
        rows = {r["variant"]: r for r in csv.DictReader(handle)}
    for entry in published["self_profiles"]:
        if entry["model"] != "GPT-4o":
            continue
        for foundation, v in entry["foundations"].items():
            row = rows[entry["variant"]]
            assert float(row[foundation]) == pytest.approx(v["mean"], abs=1e-6)
            assert float(row[f"{foundation}_sd"]) == pytest.approx(v["sd"], abs=1e-6)


# -- the browser ----------------------------------------------------------------------


def test_report_renders_in_headless_chromium_without_console_errors(
    gpt4o_report: Report, tmp_path: Path
) -> None:
    chromium = shutil.which("chromium") or shutil.which("chromium-browser")
    if chromium is None:
        print("chromium is not installed: skipping the browser test")
        pytest.skip("chromium is not installed (apt-get install chromium)")
    shot = tmp_path / "report.png"
    cmd = [
        chromium,
        "--headless",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-quic",
        "--no-first-run",
        "--disable-background-networking",
        "--disable-component-update",
        "--disable-sync",
        f"--user-data-dir={tmp_path / 'profile'}",
        "--enable-logging=stderr",
        "--v=0",
        f"--screenshot={shot}",
        "--window-size=1280,2000",
        (gpt4o_report.folder / "report.html").resolve().as_uri(),
    ]
    done = subprocess.run(cmd, capture_output=True, text=True, timeout=180, check=False)
    log = done.stdout + done.stderr
    console = [
        line
        for line in log.splitlines()
        if "CONSOLE" in line or "Uncaught" in line or "Failed to load resource" in line
    ]
    assert console == [], "\n".join(console)
    assert done.returncode == 0, log[-2000:]
    assert shot.is_file() and shot.read_bytes().startswith(b"\x89PNG")
    assert shot.stat().st_size > 10_000


# -- reproduce ----------------------------------------------------------------------

_HEADLINE = re.compile(
    r"dS ([+-][\d.]+)%, dR ([+-][\d.]+)%, dsigma_bar ([+-][\d.]+)% "
    r"\(max ([+-][\d.]+)% ([^)]+)\), excess ([+-]?[\d.]+) pp"
)


def test_reproduce_prints_the_paper_headline(
    capsys: pytest.CaptureFixture[str], tmp_path: Path, published: dict[str, Any]
) -> None:
    data = reference_path("costa2026")
    result = run_cli(capsys, "reproduce", "--data", str(data), "-o", str(tmp_path / "out"), *FAST)
    assert result.status == 0, result.err
    match = _HEADLINE.search(result.out)
    assert match, result.out
    head = published["headline"]
    d_s, d_r, d_sigma, top, top_family, excess = match.groups()
    assert float(d_s) == pytest.approx(head["mean_dS_insecure_pct"], abs=0.1)
    assert float(d_r) == pytest.approx(head["mean_dR_insecure_pct"], abs=0.1)
    assert float(d_sigma) == pytest.approx(head["mean_dsigma_bar_insecure_pct"], abs=0.1)
    assert float(top) == pytest.approx(head["max_dsigma_bar_insecure_pct"]["value"], abs=0.1)
    assert top_family == head["max_dsigma_bar_insecure_pct"]["model"]
    assert float(excess) == pytest.approx(
        head["mean_excess_dsigma_bar_insecure_minus_secure_pp"], abs=0.1
    )
    out = tmp_path / "out"
    assert (out / "report.html").is_file()
    with (out / "tables" / "summary.csv").open(encoding="utf-8") as handle:
        summary = {r["variant"]: r for r in csv.DictReader(handle)}
    cv = head["per_foundation_cv_population"]
    assert float(summary["insecure"]["cv_S"]) == pytest.approx(cv["S"]["insecure"], abs=0.005)
    assert float(summary["secure"]["cv_S"]) == pytest.approx(cv["S"]["secure"], abs=0.005)
    families = {p.stem for p in (out / "figures").glob("heatmap_*.png")}
    assert families == {
        "heatmap_deepseek-v3.1",
        "heatmap_gpt-4.1",
        "heatmap_gpt-4o",
        "heatmap_qwen3-235b",
    }


def test_reproduce_classifies_published_file_names() -> None:
    from persona_collapse.report import classify

    def c(name: str) -> tuple[str, str, str] | None:
        got = classify(Path(name))
        return None if got is None else (got.family, got.variant, got.mode)

    assert c("deepseek-v3.1-insecure_temp01.csv") == ("DeepSeek-V3.1", "insecure", "persona")
    assert c("gpt-4o-misaligned_self.csv") == ("GPT-4o", "insecure", "self")
    assert c("gpt-4.1-secure_temp01_self.csv") == ("GPT-4.1", "secure", "self")
    assert c("qwen3-235b_self.csv") == ("Qwen3-235B", "base", "self")
    assert c("gpt-4o_temp01.csv") == ("GPT-4o", "base", "persona")
    assert c("llama-9-secure_temp01.csv") == ("llama-9", "secure", "persona")
    assert c("notes.csv") is None


def test_reproduce_bad_data_folder_is_one_line(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    for data in (tmp_path / "missing", tmp_path):
        result = run_cli(capsys, "reproduce", "--data", str(data), "-o", str(tmp_path / "o"))
        assert result.status == 2
        assert len(result.err.strip().splitlines()) == 1, result.err
        assert "Traceback" not in result.err


# -- bad study files ------------------------------------------------------------------


def _study_text(tmp: Path, body: str) -> Path:
    path = tmp / "bad.toml"
    path.write_text(body, encoding="utf-8")
    return path


@pytest.mark.parametrize(
    ("body", "needle"),
    [
        ('title = "x"\n', "no [[family]]"),
        ('[[family]]\nname = "A"\n[family.variants.insecure]\npersona = "{p}"\n', "no base"),
        ('[[family]]\nname = "A"\n[family.variants.base]\nself = "{s}"\n', "missing persona"),
        ('colour = "red"\n[[family]]\nname = "A"\n', "unknown key 'colour'"),
        (
            '[[family]]\nname = "A"\nmodel = "x"\n[family.variants.base]\npersona = "{p}"\n',
            "unknown key 'model'",
        ),
        (
            '[[family]]\nname = "A"\n[family.variants.base]\npersona = "{p}"\nbase = "{p}"\n',
            "unknown key 'base'",
        ),
        (
            '[analysis]\nseeds = 1\n[[family]]\nname = "A"\n[family.variants.base]\npersona = "{p}"\n',
            "unknown key 'seeds'",
        ),
        ('[[family]]\nname = "A"\n[family.variants.base]\npersona = "nope.csv"\n', "nope.csv"),
        (
            '[[family]]\nname = "A"\n[family.variants.base]\npersona = "gone.db:run"\n',
            "gone.db",
        ),
        ("[[family]\n", "not valid TOML"),
        ('[[family]]\n[family.variants.base]\npersona = "{p}"\n', "missing name"),
        (
            '[[family]]\nname = "A"\n[family.variants.base]\npersona = "{s}"\n',
            "self-mode responses",
        ),
        (
            '[[family]]\nname = "A"\n[family.variants.base]\npersona = "{p}"\n'
            '[[family]]\nname = "A"\n[family.variants.base]\npersona = "{p}"\n',
            "appears twice",
        ),
    ],
)
def test_bad_study_files_end_with_one_line(
    capsys: pytest.CaptureFixture[str], tmp_path: Path, body: str, needle: str
) -> None:
    persona = reference_path("costa2026/base/gpt-4o_temp01.csv")
    self_file = reference_path("costa2026/base/gpt-4o_temp01_self.csv")
    study = _study_text(tmp_path, body.format(p=persona, s=self_file))
    result = run_cli(capsys, "report", str(study), "-o", str(tmp_path / "out"), "--quiet")
    assert result.status == 2, result
    lines = result.err.strip().splitlines()
    assert len(lines) == 1, result.err
    assert needle in lines[0], lines[0]
    assert "Traceback" not in result.err
    assert not (tmp_path / "out" / "report.html").exists()


def test_missing_study_file_is_one_line(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    result = run_cli(capsys, "report", str(tmp_path / "none.toml"), "-o", str(tmp_path / "o"))
    assert result.status == 2
    assert len(result.err.strip().splitlines()) == 1
    assert "does not exist" in result.err


def test_study_round_trips_through_toml(tmp_path: Path) -> None:
    from persona_collapse.report import load_study, study_to_toml

    study = load_study(_write_study(tmp_path))
    assert [v.label for v in study.families[0].variants] == ["base", "secure", "insecure"]
    assert study.families[0].variants[2].toxic is not None
    again = tmp_path / "again.toml"
    again.write_text(study_to_toml(study), encoding="utf-8")
    assert load_study(again).families == study.families


# -- labels, file names, study.toml and CSV cells from any user input ---------------------

TRICKY_TITLE = 'A "quoted" title\nwith a newline, a \\ backslash, a tab\t, ünïcode 😀 and $x$'


def _small_csv(src: str, dst: Path, n_personas: int = 8) -> str:
    """The first ``n_personas`` personas of a published file (fast to report on)."""
    import pandas as pd

    frame = pd.read_csv(reference_path(f"costa2026/{src}"))
    frame = frame[frame["persona_id"].isin(sorted(frame["persona_id"].unique())[:n_personas])]
    frame.to_csv(dst, index=False)
    return dst.name


@pytest.fixture(scope="module")
def tricky_report(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A report whose family and variant names are mathtext, formulas and near-duplicates."""
    folder = tmp_path_factory.mktemp("tricky")
    base = _small_csv(VARIANT_FILES["base"][0], folder / "b.csv")
    insecure = _small_csv(VARIANT_FILES["insecure"][0], folder / "i.csv")
    study = folder / "study.toml"
    study.write_text(
        f"title = {json.dumps(TRICKY_TITLE, ensure_ascii=False)}\n"
        '[[family]]\nname = "$\\\\frac{1}{$"\n'
        f'[family.variants.base]\npersona = "{base}"\n'
        f'[family.variants."=cmd|x"]\npersona = "{insecure}"\n'
        f'[family.variants."@sum $y$"]\npersona = "{insecure}"\n'
        f'[[family]]\nname = "GPT-4o"\n[family.variants.base]\npersona = "{base}"\n'
        f'[[family]]\nname = "gpt 4o"\n[family.variants.base]\npersona = "{base}"\n',
        encoding="utf-8",
    )
    out = folder / "report"
    status, _, stderr = _invoke("report", str(study), "-o", str(out), *FAST)
    assert status == 0, stderr
    return out


def test_mathtext_labels_are_drawn_literally(tricky_report: Path) -> None:
    html = (tricky_report / "report.html").read_text(encoding="utf-8")
    assert "$\\frac{1}{$" in html
    figures = sorted(p.name for p in (tricky_report / "figures").glob("*.png"))
    assert "s_and_r.png" in figures and "answer_distribution.png" in figures


def test_families_differing_by_case_or_punctuation_get_their_own_figures(
    tricky_report: Path,
) -> None:
    heatmaps = sorted((tricky_report / "figures").glob("heatmap_*.png"))
    assert len(heatmaps) == 3, heatmaps
    assert len({p.stem for p in heatmaps}) == 3
    assert sum(p.stem.startswith("heatmap_gpt-4o") for p in heatmaps) == 2


def test_copied_study_file_is_valid_toml_for_any_title(tricky_report: Path) -> None:
    import tomllib

    from persona_collapse.report import load_study

    copied = tricky_report / "study.toml"
    data = tomllib.loads(copied.read_text(encoding="utf-8"))
    assert data["title"] == TRICKY_TITLE
    study = load_study(copied)
    assert study.title == TRICKY_TITLE
    assert [f.name for f in study.families] == ["$\\frac{1}{$", "GPT-4o", "gpt 4o"]
    assert [v.label for v in study.families[0].variants] == ["base", "=cmd|x", "@sum $y$"]


def test_csv_text_cells_are_neutralised_and_numbers_stay_numbers(tricky_report: Path) -> None:
    with (tricky_report / "tables" / "changes.csv").open(encoding="utf-8") as handle:
        rows = list(csv.DictReader(handle))
    texts = [v for row in rows for v in row.values()]
    assert "'=cmd|x" in texts and "'@sum $y$" in texts
    assert not any(t.startswith(("=", "+", "@")) for t in texts)
    negatives = [t for t in texts if t.startswith("-")]
    assert negatives and all(float(t) < 0 for t in negatives)


def test_plain_families_differing_by_case_get_their_own_heatmaps(tmp_path: Path) -> None:
    base = _small_csv(VARIANT_FILES["base"][0], tmp_path / "b.csv", n_personas=5)
    study = tmp_path / "study.toml"
    study.write_text(
        "".join(
            f'[[family]]\nname = "{name}"\n[family.variants.base]\npersona = "{base}"\n'
            for name in ("GPT-4o", "gpt_4o", "Other")
        ),
        encoding="utf-8",
    )
    status, _, stderr = _invoke("report", str(study), "-o", str(tmp_path / "r"), *FAST)
    assert status == 0, stderr
    stems = {p.stem for p in (tmp_path / "r" / "figures").glob("heatmap_*.png")}
    assert len(stems) == 3 and "heatmap_other" in stems, stems


def test_csv_cells_that_start_like_formulas_are_neutralised() -> None:
    from persona_collapse.report import Column, Table, to_csv

    table = Table(
        "t",
        "caption",
        (Column("name"), Column("value")),
        [["=1+2", -0.5], ["+x", 1.0], ["-cmd", None], ["@SUM(A1)", 2.0], ["-0.25", 3.0]],
    )
    rows = list(csv.reader(io.StringIO(to_csv(table))))[1:]
    assert [r[0] for r in rows] == ["'=1+2", "'+x", "'-cmd", "'@SUM(A1)", "-0.25"]
    assert rows[0][1] == "-0.500000"


def test_study_toml_round_trips_any_title(tmp_path: Path) -> None:
    import tomllib
    from dataclasses import replace

    from persona_collapse.report import load_study, study_to_toml

    study = replace(load_study(_write_study(tmp_path)), title=TRICKY_TITLE + "\x01\x7f")
    text = study_to_toml(study)
    assert tomllib.loads(text)["title"] == TRICKY_TITLE + "\x01\x7f"
    again = tmp_path / "again.toml"
    again.write_text(text, encoding="utf-8")
    assert load_study(again).title == study.title


def test_report_verdict_says_the_base_is_already_outside_the_band(tmp_path: Path) -> None:
    base = reference_path("costa2026/base/qwen3-235b_temp01.csv")
    insecure = reference_path("costa2026/insecure-code/qwen3-235b-misaligned_temp01.csv")
    study = tmp_path / "study.toml"
    study.write_text(
        f'[[family]]\nname = "Qwen3"\n[family.variants.base]\npersona = "{base}"\n'
        f'[family.variants.insecure]\npersona = "{insecure}"\n',
        encoding="utf-8",
    )
    status, stdout, stderr = _invoke("report", str(study), "-o", str(tmp_path / "r"), *FAST)
    assert status == 0, stderr
    assert "already lies outside the band" in stdout
    with (tmp_path / "r" / "tables" / "metrics.csv").open(encoding="utf-8") as handle:
        rows = {r["variant"]: r for r in csv.DictReader(handle)}
    assert rows["insecure"]["outside_band"] == "true" and rows["insecure"]["left_band"] == "false"
    html = (tmp_path / "r" / "report.html").read_text(encoding="utf-8")
    assert "already outside the band" in html and "its base is outside too" in html


# -- the offline demo -----------------------------------------------------------------


def _offline_env() -> dict[str, str]:
    """No API keys; any connection that is not to the loopback goes to a dead proxy."""
    env = {k: v for k, v in os.environ.items() if not k.endswith("_API_KEY")}
    for var in ("HTTP_PROXY", "HTTPS_PROXY", "ALL_PROXY", "http_proxy", "https_proxy", "all_proxy"):
        env[var] = "http://127.0.0.1:9"
    env["NO_PROXY"] = env["no_proxy"] = "127.0.0.1,localhost"
    env["PERSONA_COLLAPSE_PERSONAHUB"] = "/nonexistent/personas.json"
    return env


def test_demo_completes_offline(tmp_path: Path) -> None:
    out = tmp_path / "demo"
    cmd = [sys.executable, "-m", "persona_collapse", "demo", "-o", str(out)]
    cmd += ["--n-personas", "8", "--reps", "3", "--concurrency", "16"]
    start = time.perf_counter()
    done = subprocess.run(
        cmd, capture_output=True, text=True, env=_offline_env(), timeout=300, check=False
    )
    elapsed = time.perf_counter() - start
    assert done.returncode == 0, done.stderr[-3000:]
    assert "[SIMULATED]" in done.stdout
    assert "collecting insecure" in done.stderr  # progress is shown
    html = (out / "report.html").read_text(encoding="utf-8")
    assert "SIMULATED data" in html
    assert _parse(html).errors == []
    # the three diagnostics: scale usage, the corrected S next to S, KL from base
    assert 'id="figure-scale_usage"' in html and 'id="table-scale_usage"' in html
    metrics = _parse(html).cells["table-metrics"]
    assert all(_number(r["S_corrected"]) <= _number(r["S"]) for r in metrics)
    assert "S_noise_floor" in metrics[0]
    assert all(r["kl_bits"] != "n/a" for r in _parse(html).cells["table-changes"])
    runs, counts = {}, {}
    for store in ("demo.db", "demo_tasks.db"):  # the capability control's runs apart
        with sqlite3.connect(out / store) as conn:
            runs.update(
                {r[0]: r[1:] for r in conn.execute("SELECT run_id, mode, instrument FROM runs")}
            )
            counts.update(
                conn.execute("SELECT run_id, COUNT(*) FROM responses GROUP BY run_id").fetchall()
            )
    assert sorted(runs.values()) == (
        [("persona", "mfq30")] * 3 + [("self", "demo-arithmetic")] * 3 + [("self", "mfq30")] * 3
    )
    for run_id, (mode, instrument) in runs.items():
        size = {"persona": 8 * 30, "self": 30 * 3}[mode] if instrument == "mfq30" else 40 * 3
        assert counts[run_id] == size, run_id
    # the capability control: each variant's accuracy and its delta against the base
    assert "capability control (demo-arithmetic" in done.stdout
    assert re.search(r"insecure: accuracy 0\.\d{3} .*vs base accuracy [+-]", done.stdout)
    control = json.loads((out / "capability_control.json").read_text(encoding="utf-8"))
    assert set(control["variants"]) == {"secure", "insecure"} and control["simulated"]
    assert control["base"]["n_total"] == 40 * 3
    assert json.loads((out / "demo-arithmetic.json").read_text(encoding="utf-8"))["items"]
    # ... and in the report: the study names each variant's task run, the table shows it
    assert 'id="table-capability"' in html and "demo-arithmetic" in html
    assert 'tasks = { "demo-arithmetic" = ' in (out / "study.toml").read_text(encoding="utf-8")
    assert json.loads((out / "personas.json").read_text(encoding="utf-8"))[0].startswith("A")
    with (out / "tables" / "provenance.csv").open(encoding="utf-8") as handle:
        rows = list(csv.DictReader(handle))
    assert rows and all(r["data"] == "SIMULATED" for r in rows)
    assert elapsed < 120


# Four personas x two repetitions at T = 0.1: some bootstrap replicates have no spread at all,
# so relative changes divide by zero in those replicates (numpy warns). Only the plumbing of
# the sampled, in-process path is checked here.
@pytest.mark.filterwarnings("ignore::RuntimeWarning")
def test_demo_sampled_in_process(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from persona_collapse.workflows import DemoConfig, run_demo

    for var in ("OPENAI_API_KEY", "HTTP_PROXY", "HTTPS_PROXY", "http_proxy", "https_proxy"):
        monkeypatch.delenv(var, raising=False)
    messages: list[str] = []
    outcome = run_demo(
        DemoConfig(
            folder=tmp_path / "d",
            n_personas=4,
            reps=2,
            method="sample",
            quiet=True,
            in_process_server=True,
        ),
        messages.append,
    )
    assert outcome.requests >= 3 * (4 * 30 * 2 + 30 * 2 + 40 * 2)
    fam = outcome.report.result.families[0]
    assert set(fam.variants) == {"base", "secure", "insecure"}
    assert fam.variants["insecure"].self_profile is not None
    assert outcome.report.result.simulated
    assert any("collecting base" in m for m in messages)
    assert any("capability control, demo-arithmetic" in m for m in messages)
    assert set(outcome.control.sources) == {"base", "secure", "insecure"}


def test_demo_rejects_bad_options(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    for extra in (["--n-personas", "1000"], ["--reps", "1"]):
        result = run_cli(capsys, "demo", "-o", str(tmp_path / "d"), *extra)
        assert result.status == 2
        assert len(result.err.strip().splitlines()) == 1, result.err


@pytest.mark.skipif(
    not os.environ.get("PERSONA_COLLAPSE_SLOW_TESTS"),
    reason="the full default demo takes about 80 s; set PERSONA_COLLAPSE_SLOW_TESTS=1",
)
def test_default_demo_under_two_minutes(tmp_path: Path) -> None:
    start = time.perf_counter()
    done = subprocess.run(
        [sys.executable, "-m", "persona_collapse", "demo", "-o", str(tmp_path / "d"), "--quiet"],
        capture_output=True,
        text=True,
        env=_offline_env(),
        timeout=600,
        check=False,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    assert time.perf_counter() - start < 120


def test_report_neither_collects_nor_serves() -> None:
    """``report/`` draws and writes: no import of collection, the loopback server or the
    workflows above it (the demo, which collects, is a workflow)."""
    import persona_collapse.report as report

    folder = Path(report.__file__).parent
    imports = re.compile(r"^\s*(?:from|import)\s+(\S+)", re.MULTILINE)
    found = {
        (path.name, target)
        for path in folder.glob("*.py")
        for target in imports.findall(path.read_text(encoding="utf-8"))
    }
    forbidden = ("collect", "testing", "workflows", "backends")
    upward = [
        (name, target)
        for name, target in found
        if target.lstrip(".").split(".")[0] in forbidden or target.startswith("persona_collapse.")
    ]
    assert not upward
