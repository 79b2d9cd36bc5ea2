"""Persona files in every supported format, their errors, selection, hashing, and the
published PersonaHub set (local copy, verified download, cache)."""

from __future__ import annotations

import json
import socket
import threading
from collections.abc import Callable, Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

from persona_collapse.errors import DataError
from persona_collapse.personas import (
    ENV_LOCAL_COPY,
    PERSONAHUB_COSTA,
    PERSONAHUB_SHA256,
    PersonaSet,
    cache_dir,
    fetch_personahub,
    load_persona_file,
    load_personas,
)

from .conftest import reference_path

TEXTS = ["A nurse in Lisbon", "A retired sailor, fond of knots", 'A poet who writes "haiku"']


def _one_line(exc: pytest.ExceptionInfo[DataError]) -> str:
    message = str(exc.value)
    assert message
    assert "\n" not in message
    return message


def _write(tmp_path: Path, name: str, content: str | bytes) -> Path:
    path = tmp_path / name
    if isinstance(content, bytes):
        path.write_bytes(content)
    else:
        path.write_text(content, encoding="utf-8")
    return path


# --------------------------------------------------------------------------- formats


def test_json_list(tmp_path: Path) -> None:
    path = _write(tmp_path, "p.json", json.dumps(TEXTS))
    ps = load_persona_file(path)
    assert ps.texts == tuple(TEXTS)
    assert ps.ids == (0, 1, 2)
    assert len(ps) == 3
    assert ps.source == str(path)
    assert load_persona_file(str(path)).texts == tuple(TEXTS)


def test_json_with_bom_and_personas_key(tmp_path: Path) -> None:
    path = _write(tmp_path, "p.json", b"\xef\xbb\xbf" + json.dumps(TEXTS).encode())
    assert load_persona_file(path).texts == tuple(TEXTS)
    path = _write(tmp_path, "q.json", json.dumps({"personas": TEXTS, "meta": 1}))
    assert load_persona_file(path).texts == tuple(TEXTS)


def test_json_keeps_texts_verbatim(tmp_path: Path) -> None:
    texts = ["  leading and trailing  ", "ünïcødé persona 🚀", "has {braces}"]
    path = _write(tmp_path, "p.json", json.dumps(texts, ensure_ascii=False))
    assert load_persona_file(path).texts == tuple(texts)


def test_jsonl_strings(tmp_path: Path) -> None:
    content = "\n".join(json.dumps(t) for t in TEXTS) + "\n\n"
    assert load_persona_file(_write(tmp_path, "p.jsonl", content)).texts == tuple(TEXTS)


@pytest.mark.parametrize("key", ["persona", "text", "description"])
def test_jsonl_objects_default_keys(tmp_path: Path, key: str) -> None:
    content = "\n".join(json.dumps({key: t, "other": 1}) for t in TEXTS)
    assert load_persona_file(_write(tmp_path, "p.jsonl", content)).texts == tuple(TEXTS)


def test_jsonl_prefers_persona_over_text(tmp_path: Path) -> None:
    content = json.dumps({"text": "wrong", "persona": "right"})
    assert load_persona_file(_write(tmp_path, "p.jsonl", content)).texts == ("right",)


def test_jsonl_custom_field(tmp_path: Path) -> None:
    content = "\n".join(json.dumps({"bio": t, "persona": "decoy"}) for t in TEXTS)
    path = _write(tmp_path, "p.jsonl", content)
    assert load_persona_file(path, field="bio").texts == tuple(TEXTS)
    assert load_persona_file(path).texts == ("decoy",) * 3


def test_jsonl_mixed_strings_and_objects(tmp_path: Path) -> None:
    content = f"{json.dumps(TEXTS[0])}\n{json.dumps({'text': TEXTS[1]})}\n"
    assert load_persona_file(_write(tmp_path, "p.jsonl", content)).texts == tuple(TEXTS[:2])


def test_csv_default_and_custom_column(tmp_path: Path) -> None:
    rows = "\n".join(f'{i},"{t.replace(chr(34), chr(34) * 2)}"' for i, t in enumerate(TEXTS))
    path = _write(tmp_path, "p.csv", "id,persona\n" + rows + "\n")
    assert load_persona_file(path).texts == tuple(TEXTS)
    path = _write(tmp_path, "q.csv", "id,text\n" + rows + "\n")
    assert load_persona_file(path).texts == tuple(TEXTS)
    path = _write(tmp_path, "r.csv", "bio,persona\n" + "\n".join(f'"{t}",x' for t in TEXTS[:2]))
    assert load_persona_file(path, field="bio").texts == tuple(TEXTS[:2])
    assert load_persona_file(path).texts == ("x", "x")


def test_plain_text(tmp_path: Path) -> None:
    content = "\n".join(f"  {t}  " for t in TEXTS) + "\n\n   \n"
    for name in ("p.txt", "personas"):
        ps = load_persona_file(_write(tmp_path, name, content))
        assert ps.texts == tuple(TEXTS)
        assert ps.ids == (0, 1, 2)


# --------------------------------------------------------------------------- errors


def test_missing_file(tmp_path: Path) -> None:
    with pytest.raises(DataError) as exc:
        load_persona_file(tmp_path / "nope.json")
    message = _one_line(exc)
    assert "does not exist" in message
    assert "nope.json" in message


@pytest.mark.parametrize("name", ["e.json", "e.jsonl", "e.csv", "e.txt"])
def test_empty_file(tmp_path: Path, name: str) -> None:
    with pytest.raises(DataError) as exc:
        load_persona_file(_write(tmp_path, name, "  \n\n"))
    assert "empty" in _one_line(exc)


def test_non_utf8(tmp_path: Path) -> None:
    path = _write(tmp_path, "p.txt", "A caf\xe9 owner\n".encode("latin-1"))
    with pytest.raises(DataError) as exc:
        load_persona_file(path)
    message = _one_line(exc)
    assert "not UTF-8" in message
    assert "0xe9" in message


@pytest.mark.parametrize(
    ("content", "fragment"),
    [
        ('{"people": ["a", "b"]}', "dict, not a list"),
        ('"just a string"', "str, not a list"),
        ('["a", 3, "c"]', "entry 1"),
        ('["a", ""]', "entry 1"),
        ('["a", null]', "entry 1"),
        ('{"personas": [1]}', "entry 0"),
        ("[1, 2", "not valid JSON"),
        ("[]", "lists no personas"),
    ],
)
def test_json_not_a_list_of_strings(tmp_path: Path, content: str, fragment: str) -> None:
    with pytest.raises(DataError) as exc:
        load_persona_file(_write(tmp_path, "p.json", content))
    assert fragment in _one_line(exc)


def test_jsonl_bad_line_reports_line_number(tmp_path: Path) -> None:
    content = '"ok one"\n\n"ok two"\n{not json}\n"ok three"\n'
    with pytest.raises(DataError) as exc:
        load_persona_file(_write(tmp_path, "p.jsonl", content))
    message = _one_line(exc)
    assert "line 4" in message
    assert "not valid JSON" in message


def test_jsonl_non_string_value_reports_file_line(tmp_path: Path) -> None:
    # Line 3 (after a blank line) holds a number: the message names the file line.
    content = '"ok"\n\n42\n'
    with pytest.raises(DataError) as exc:
        load_persona_file(_write(tmp_path, "p.jsonl", content))
    assert "line 3" in _one_line(exc)
    content = '{"persona": "ok"}\n{"persona": ["not", "a", "string"]}\n'
    with pytest.raises(DataError) as exc:
        load_persona_file(_write(tmp_path, "q.jsonl", content))
    assert "line 2" in _one_line(exc)


def test_jsonl_object_without_field(tmp_path: Path) -> None:
    content = '{"persona": "ok"}\n{"name": "x"}\n'
    with pytest.raises(DataError) as exc:
        load_persona_file(_write(tmp_path, "p.jsonl", content))
    message = _one_line(exc)
    assert "line 2" in message
    assert "--persona-field" in message
    path = _write(tmp_path, "q.jsonl", '{"persona": "ok"}\n')
    with pytest.raises(DataError) as exc:
        load_persona_file(path, field="bio")
    assert "line 1" in _one_line(exc)


def test_csv_without_column(tmp_path: Path) -> None:
    path = _write(tmp_path, "p.csv", "id,name\n1,Ann\n")
    with pytest.raises(DataError) as exc:
        load_persona_file(path)
    message = _one_line(exc)
    assert "no persona column" in message
    assert "id, name" in message
    path = _write(tmp_path, "q.csv", "id,persona\n1,Ann\n")
    with pytest.raises(DataError) as exc:
        load_persona_file(path, field="bio")
    assert "no persona column" in _one_line(exc)


def test_csv_short_row_and_header_only(tmp_path: Path) -> None:
    with pytest.raises(DataError) as exc:
        load_persona_file(_write(tmp_path, "p.csv", "id,persona\n1,Ann\n2\n"))
    assert "row 1" in _one_line(exc)
    with pytest.raises(DataError) as exc:
        load_persona_file(_write(tmp_path, "q.csv", "id,persona\n"))
    assert "no personas" in _one_line(exc)


# --------------------------------------------------------------------------- selection, hash


def _set(n: int) -> PersonaSet:
    return PersonaSet(
        texts=tuple(f"persona {i}" for i in range(n)), ids=tuple(range(n)), source="test"
    )


def test_select_first_n() -> None:
    ps = _set(10)
    first = ps.select(4)
    assert first.texts == ("persona 0", "persona 1", "persona 2", "persona 3")
    assert first.ids == (0, 1, 2, 3)
    assert first.source == "test"
    assert ps.select() is ps
    assert ps.select(10) == ps


def test_select_sample_reproducible_keeps_ids() -> None:
    ps = _set(50)
    a = ps.select(10, sample_seed=7)
    b = ps.select(10, sample_seed=7)
    c = ps.select(10, sample_seed=8)
    assert a == b
    assert a.ids != c.ids
    assert a.ids != tuple(range(10))
    assert list(a.ids) == sorted(a.ids)
    assert len(set(a.ids)) == 10
    for i, text in zip(a.ids, a.texts, strict=True):
        assert text == f"persona {i}"
    # A sample of a sample keeps the ids of the original list.
    sub = a.select(3, sample_seed=1)
    assert set(sub.ids) <= set(a.ids)
    for i, text in zip(sub.ids, sub.texts, strict=True):
        assert text == f"persona {i}"


def test_select_too_many_or_too_few() -> None:
    ps = _set(5)
    with pytest.raises(DataError) as exc:
        ps.select(6)
    message = _one_line(exc)
    assert "6" in message
    assert "only 5" in message
    with pytest.raises(DataError):
        ps.select(6, sample_seed=1)
    with pytest.raises(DataError):
        ps.select(0)
    with pytest.raises(DataError):
        ps.select(-2)


def test_content_hash() -> None:
    ps = _set(5)
    assert len(ps.content_hash) == 64
    assert ps.content_hash == _set(5).content_hash
    assert PersonaSet(ps.texts, ps.ids, source="elsewhere").content_hash == ps.content_hash
    changed = PersonaSet((*ps.texts[:4], "persona 4!"), ps.ids, source="test")
    assert changed.content_hash != ps.content_hash
    assert ps.select(4).content_hash != ps.content_hash
    # Same texts under other ids (a sample) is another set.
    shifted = PersonaSet(ps.texts, tuple(i + 1 for i in ps.ids), source="test")
    assert shifted.content_hash != ps.content_hash


def test_load_personas_from_file(tmp_path: Path) -> None:
    path = _write(tmp_path, "p.json", json.dumps([f"p{i}" for i in range(8)]))
    assert load_personas(path).texts == tuple(f"p{i}" for i in range(8))
    assert load_personas(path, 3).ids == (0, 1, 2)
    sample = load_personas(str(path), 3, sample_seed=0)
    assert sample == load_personas(str(path), 3, sample_seed=0)
    with pytest.raises(DataError):
        load_personas(path, 9)


# --------------------------------------------------------------------------- PersonaHub


@pytest.fixture
def personahub_bytes() -> bytes:
    return reference_path("personas_personahub_1000.json").read_bytes()


@pytest.fixture
def clean_env(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Path:
    """No local copy, cache in tmp_path, and no proxy between httpx and 127.0.0.1."""
    monkeypatch.delenv(ENV_LOCAL_COPY, raising=False)
    for var in ("HTTP_PROXY", "HTTPS_PROXY", "ALL_PROXY", "http_proxy", "https_proxy", "all_proxy"):
        monkeypatch.delenv(var, raising=False)
    monkeypatch.setenv("NO_PROXY", "127.0.0.1,localhost")
    cache = tmp_path / "cache"
    monkeypatch.setenv("PERSONA_COLLAPSE_CACHE", str(cache))
    return cache


class _Server:
    def __init__(self, payload: bytes) -> None:
        self.payload = payload
        self.requests = 0
        outer = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                outer.requests += 1
                self.send_response(200)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(outer.payload)))
                self.end_headers()
                self.wfile.write(outer.payload)

            def log_message(self, *args: object) -> None:
                pass

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}/personas.json"
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)
        self.thread.start()

    def close(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()
        self.thread.join(timeout=5)


@pytest.fixture
def serve() -> Iterator[Callable[[bytes], _Server]]:
    servers: list[_Server] = []

    def start(payload: bytes) -> _Server:
        server = _Server(payload)
        servers.append(server)
        return server

    yield start
    for server in servers:
        server.close()


def test_local_copy_gives_first_100(
    monkeypatch: pytest.MonkeyPatch, clean_env: Path, personahub_bytes: bytes
) -> None:
    path = reference_path("personas_personahub_1000.json")
    monkeypatch.setenv(ENV_LOCAL_COPY, str(path))
    assert fetch_personahub() == path
    reference = json.loads(personahub_bytes)
    assert len(reference) == 1000
    ps = load_personas(PERSONAHUB_COSTA)
    assert ps.texts == tuple(reference[:100])
    assert ps.ids == tuple(range(100))
    assert ps.source == PERSONAHUB_COSTA
    assert load_personas(PERSONAHUB_COSTA, 1000).texts == tuple(reference)
    sample = load_personas(PERSONAHUB_COSTA, 5, sample_seed=3)
    assert sample.texts == tuple(reference[i] for i in sample.ids)
    assert not clean_env.exists()  # a local copy is never cached


def test_local_copy_wrong_file(
    monkeypatch: pytest.MonkeyPatch, clean_env: Path, tmp_path: Path, personahub_bytes: bytes
) -> None:
    reference = json.loads(personahub_bytes)
    wrong = _write(tmp_path, "personas.json", json.dumps(reference[:100]))
    monkeypatch.setenv(ENV_LOCAL_COPY, str(wrong))
    with pytest.raises(DataError) as exc:
        load_personas(PERSONAHUB_COSTA)
    message = _one_line(exc)
    assert "not the published persona file" in message
    assert PERSONAHUB_SHA256[:12] in message
    monkeypatch.setenv(ENV_LOCAL_COPY, str(tmp_path / "missing.json"))
    with pytest.raises(DataError) as exc:
        fetch_personahub()
    assert "does not exist" in _one_line(exc)


def test_download_verified_and_cached(
    clean_env: Path, personahub_bytes: bytes, serve: Callable[[bytes], _Server]
) -> None:
    server = serve(personahub_bytes)
    assert cache_dir() == clean_env
    path = fetch_personahub(url=server.url, timeout_s=10)
    assert server.requests == 1
    assert path.parent == clean_env
    assert path.read_bytes() == personahub_bytes
    assert sorted(p.name for p in clean_env.iterdir()) == [path.name]  # no temp file left
    again = fetch_personahub(url=server.url, timeout_s=10)
    assert again == path
    assert server.requests == 1  # served from the cache
    ps = load_personas(PERSONAHUB_COSTA)
    assert server.requests == 1
    assert ps.texts == tuple(json.loads(personahub_bytes)[:100])


def test_download_wrong_bytes_not_cached(
    clean_env: Path, personahub_bytes: bytes, serve: Callable[[bytes], _Server]
) -> None:
    server = serve(personahub_bytes.replace(b"A ", b"An ", 1))
    with pytest.raises(DataError) as exc:
        fetch_personahub(url=server.url, timeout_s=10)
    message = _one_line(exc)
    assert "sha256" in message
    assert server.requests == 1
    assert not clean_env.exists() or not any(clean_env.iterdir())


def test_corrupt_cache_is_reported(
    clean_env: Path, personahub_bytes: bytes, serve: Callable[[bytes], _Server]
) -> None:
    server = serve(personahub_bytes)
    path = fetch_personahub(url=server.url, timeout_s=10)
    path.write_bytes(b"[]")
    with pytest.raises(DataError) as exc:
        fetch_personahub(url=server.url, timeout_s=10)
    assert "not the published persona file" in _one_line(exc)
    assert server.requests == 1


def test_unreachable_url(clean_env: Path) -> None:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    # The socket is closed: nothing listens on the port.
    with pytest.raises(DataError) as exc:
        fetch_personahub(url=f"http://127.0.0.1:{port}/personas.json", timeout_s=5)
    message = _one_line(exc)
    assert "--personas FILE" in message
    assert ENV_LOCAL_COPY in message
    assert not clean_env.exists() or not any(clean_env.iterdir())


def test_http_error_status(clean_env: Path, serve: Callable[[bytes], _Server]) -> None:
    server = serve(b"")

    class NotFound(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            server.requests += 1
            self.send_error(404)

        def log_message(self, *args: object) -> None:
            pass

    server.httpd.RequestHandlerClass = NotFound
    with pytest.raises(DataError) as exc:
        fetch_personahub(url=server.url, timeout_s=10)
    assert "--personas FILE" in _one_line(exc)
    assert server.requests == 1
