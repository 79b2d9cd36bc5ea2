"""Reports: figures (matplotlib), tables (CSV, Markdown, LaTeX) and a self-contained HTML page.

* :func:`load_study` reads a study file (TOML) naming families, variants and sources;
* :func:`build_report` analyses it and writes ``report.html``, ``figures/`` and ``tables/``
  (with a variant's task sources, the capability control: :class:`TaskResult` per task,
  a capability table and figure, and the verdict's reading);
* :func:`paper_study` and :func:`headline` rebuild the published study from its raw data;
* :func:`write_curves_figure` plots the temperature curves of ``curves``.

The report draws and writes: it reads stored responses, never collects them
(the offline demo, which does, is :mod:`persona_collapse.workflows`).
"""

from ._build import REPORT_FILE, ReportOutput, build_report, write_report
from ._curves_figure import curves_figure, write_curves_figure
from ._figures import FigureFile, draw_figures, write_figures
from ._reproduce import PAPER_FAMILIES, classify, headline, paper_study
from ._results import FamilyResult, StudyResult, VariantResult, analyse_study
from ._study import (
    BASE,
    FamilySpec,
    Study,
    VariantSources,
    load_study,
    study_from_dict,
    study_to_toml,
)
from ._table_formats import Column, Table, to_csv, to_html, to_latex, to_markdown, write_table
from ._tables import report_tables
from ._task_results import TaskResult
from ._trajectory_figure import trajectory_figure, write_trajectory_figure
from ._verdict import FamilyVerdict, Finding, family_verdict

__all__ = [
    "BASE",
    "PAPER_FAMILIES",
    "REPORT_FILE",
    "Column",
    "FamilyResult",
    "FamilySpec",
    "FamilyVerdict",
    "FigureFile",
    "Finding",
    "ReportOutput",
    "Study",
    "StudyResult",
    "Table",
    "TaskResult",
    "VariantResult",
    "VariantSources",
    "analyse_study",
    "build_report",
    "classify",
    "curves_figure",
    "draw_figures",
    "family_verdict",
    "headline",
    "load_study",
    "paper_study",
    "report_tables",
    "study_from_dict",
    "study_to_toml",
    "to_csv",
    "to_html",
    "to_latex",
    "to_markdown",
    "trajectory_figure",
    "write_curves_figure",
    "write_figures",
    "write_report",
    "write_table",
    "write_trajectory_figure",
]
