"""``run --batch`` against a provider that misbehaves: result lines are checked against what was sent.

Every test runs the official SDKs against the loopback server's Files,
Batches and Message Batches endpoints, whose result files are scripted to go
wrong (:class:`persona_collapse.loopback.LineFaults`). Answers are SIMULATED.
The figure each test guards: answers stored wrong, 0.
"""

from __future__ import annotations

import json
import re
import sqlite3
from pathlib import Path

import pytest

from persona_collapse.collect import RunOptions, run_collection
from persona_collapse.errors import ConfigError
from persona_collapse.loopback import BatchScript, FaultConfig, LineFaults, LoopbackServer
from persona_collapse.simulate import SimulatedRespondent

from .helpers import batch_persona_file, run_cli, simulated_kill

KEY = "sk-test-batch-faults-0123456789"
SLOTS = 2 * 30
PROVIDERS = ["openai", "anthropic"]


@pytest.fixture
def persona_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    return batch_persona_file(tmp_path, monkeypatch, KEY)


def _server(faults: FaultConfig | None = None) -> LoopbackServer:
    return LoopbackServer(SimulatedRespondent("base", seed=1), faults=faults)


def _options(
    srv: LoopbackServer,
    store: Path,
    personas: Path,
    provider: str = "openai",
    name: str = "sim-base",
    **kw: object,
) -> RunOptions:
    base_url = srv.anthropic_base_url if provider == "anthropic" else srv.base_url
    base: dict[str, object] = dict(
        base_url=base_url,
        store=str(store),
        personas=str(personas),
        n_personas=2,
        reps=1,
        quiet=True,
        batch=True,
        batch_poll_s=0.01,
    )
    base.update(kw)
    return RunOptions.build(f"{provider}/{name}", **base)


def _rows(store: Path) -> list[tuple[int, int, int, int, str]]:
    """(persona, item, repetition, rating, batch id) of every stored answer."""
    with sqlite3.connect(store) as conn:
        rows = conn.execute(
            "SELECT persona_id, item_id, repetition, rating, extra FROM responses"
        ).fetchall()
    return [(p, i, r, rating, json.loads(extra)["batch_id"]) for p, i, r, rating, extra in rows]


def _complete(store: Path) -> None:
    rows = _rows(store)
    assert len(rows) == SLOTS == len({r[:3] for r in rows})
    with sqlite3.connect(store) as conn:
        assert conn.execute("SELECT COUNT(*) FROM batch_slots").fetchone()[0] == 0


def _one_line(err: str, needle: str) -> str:
    lines = [line for line in err.splitlines() if needle in line]
    assert len(lines) == 1, err
    return lines[0]


# -- finding 1: adoption never takes another run's batch ------------------------------


def _another_run_same_size(srv: LoopbackServer, tmp_path: Path, personas: Path) -> set[str]:
    """Run B: another model, another store, the same size; returns its batch ids."""
    before = set(srv.batches.batches)
    other = tmp_path / "other.db"
    run_collection(_options(srv, other, personas, "anthropic", name="sim-other"))
    _complete(other)
    return set(srv.batches.batches) - before


def test_a_definitely_refused_create_clears_its_intent(tmp_path: Path, persona_file: Path) -> None:
    store = tmp_path / "a.db"
    with _server() as srv:
        srv.batches.set_script(BatchScript(polls=1, refuse=1, refuse_status=400))
        options = _options(srv, store, persona_file, "anthropic")
        with pytest.raises(ConfigError):
            run_collection(options)
        assert srv.batches.created == 0
        with sqlite3.connect(store) as conn:  # a 400 created nothing: no intent is left
            assert conn.execute("SELECT COUNT(*) FROM batch_jobs").fetchone()[0] == 0
        theirs = _another_run_same_size(srv, tmp_path, persona_file)
        outcome = run_collection(options)
    assert outcome.stats.adopted == 0  # type: ignore[attr-defined]
    _complete(store)
    assert not {r[4] for r in _rows(store)} & theirs  # none of run B's answers


def test_an_uncertain_create_adopts_only_lines_this_run_sent(
    tmp_path: Path, persona_file: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    store = tmp_path / "a.db"
    with _server() as srv:
        # A 500: the provider may have created it, so the intent stays and is resolved.
        srv.batches.set_script(BatchScript(polls=1, refuse=1, refuse_status=500))
        options = _options(srv, store, persona_file, "anthropic")
        with pytest.raises(ConfigError):
            run_collection(options)
        theirs = _another_run_same_size(srv, tmp_path, persona_file)
        capsys.readouterr()
        run_collection(options)
        err = capsys.readouterr().err
    _complete(store)
    assert not {r[4] for r in _rows(store)} & theirs  # B's batch read, every line refused
    assert "never sent" in _one_line(err, "ignored")


def test_a_refused_create_from_a_stored_upload_clears_its_intent(
    tmp_path: Path, persona_file: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from persona_collapse.backends.sdk import OpenAIBatchAPI

    store = tmp_path / "o.db"
    with _server() as srv:
        options = _options(srv, store, persona_file, method="logprobs")

        async def killed_create(*args: object, **kw: object) -> str:
            raise KeyboardInterrupt

        with monkeypatch.context() as m:  # killed after the upload, before the create
            m.setattr(OpenAIBatchAPI, "submit", killed_create)
            with simulated_kill():
                run_collection(options)
        srv.batches.set_script(BatchScript(polls=1, refuse=1, refuse_status=400))
        with pytest.raises(ConfigError):
            run_collection(options)  # the resume's create from the stored upload is refused
        with sqlite3.connect(store) as conn:
            assert conn.execute("SELECT COUNT(*) FROM batch_jobs").fetchone()[0] == 0
        run_collection(options)
        assert srv.batches.created == 1
    _complete(store)


# -- findings 2 and 3: duplicate, conflicting and never-sent lines ---------------------


@pytest.mark.parametrize("provider", PROVIDERS)
def test_conflicting_duplicate_lines_are_asked_again(
    tmp_path: Path, persona_file: Path, provider: str, capsys: pytest.CaptureFixture[str]
) -> None:
    store = tmp_path / "c.db"
    with _server() as srv:
        srv.batches.set_script(BatchScript(polls=1, lines=[LineFaults(duplicate=4, conflict=5)]))
        capsys.readouterr()
        outcome = run_collection(_options(srv, store, persona_file, provider))
        err = capsys.readouterr().err
        # Each failed attempt costs one more line, each conflicting slot one more.
        assert srv.batches.lines == SLOTS + outcome.stats.failures + 5
    _complete(store)
    assert "5 requests" in _one_line(err, "different answers")
    assert "different answers" in outcome.summary()


@pytest.mark.parametrize("provider", PROVIDERS)
def test_lines_for_attempts_never_sent_are_ignored_and_counted(
    tmp_path: Path, persona_file: Path, provider: str, capsys: pytest.CaptureFixture[str]
) -> None:
    store = tmp_path / "n.db"
    with _server(FaultConfig(non_digit_rate=0.5, seed=3)) as srv:
        srv.batches.set_script(BatchScript(polls=1, lines=[LineFaults(foreign=SLOTS)]))
        capsys.readouterr()
        outcome = run_collection(_options(srv, store, persona_file, provider))
        err = capsys.readouterr().err
        assert outcome.stats.failures > 0
        # No slot was stored from a line it never sent: every failure was asked again.
        assert srv.batches.lines == SLOTS + outcome.stats.failures
    _complete(store)
    assert f"{SLOTS} result lines" in _one_line(err, "ignored")


# -- finding 7: a null or malformed line is a transport fault --------------------------


@pytest.mark.parametrize("provider", PROVIDERS)
def test_null_and_malformed_lines_are_asked_again(
    tmp_path: Path, persona_file: Path, provider: str
) -> None:
    store = tmp_path / "m.db"
    with _server() as srv:
        srv.batches.set_script(BatchScript(polls=1, lines=[LineFaults(null=3, malformed=2)]))
        outcome = run_collection(_options(srv, store, persona_file, provider))
        sent = [line["custom_id"] for b in srv.batches.batches.values() for line in b.lines]
    _complete(store)
    assert outcome.stats.retries == 5  # transport faults, never attempts
    # Every custom id carries its round's nonce and fits Anthropic's [A-Za-z0-9_-]{1,64}.
    assert all(re.fullmatch(r"p\d+i\d+r\d+a\d+_[0-9a-f]{12}", cid) for cid in sent)


# -- finding 8: results past the provider's retention -----------------------------------


@pytest.mark.parametrize("provider", PROVIDERS)
def test_gone_results_are_said_and_submitted_again(
    tmp_path: Path, persona_file: Path, provider: str, capsys: pytest.CaptureFixture[str]
) -> None:
    store = tmp_path / "g.db"
    with _server() as srv:
        srv.batches.set_script(BatchScript(polls=1, lines=[LineFaults(gone=True)]))
        capsys.readouterr()
        run_collection(_options(srv, store, persona_file, provider))
        err = capsys.readouterr().err
        assert srv.batches.lines >= 2 * SLOTS  # the gone batch's requests were sent again
    _complete(store)
    line = _one_line(err, "404")
    assert "no longer available" in line and "submitted again" in line
    assert "unknown model" not in err


def test_a_resume_submits_the_requests_of_gone_results_again(
    tmp_path: Path, persona_file: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    store = tmp_path / "rg.db"
    with _server() as srv:
        srv.batches.set_script(BatchScript(polls=-1))
        options = _options(srv, store, persona_file, method="logprobs", batch_timeout_s=0.2)
        with pytest.raises(ConfigError):
            run_collection(options)  # stopped while the batch was in flight
        for batch in srv.batches.batches.values():  # it ends past the provider's retention
            batch.polls_left, batch.faults = 0, LineFaults(gone=True)
        srv.batches.set_script(BatchScript(polls=1))
        capsys.readouterr()
        run_collection(options)
        assert "submitted again" in _one_line(capsys.readouterr().err, "404")
        assert srv.batches.created == 2 and srv.batches.lines == 2 * SLOTS
    _complete(store)


# -- finding 9: a batch that never ends -------------------------------------------------


def test_a_batch_that_never_ends_stops_at_the_deadline_and_resumes(
    tmp_path: Path, persona_file: Path
) -> None:
    store = tmp_path / "t.db"
    with _server() as srv:
        srv.batches.set_script(BatchScript(polls=-1))
        options = _options(srv, store, persona_file, method="logprobs", batch_timeout_s=0.3)
        with pytest.raises(ConfigError) as caught:
            run_collection(options)
        message = caught.value.message
        assert "--batch-timeout" in message and "again" in message and "\n" not in message
        assert srv.batches.created == 1
        for batch in srv.batches.batches.values():
            batch.polls_left = 0
        run_collection(options)  # the resume polls the same batch: nothing paid twice
        assert srv.batches.created == 1 and srv.batches.lines == SLOTS
    _complete(store)


def test_batch_timeout_on_the_command_line(
    tmp_path: Path, persona_file: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    store = tmp_path / "cli.db"
    with _server() as srv:
        srv.batches.set_script(BatchScript(polls=-1))
        argv = [
            "run", "openai/sim-base", "--base-url", srv.base_url, "--store", str(store),
            "--personas", str(persona_file), "--n-personas", "2", "--reps", "1",
            "--method", "logprobs", "--quiet", "--batch", "--batch-poll", "0.05",
        ]  # fmt: skip
        result = run_cli(capsys, *argv, "--batch-timeout", "0.3")
    assert result.status == 2
    err = [line for line in result.err.splitlines() if line.strip()]
    assert "Traceback" not in result.err and len(err) == 1, result.err
    assert "has not ended after 0.3 s (--batch-timeout)" in err[0] and "resume" in err[0]


def test_batch_timeout_without_batch_is_refused(
    tmp_path: Path, persona_file: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    with pytest.raises(ConfigError, match="--batch-timeout needs --batch"):
        RunOptions(model="openai/gpt-4o-mini", batch_timeout_s=60.0)
    with pytest.raises(ConfigError, match="--batch-timeout must be a positive"):
        RunOptions(model="openai/gpt-4o-mini", batch=True, batch_timeout_s=0.0)
    with pytest.raises(ConfigError, match="--batch-timeout needs --batch"):
        RunOptions(model="hf/tiny", ray="local", batch_timeout_s=60.0)
    result = run_cli(capsys, "run", "openai/gpt-4o-mini", "--batch-timeout", "60")
    assert result.status == 2 and "--batch-timeout needs --batch" in result.err
    assert "Traceback" not in result.err


@pytest.mark.parametrize("provider", PROVIDERS)
@pytest.mark.parametrize("status", [503, 429])
def test_a_poll_that_fails_transiently_is_sent_again(
    tmp_path: Path, persona_file: Path, provider: str, status: int
) -> None:
    """A 5xx or 429 while polling is waited out and the poll sent again (it only reads):
    the run completes from the one batch it created, nothing lost or doubled."""
    store = tmp_path / "t.db"
    with _server() as srv:
        srv.batches.set_script(BatchScript(poll_errors=2, poll_error_status=status))
        method = "logprobs" if provider == "openai" else "sample"  # anthropic has no logprobs
        run_collection(_options(srv, store, persona_file, provider, method=method))
        assert srv.batches.script.poll_errors == 0  # both errors were met
        if method == "logprobs":  # one round: every answer is a distribution
            assert srv.batches.created == 1 and srv.batches.lines == SLOTS
    _complete(store)
