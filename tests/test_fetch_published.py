"""``fetch-published``: pinned files over real HTTP (a loopback server), sha256-checked."""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest

from persona_collapse.errors import DataError
from persona_collapse.published import URL_ENV, fetch_published, published_set

from .conftest import reference_path
from .helpers import run_cli, serve_folder


@pytest.fixture
def mirror(tmp_path: Path) -> Iterator[tuple[str, Path]]:
    """A loopback HTTP server over a copy of the published files (``costa2026``)."""
    root = tmp_path / "mirror"
    shutil.copytree(reference_path("costa2026"), root)
    with serve_folder(root) as url:
        yield url, root


def test_fetches_every_pinned_file_once(
    mirror: tuple[str, Path], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    url, _ = mirror
    monkeypatch.setenv(URL_ENV, url)
    seen: list[str] = []
    folder = fetch_published(tmp_path / "out", on_file=lambda f, what: seen.append(what))
    manifest = published_set()
    assert seen == ["downloaded"] * len(manifest.files)
    for item in manifest.files:
        assert (folder / item.path).read_bytes() == reference_path(
            f"costa2026/{item.path}"
        ).read_bytes()
    seen.clear()
    fetch_published(tmp_path / "out", on_file=lambda f, what: seen.append(what))
    assert seen == ["cached"] * len(manifest.files)


def test_a_changed_file_is_refused_and_not_saved(
    mirror: tuple[str, Path], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    url, root = mirror
    first = published_set().files[0]
    (root / first.path).write_bytes(b"persona_id,question_id\n")
    monkeypatch.setenv(URL_ENV, url)
    with pytest.raises(DataError, match="sha256"):
        fetch_published(tmp_path / "out")
    assert not (tmp_path / "out" / "costa2026" / first.path).exists()


def test_cli_offline_is_one_line(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv(URL_ENV, "http://127.0.0.1:9")
    result = run_cli(capsys, "fetch-published", "--to", str(tmp_path))
    assert result.status == 2
    err = result.err.strip().splitlines()
    assert len(err) == 1 and "cannot download" in err[0] and URL_ENV in err[0]
