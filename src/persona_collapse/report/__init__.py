"""Reports: figures (matplotlib), tables (CSV, Markdown, LaTeX) and a self-contained HTML page.

* :func:`load_study` reads a study file (TOML) naming families, variants and sources;
* :func:`build_report` analyses it and writes ``report.html``, ``figures/`` and ``tables/``;
* :func:`paper_study` and :func:`headline` rebuild the published study from its raw data;
* :func:`run_demo` collects SIMULATED variants over a loopback server and reports on them.
"""

from ._build import REPORT_FILE, ReportOutput, build_report, write_report
from ._demo import DEFAULT_DIR, DemoConfig, DemoOutcome, demo_personas, run_demo
from ._figures import FigureFile, draw_figures, write_figures
from ._reproduce import PAPER_FAMILIES, classify, headline, paper_study
from ._results import FamilyResult, StudyResult, VariantResult, analyse_study
from ._study import FamilySpec, Study, VariantSources, load_study, study_from_dict, study_to_toml
from ._table import Column, Table, to_csv, to_html, to_latex, to_markdown, write_table
from ._tables import report_tables
from ._verdict import FamilyVerdict, Finding, family_verdict

__all__ = [
    "DEFAULT_DIR",
    "PAPER_FAMILIES",
    "REPORT_FILE",
    "Column",
    "DemoConfig",
    "DemoOutcome",
    "FamilyResult",
    "FamilySpec",
    "FamilyVerdict",
    "FigureFile",
    "Finding",
    "ReportOutput",
    "Study",
    "StudyResult",
    "Table",
    "VariantResult",
    "VariantSources",
    "analyse_study",
    "build_report",
    "classify",
    "demo_personas",
    "draw_figures",
    "family_verdict",
    "headline",
    "load_study",
    "paper_study",
    "report_tables",
    "run_demo",
    "study_from_dict",
    "study_to_toml",
    "to_csv",
    "to_html",
    "to_latex",
    "to_markdown",
    "write_figures",
    "write_report",
    "write_table",
]
