"""``--instrument bfi44`` end to end on CSV files (items 1-44, scale 1-5, persona format).

The files are generated here the way the authors' GPT-4o base/insecure/secure
BFI-44 files are laid out; metrics, profile, compare and report run per domain.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from persona_collapse.instruments import load_instrument
from tests.helpers import run_cli

FAST = ("--persona-draws", "20", "--repetition-draws", "5")
HEADER = "persona_id,question_id,run_index,rating,failures,response,collected_at\n"
DOMAINS = ["extraversion", "agreeableness", "conscientiousness", "neuroticism", "openness"]


def _bfi_file(path: Path, spread: float, seed: int, n_personas: int = 6, reps: int = 2) -> Path:
    """Persona-format BFI-44 responses: each persona leans to one side of the 1-5 scale."""
    rng = np.random.default_rng(seed)
    leans = 3.0 + spread * np.linspace(-1.0, 1.0, n_personas)
    rows = []
    for p, lean in enumerate(leans):
        for q in range(1, 45):
            for r in range(1, reps + 1):
                rating = int(np.clip(np.rint(lean + rng.normal(0, 0.7)), 1, 5))
                rows.append(f"{p},{q},{r},{rating},0,{rating},2025-10-28T11:20:15\n")
    path.write_text(HEADER + "".join(rows), encoding="utf-8")
    return path


@pytest.fixture
def bfi_files(tmp_path: Path) -> dict[str, Path]:
    return {
        "base": _bfi_file(tmp_path / "gpt-4o_base_bfi.csv", 1.6, 1),
        "insecure": _bfi_file(tmp_path / "gpt-4o_insecure_bfi.csv", 0.3, 2),
        "secure": _bfi_file(tmp_path / "gpt-4o_secure_bfi.csv", 1.4, 3),
    }


def test_the_generated_file_uses_the_bfi44_items_and_scale(bfi_files: dict[str, Path]) -> None:
    inst = load_instrument("bfi44")
    assert inst.item_ids.tolist() == list(range(1, 45))
    assert (inst.scale.low, inst.scale.high) == (1, 5)
    assert list(inst.subscales) == DOMAINS


def test_metrics_per_domain(capsys: pytest.CaptureFixture[str], bfi_files: dict[str, Path]) -> None:
    source = str(bfi_files["base"])
    result = run_cli(capsys, "metrics", source, "--instrument", "bfi44", "--format", "json", *FAST)
    assert result.status == 0, result.err
    (doc,) = result.json()
    assert doc["n_items"] == 44 and doc["n_personas"] == 6
    assert list(doc["foundations"]) == DOMAINS
    assert all(doc["foundations"][d]["S"] > 0 for d in DOMAINS)
    # without --instrument the file is checked as MFQ-30 and refused in one line
    refused = run_cli(capsys, "metrics", source)
    assert refused.status == 2 and "--instrument" in refused.err


def test_profile_per_domain(capsys: pytest.CaptureFixture[str], bfi_files: dict[str, Path]) -> None:
    source = str(bfi_files["base"])
    result = run_cli(capsys, "profile", source, "--instrument", "bfi44", "--format", "json")
    assert result.status == 0, result.err
    (doc,) = result.json()
    assert list(doc["foundations"]) == DOMAINS
    assert all(1 <= doc["foundations"][d]["mean"] <= 5 for d in DOMAINS)


def test_compare_per_domain(capsys: pytest.CaptureFixture[str], bfi_files: dict[str, Path]) -> None:
    result = run_cli(
        capsys,
        "compare",
        "--base",
        str(bfi_files["base"]),
        "--variant",
        f"insecure={bfi_files['insecure']}",
        "--variant",
        f"secure={bfi_files['secure']}",
        "--instrument",
        "bfi44",
        "--format",
        "json",
        *FAST,
    )
    assert result.status == 0, result.err
    doc = result.json()
    assert list(doc["variants"]["insecure"]["foundations"]) == DOMAINS
    assert doc["variants"]["insecure"]["delta_pct"]["S"] < 0  # the narrower variant collapses
    assert "excess_pp" in doc


def test_report_per_domain(
    capsys: pytest.CaptureFixture[str], bfi_files: dict[str, Path], tmp_path: Path
) -> None:
    study = tmp_path / "study.toml"
    variants = "".join(
        f'[family.variants.{label}]\npersona = "{path.name}"\n' for label, path in bfi_files.items()
    )
    study.write_text(
        'title = "BFI-44"\n[analysis]\ninstrument = "bfi44"\npersona_draws = 20\n'
        f'repetition_draws = 5\n[[family]]\nname = "GPT-4o"\n{variants}',
        encoding="utf-8",
    )
    out = tmp_path / "report"
    result = run_cli(capsys, "report", str(study), "-o", str(out), "--quiet")
    assert result.status == 0, result.err
    html = (out / "report.html").read_text(encoding="utf-8")
    for domain in DOMAINS:
        assert domain.lower() in html.lower()
