"""Printing results as rich tables (humans), JSON or CSV (machines) on stdout."""

from __future__ import annotations

import csv
import json
import math
import sys
from collections.abc import Callable, Iterable, Sequence
from pathlib import Path
from typing import Any

import numpy as np
from rich.console import Console
from rich.table import Table

from ..analysis import COMPLIANCE_KEYS
from ._spec import Option

FORMATS = ("table", "json", "csv")
FORMAT_OPTION = Option(
    "--format", choices=FORMATS, default="table", help="output format (default: table)"
)
"""``--format table|json|csv`` of the commands printing results."""
FIGURE_OPTION = Option(
    "-o", "--output", default=None, metavar="FIG.png", help="also plot to FIG.png and FIG.pdf"
)
"""``-o FIG.png`` of the commands that also draw their figure (written as PNG and PDF)."""
METRIC_KEYS = ("S", "S_se", "sigma_bar", "sigma_bar_se", "R", "R_se")
NOISE_KEYS = ("S_corrected", "S_corrected_se", "S_noise_floor")
USAGE_KEYS = ("entropy_bits", "top1_share", "top1_rating", "endpoint_mass")
USAGE_COUNTS = ("n_responses", "n_invalid")
_COMPLIANCE_LABELS = {
    "digit_mass": "digit mass",
    "truncated_share": "digits cut off by top-k",
    "nondigit_attempt_share": "non-digit attempts",
    "fallback_share": "fallback answers",
    "missing_share": "missing",
}


def strict_json(value: Any) -> Any:
    """``value`` with every NaN or infinite float (numpy's too) as ``None``: strict JSON has neither."""
    if isinstance(value, dict):
        return {k: strict_json(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [strict_json(v) for v in value]
    if isinstance(value, float | np.floating):
        return float(value) if math.isfinite(value) else None
    if isinstance(value, np.integer):
        return int(value)
    if isinstance(value, np.bool_):
        return bool(value)
    return value


def emit_json(document: Any) -> None:
    """One strict JSON document on stdout and nothing else (``null`` for NaN and infinities)."""
    json.dump(strict_json(document), sys.stdout, indent=2, allow_nan=False)
    sys.stdout.write("\n")


def emit_csv(header: Sequence[str], rows: Sequence[Sequence[Any]]) -> None:
    writer = csv.writer(sys.stdout, lineterminator="\n")
    writer.writerow(header)
    writer.writerows(rows)


def warn(warnings: Sequence[str]) -> None:
    """Each warning as one ``warning: ...`` line on stderr (table and CSV output; JSON carries
    them in its ``warnings`` lists)."""
    for text in dict.fromkeys(warnings):
        print(f"warning: {text}", file=sys.stderr)


def print_written(paths: Iterable[Path]) -> None:
    """``wrote PATH`` on stderr for every file written (figures, tables)."""
    for path in paths:
        print(f"wrote {path}", file=sys.stderr)


def _console() -> Console:
    """A console for stdout; wide enough for the tables when output is piped."""
    return Console(soft_wrap=False, width=None if sys.stdout.isatty() else 140)


def _pm(value: float, se: float) -> str:
    return f"{value:.2f} ± {se:.2f}"


def metrics_rows(doc: dict[str, Any]) -> list[tuple[str, dict[str, Any]]]:
    """(group, values) pairs: ``all`` then each foundation."""
    return [("all", doc), *doc["foundations"].items()]


def _share_text(key: str, value: float | None) -> str:
    if value is None:
        return "n/a"
    return f"{value:.3f}" if key == "digit_mass" else f"{value:.1%}"


def compliance_line(compliance: dict[str, Any] | None) -> str:
    """``compliance: digit mass 0.132, digits cut off by top-k 51.0%, ...`` ('' without data);
    ``n/a`` where a share does not apply to the source or was not recorded."""
    if not compliance:
        return ""
    parts = [
        f"{_COMPLIANCE_LABELS[k]} {_share_text(k, compliance.get(k))}" for k in COMPLIANCE_KEYS
    ]
    return "compliance: " + ", ".join(parts)


def usage_values(docs: Sequence[dict[str, Any]]) -> list[str]:
    """The scale values (as text) of every ``scale_usage`` in ``docs``, in scale order."""
    found = {v for d in docs for v in (d.get("scale_usage") or {}).get("shares", {})}
    return sorted(found, key=int)


def usage_header(values: Sequence[str]) -> list[str]:
    """CSV columns of scale usage: ``share_0`` .. ``share_5``, entropy, top-1, endpoints, counts."""
    return [*(f"share_{v}" for v in values), *USAGE_KEYS, *USAGE_COUNTS]


def usage_cells(usage: dict[str, Any] | None, values: Sequence[str]) -> list[Any]:
    """The cells of :func:`usage_header` for one ``scale_usage`` (empty without one)."""
    u = usage or {}
    shares = u.get("shares", {})
    return [*(shares.get(v) for v in values), *(u.get(k) for k in (*USAGE_KEYS, *USAGE_COUNTS))]


def usage_line(usage: dict[str, Any] | None) -> str:
    """``scale usage: 0 7.2%, 1 3.7%, ...; entropy 2.24 bits; top-1 31.5% on 5; ...`` ('' without)."""
    if not usage:
        return ""
    shares = ", ".join(f"{v} {share:.1%}" for v, share in usage["shares"].items())
    return (
        f"scale usage: {shares}; entropy {usage['entropy_bits']:.2f} bits; "
        f"top-1 {usage['top1_share']:.1%} on {usage['top1_rating']}; "
        f"endpoints {usage['endpoint_mass']:.1%}; "
        f"{usage['n_responses']} answers, {usage['n_invalid']} invalid"
    )


def _corrected_cell(v: dict[str, Any]) -> str:
    if v.get("S_corrected") is None:
        return "n/a"
    return f"{_pm(v['S_corrected'], v['S_corrected_se'])}  (floor {v['S_noise_floor']:.2f})"


def _emitted_as_data(
    docs: dict[str, Any] | Sequence[dict[str, Any]],
    fmt: str,
    header: list[str],
    rows: Callable[[], list[list[Any]]],
) -> bool:
    """Print ``docs`` (one document, or a list of them) as JSON, or their warnings (stderr) and
    then the CSV of ``header`` and ``rows()``; True when done. For a table only the warnings
    are printed (False)."""
    if fmt == "json":
        emit_json(docs if isinstance(docs, dict) else list(docs))
        return True
    each = [docs] if isinstance(docs, dict) else docs
    warn([w for d in each for w in d.get("warnings", ())])
    if fmt == "csv":
        emit_csv(header, rows())
        return True
    return False


def print_metrics(docs: Sequence[dict[str, Any]], fmt: str) -> None:
    values = usage_values(docs)
    header = ["source", "foundation", "n_personas", "n_items", *METRIC_KEYS, *NOISE_KEYS]
    header += [*usage_header(values), *COMPLIANCE_KEYS]

    def rows() -> list[list[Any]]:
        return [
            [
                d["source"],
                group,
                d["n_personas"],
                d["n_items"],
                *(v[k] for k in METRIC_KEYS),
                *(v.get(k) for k in NOISE_KEYS),
                *usage_cells(d.get("scale_usage"), values),
                *((d.get("compliance") or {}).get(k) for k in COMPLIANCE_KEYS),
            ]
            for d in docs
            for group, v in metrics_rows(d)
        ]

    if _emitted_as_data(docs, fmt, header, rows):
        return
    console = _console()
    for d in docs:
        title = f"{d['source']}  ({d['n_personas']} personas x {d['n_items']} items)"
        table = Table(title=title, title_justify="left", min_width=len(title) + 2)
        for col in ("foundation", "S", "S* (noise floor)", "sigma_bar", "R"):
            table.add_column(col, justify="left" if col == "foundation" else "right")
        for group, v in metrics_rows(d):
            table.add_row(
                group,
                _pm(v["S"], v["S_se"]),
                _corrected_cell(v),
                f"{v['sigma_bar']:.3f} ± {v['sigma_bar_se']:.3f}",
                _pm(v["R"], v["R_se"]),
            )
        console.print(table)
        if d.get("dropped_personas"):
            console.print(f"dropped personas (an empty cell): {d['dropped_personas']}")
        for line in (compliance_line(d.get("compliance")), usage_line(d.get("scale_usage"))):
            if line:
                console.print(line, highlight=False)
    console.print(
        "S: moral susceptibility; S*: S without the noise floor of repetition noise; "
        "R = 1/sigma_bar: moral robustness; ± bootstrap SE."
    )


def print_profiles(docs: Sequence[dict[str, Any]], fmt: str) -> None:
    header = ["source", "foundation", "mean", "sd"]
    if _emitted_as_data(
        docs,
        fmt,
        header,
        lambda: [
            [d["source"], f, v["mean"], v["sd"]] for d in docs for f, v in d["foundations"].items()
        ],
    ):
        return
    console = _console()
    for d in docs:
        table = Table(title=f"{d['source']}  ({d['mode']} profile)", title_justify="left")
        table.add_column("foundation")
        table.add_column("mean ± sd", justify="right")
        table.add_column("saturation", justify="right")
        for f, v in d["foundations"].items():
            table.add_row(f, _pm(v["mean"], v["sd"]), f"{d['saturation'][f]:.2f}")
        console.print(table)


def _band_cell(variant: dict[str, Any]) -> str:
    """``left`` (base inside, variant outside), ``OUTSIDE`` (base outside too) or ``in``."""
    if variant.get("left_band"):
        return "left"
    return "OUTSIDE" if variant["outside_band"] else "in"


def _delta_cell(delta: dict[str, Any], se: dict[str, Any], key: str) -> str:
    value, error = delta.get(key), se.get(key)
    if value is None or not math.isfinite(value):
        return "n/a"
    return f"{value:+.1f} ± {error:.1f}"


def _top1_cell(metrics: dict[str, Any]) -> str:
    usage = metrics.get("scale_usage")
    if not usage:
        return ""
    return f"{usage['top1_share']:.0%} on {usage['top1_rating']}"


_COMPARISON_CSV = (
    *("variant", "source", "S", "S_se", "sigma_bar", "R", "R_se"),
    *("dS_pct", "dS_pct_se", "dsigma_bar_pct", "dsigma_bar_pct_se", "dR_pct", "dR_pct_se"),
    *("S_corrected", "dS_corrected_pct", "dS_corrected_pct_se", "kl_bits"),
    *("top1_share", "top1_rating", "outside_band", "left_band"),
)
"""Columns of ``compare --format csv``: one row for the base, one per variant."""

_COMPARISON_NOTE = (
    "dS*: change of S without its noise floor; KL: divergence in bits of the variant's "
    "ratings from the base's (all scale values, add-one smoothed); top-1: share of "
    "answers on the most used rating."
)


def _comparison_rows(doc: dict[str, Any]) -> list[list[Any]]:
    """The CSV rows of a comparison (:data:`_COMPARISON_CSV` order)."""
    base = doc["base"]
    base_usage = base.get("scale_usage") or {}
    rows: list[list[Any]] = [
        ["base", base["source"], *(base[k] for k in ("S", "S_se", "sigma_bar", "R", "R_se"))]
        + [""] * 6
        + [base.get("S_corrected"), "", "", ""]
        + [base_usage.get("top1_share"), base_usage.get("top1_rating")]
        + [doc["band"].get("base_outside", ""), ""]
    ]
    for label, v in doc["variants"].items():
        m, d, se = v["metrics"], v["delta_pct"], v["delta_pct_se"]
        usage = m.get("scale_usage") or {}
        rows.append(
            [label, m["source"], *(m[k] for k in ("S", "S_se", "sigma_bar", "R", "R_se"))]
            + [x for k in ("S", "sigma_bar", "R") for x in (d[k], se[k])]
            + [m.get("S_corrected"), d.get("S_corrected"), se.get("S_corrected")]
            + [v.get("kl_bits"), usage.get("top1_share"), usage.get("top1_rating")]
            + [v["outside_band"], v.get("left_band", "")]
        )
    return rows


def _comparison_table(doc: dict[str, Any]) -> Table:
    """The terminal table of a comparison: S, R and the changes of each variant."""
    band = doc["band"]
    table = Table(
        title=f"variants against base (band S in [{band['S_min']}, {band['S_max']}])",
        title_justify="left",
    )
    columns = ("variant", "S", "R", "dS %", "dS* %", "dsigma_bar %", "dR %", "KL bits", "top-1")
    for col in (*columns, "band"):
        table.add_column(col, justify="left" if col == "variant" else "right")
    base = doc["base"]
    base_band = "OUTSIDE" if band.get("base_outside") else "in"
    table.add_row(
        "base",
        _pm(base["S"], base["S_se"]),
        _pm(base["R"], base["R_se"]),
        *([""] * 5),
        _top1_cell(base),
        base_band,
    )
    for label, v in doc["variants"].items():
        m, d, se = v["metrics"], v["delta_pct"], v["delta_pct_se"]
        table.add_row(
            label,
            _pm(m["S"], m["S_se"]),
            _pm(m["R"], m["R_se"]),
            *(_delta_cell(d, se, k) for k in ("S", "S_corrected", "sigma_bar", "R")),
            "n/a" if v.get("kl_bits") is None else f"{v['kl_bits']:.3f}",
            _top1_cell(m),
            _band_cell(v),
        )
    return table


def print_comparison(doc: dict[str, Any], fmt: str) -> None:
    """``compare`` output: JSON, CSV, or the table with the band verdict and the excess."""
    if _emitted_as_data(doc, fmt, list(_COMPARISON_CSV), lambda: _comparison_rows(doc)):
        return
    console = _console()
    console.print(_comparison_table(doc))
    console.print(_COMPARISON_NOTE, highlight=False)
    if doc["band"].get("base_outside"):
        console.print(
            "verdict: the base is already outside the band, so no variant can leave it; "
            "OUTSIDE marks where a variant lies, not a change caused by fine-tuning"
        )
    if "excess_pp" in doc:
        e, s = doc["excess_pp"], doc["excess_pp_se"]
        console.print(
            "misalignment excess (insecure - secure): "
            + ", ".join(
                f"d{k.replace('S_corrected', 'S*')} {e[k]:+.1f} ± {s[k]:.1f} pp"
                for k in ("S", "sigma_bar", "R", "S_corrected")
                if k in e
            )
        )
