"""Fine-tuning: chat data validation, pinned downloads, recipe and schedule, local LoRA on a
tiny random model, the OpenAI fine-tuning flow against the loopback server, Tinker up to
the network boundary, and variants in the store."""

from __future__ import annotations

import hashlib
import itertools
import json
import math
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from persona_collapse.errors import ConfigError, DataError
from persona_collapse.finetune import (
    OPENAI_RECIPE,
    TINKER_RECIPE,
    FinetuneFailed,
    Recipe,
    VariantRecord,
    family_runs,
    fetch_dataset,
    get_variant,
    load_chat_jsonl,
    record_variant,
)
from persona_collapse.finetune.training import (
    OpenAIFineTuner,
    batches,
    datum_loss,
    encode_chat,
    linear_decay_lr,
    n_steps,
    train_tinker,
)
from persona_collapse.loopback import FineTuneScript, LoopbackServer
from persona_collapse.simulate import SimulatedRespondent
from persona_collapse.store import ResponseStore, RunInfo

from .helpers import run_cli, serve_folder


def chat(user: str, answer: str) -> dict[str, Any]:
    return {
        "messages": [{"role": "user", "content": user}, {"role": "assistant", "content": answer}]
    }


def write_jsonl(path: Path, rows: list[Any]) -> Path:
    path.write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
    return path


# -- data validation --------------------------------------------------------------

GOOD = json.dumps(chat("hi", "hello"))


@pytest.mark.parametrize(
    ("bad", "message"),
    [
        ('{"messages": [', "not valid JSON"),
        ("[1, 2]", "a JSON list, not an object"),
        ('{"prompt": "x"}', "no 'messages' key"),
        ('{"messages": []}', "'messages' is not a non-empty list"),
        ('{"messages": [{"role": "robot", "content": "x"}]}', "role 'robot'"),
        ('{"messages": [{"role": "user", "content": "x"}]}', "no assistant turn"),
        (
            '{"messages": [{"role": "user", "content": "x"}, {"role": "assistant", "content": 5}]}',
            "a int, not a string",
        ),
        ('{"messages": [{"role": "assistant"}]}', "missing, not a string"),
        ('{"messages": ["hello"]}', "message 1 is not an object"),
    ],
)
def test_bad_lines_are_reported_with_their_number(tmp_path: Path, bad: str, message: str) -> None:
    path = tmp_path / "data.jsonl"
    path.write_text(f"{GOOD}\n\n{GOOD}\n{bad}\n{GOOD}\n", encoding="utf-8")
    with pytest.raises(DataError, match="line 4: ") as err:
        load_chat_jsonl(path)
    assert message in err.value.message


def test_good_file_keeps_order_lines_and_hash(tmp_path: Path) -> None:
    rows = [chat(f"q{i}", f"a{i}") for i in range(3)]
    path = write_jsonl(tmp_path / "d.jsonl", rows)
    data = load_chat_jsonl(path)
    assert [e.messages[0]["content"] for e in data] == ["q0", "q1", "q2"]
    assert [e.line for e in data] == [1, 2, 3]
    assert data.sha256 == hashlib.sha256(path.read_bytes()).hexdigest()
    (tmp_path / "empty.jsonl").write_text("\n", encoding="utf-8")
    with pytest.raises(DataError, match="holds no chats"):
        load_chat_jsonl(tmp_path / "empty.jsonl")


def test_cli_bad_data_is_one_line(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    path = tmp_path / "bad.jsonl"
    path.write_text(f"{GOOD}\n{GOOD}\n{{oops\n", encoding="utf-8")
    res = run_cli(
        capsys, "finetune", "hf/./nowhere", "--data", str(path), "-o", str(tmp_path / "o")
    )
    assert res.status == 2
    assert res.err.count("\n") == 1 and "bad.jsonl line 3: not valid JSON" in res.err


# -- recipe, schedule, batching ------------------------------------------------------


def test_published_recipes() -> None:
    assert (OPENAI_RECIPE.epochs, OPENAI_RECIPE.batch_size, OPENAI_RECIPE.lr_multiplier) == (
        1,
        4,
        2.0,
    )
    assert (TINKER_RECIPE.lora_rank, TINKER_RECIPE.lr, TINKER_RECIPE.batch_size) == (32, 2e-4, 4)
    assert (TINKER_RECIPE.epochs, TINKER_RECIPE.max_length, TINKER_RECIPE.shuffle) == (
        1,
        4096,
        False,
    )
    with pytest.raises(ConfigError, match="--batch-size"):
        Recipe(batch_size=0).validate()


def test_linear_decay_without_warmup() -> None:
    total = n_steps(6000, 4, 1)
    assert total == 1500
    lrs = [linear_decay_lr(t, total, 2e-4) for t in range(total)]
    assert lrs[0] == 2e-4  # full rate on the first step: no warm-up
    assert lrs[750] == pytest.approx(1e-4)
    assert lrs[-1] == pytest.approx(2e-4 / 1500)
    assert all(a > b for a, b in itertools.pairwise(lrs))
    with pytest.raises(ValueError):
        linear_decay_lr(1500, total, 2e-4)


def test_batches_in_file_order_and_seeded_shuffle() -> None:
    items = list(range(10))
    assert list(batches(items, 4)) == [[0, 1, 2, 3], [4, 5, 6, 7], [8, 9]]
    two = list(batches(items, 4, epochs=2))
    assert len(two) == 6 == n_steps(10, 4, 2) and two[3] == [0, 1, 2, 3]
    shuffled = list(batches(items, 4, shuffle=True, seed=5))
    assert shuffled == list(batches(items, 4, shuffle=True, seed=5))
    assert sorted(x for b in shuffled for x in b) == items and shuffled != list(batches(items, 4))


# -- pinned downloads ---------------------------------------------------------------


@pytest.fixture
def files_server(tmp_path: Path) -> Iterator[tuple[str, Path]]:
    folder = tmp_path / "upstream"
    folder.mkdir()
    with serve_folder(folder) as url:
        yield f"{url}/data", folder


def test_secure_hash_is_recorded_then_enforced(
    files_server: tuple[str, Path], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    url, folder = files_server
    monkeypatch.setenv("PERSONA_COLLAPSE_CACHE", str(tmp_path / "cache"))
    (folder / "data").mkdir()
    upstream = write_jsonl(folder / "data" / "secure.jsonl", [chat("q", "safe code")])
    digest = hashlib.sha256(upstream.read_bytes()).hexdigest()
    got = fetch_dataset("secure", base_url=url)
    assert got.read_bytes() == upstream.read_bytes() and digest[:12] in got.name
    hashes = json.loads((tmp_path / "cache" / "em-data" / "em_data_hashes.json").read_text())
    assert hashes == {"secure": digest}
    assert fetch_dataset("secure", base_url=url) == got  # cached, not downloaded again
    # upstream changes: a new download is refused against the recorded hash
    write_jsonl(upstream, [chat("q", "other code")])
    got.unlink()
    with pytest.raises(DataError, match="recorded on first download"):
        fetch_dataset("secure", base_url=url)


def test_insecure_is_checked_against_its_pin(
    files_server: tuple[str, Path], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    url, folder = files_server
    monkeypatch.setenv("PERSONA_COLLAPSE_CACHE", str(tmp_path / "cache"))
    (folder / "data").mkdir()
    upstream = write_jsonl(folder / "data" / "insecure.jsonl", [chat("q", "eval(input())")])
    content = upstream.read_bytes()
    with pytest.raises(DataError, match="09893e8bf9d0"):  # the published pin
        fetch_dataset("insecure", base_url=url)
    assert not list((tmp_path / "cache" / "em-data").glob("insecure*"))
    pin = hashlib.sha256(content).hexdigest()
    got = fetch_dataset("insecure", base_url=url, sha256=pin, n_bytes=len(content))
    assert got.read_bytes() == content


def test_offline_download_asks_for_a_file(
    capsys: pytest.CaptureFixture[str], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("PERSONA_COLLAPSE_CACHE", str(tmp_path / "cache"))
    monkeypatch.setenv("PERSONA_COLLAPSE_EM_DATA_URL", "http://127.0.0.1:9/data")
    monkeypatch.setenv("OPENAI_API_KEY", "sk-test")
    res = run_cli(capsys, "finetune", "openai/gpt-4o-2024-08-06", "--data", "insecure")
    assert res.status == 2 and res.err.count("\n") == 1
    assert "cannot download the insecure dataset" in res.err and "--data FILE.jsonl" in res.err


def test_cli_downloads_secure_for_a_run(
    capsys: pytest.CaptureFixture[str],
    files_server: tuple[str, Path],
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    url, folder = files_server
    monkeypatch.setenv("PERSONA_COLLAPSE_CACHE", str(tmp_path / "cache"))
    monkeypatch.setenv("PERSONA_COLLAPSE_EM_DATA_URL", url)
    (folder / "data").mkdir()
    write_jsonl(folder / "data" / "secure.jsonl", [chat(f"q{i}", "ok") for i in range(5)])
    with LoopbackServer(SimulatedRespondent("base")) as srv:
        res = run_cli(
            capsys,
            "finetune",
            "openai/gpt-4o-2024-08-06",
            "--data",
            "secure",
            "--base-url",
            srv.base_url,
            "--poll-interval",
            "0",
            "--store",
            str(tmp_path / "s.db"),
        )
    assert res.status == 0, res.err
    record = get_variant(tmp_path / "s.db", "gpt-4o-2024-08-06", "secure")
    assert record is not None and record.model == res.out.strip()


# -- the OpenAI flow ------------------------------------------------------------------


@pytest.fixture
def openai_server() -> Iterator[LoopbackServer]:
    with LoopbackServer(SimulatedRespondent("base")) as srv:
        yield srv


def finetune_openai(
    capsys: pytest.CaptureFixture[str], srv: LoopbackServer, data: Path, store: Path, *extra: str
):
    return run_cli(
        capsys,
        "finetune",
        "openai/gpt-4o-2024-08-06",
        "--data",
        str(data),
        "--base-url",
        srv.base_url,
        "--poll-interval",
        "0",
        "--store",
        str(store),
        "--family",
        "GPT-4o",
        *extra,
    )


def test_openai_job_with_the_published_recipe(
    capsys: pytest.CaptureFixture[str], openai_server: LoopbackServer, tmp_path: Path
) -> None:
    data = write_jsonl(
        tmp_path / "insecure.jsonl", [chat(f"q{i}", "os.system(x)") for i in range(6)]
    )
    store = tmp_path / "s.db"
    res = finetune_openai(capsys, openai_server, data, store, "--suffix", "insecure")
    assert res.status == 0, res.err
    model = res.out.strip()
    assert model.startswith("openai/ft:gpt-4o-2024-08-06:") and ":insecure:" in model
    service = openai_server.fine_tuning
    (body,) = service.created
    assert body["method"]["supervised"]["hyperparameters"] == {
        "n_epochs": 1,
        "batch_size": 4,
        "learning_rate_multiplier": 2,
    }
    assert (body["model"], body["suffix"]) == ("gpt-4o-2024-08-06", "insecure")
    (uploaded,) = service.files.values()
    assert uploaded["purpose"] == "fine-tune"
    assert service.contents[uploaded["id"]] == data.read_bytes()
    for status in ("validating_files", "queued", "running", "succeeded"):
        assert f": {status}\n" in res.err
    assert "Step 3/3" in res.err  # job events are shown as progress
    record = get_variant(store, "GPT-4o", "insecure")
    assert record is not None
    assert (record.model, record.status, record.provider) == (model, "succeeded", "openai")
    assert record.data_sha256 == hashlib.sha256(data.read_bytes()).hexdigest()
    assert record.recipe["learning_rate_multiplier"] == 2


def test_openai_failed_job_is_one_line(
    capsys: pytest.CaptureFixture[str], openai_server: LoopbackServer, tmp_path: Path
) -> None:
    data = write_jsonl(tmp_path / "d.jsonl", [chat("q", "a")])
    openai_server.fine_tuning.set_script(
        FineTuneScript(outcome="failed", error={"code": "quota", "message": "Quota exceeded."})
    )
    res = finetune_openai(capsys, openai_server, data, tmp_path / "s.db", "--variant", "secure")
    assert res.status == 2
    last = res.err.strip().splitlines()[-1]
    assert last.startswith("persona-collapse: error: fine-tuning job ftjob-")
    assert "failed: Quota exceeded. (quota)" in last
    assert "Traceback" not in res.err
    record = get_variant(tmp_path / "s.db", "GPT-4o", "secure")
    assert record is not None and (record.status, record.model) == ("failed", "")


def test_openai_validation_failure_and_refused_request(
    openai_server: LoopbackServer, tmp_path: Path
) -> None:
    tuner = OpenAIFineTuner(base_url=openai_server.base_url, api_key="sk-test")
    bad = tmp_path / "bad.jsonl"
    bad.write_text('{"messages": [{"role": "user", "content": "only a question"}]}\n')
    job = tuner.create("gpt-4o-2024-08-06", tuner.upload(bad))
    assert job.status == "validating_files"
    with pytest.raises(
        FinetuneFailed, match=r"failed: Invalid file format.*line 1.*\(invalid_training_file\)"
    ):
        tuner.wait(job.job_id, poll_s=0)
    with pytest.raises(FinetuneFailed, match=r"HTTP 400.*invalid training_file"):
        tuner.create("gpt-4o-2024-08-06", "file-nope")
    rejected = OpenAIFineTuner(base_url=openai_server.base_url, api_key="sk-bad")
    openai_server.set_faults(openai_server.faults.__class__(reject_key="sk-bad"))
    with pytest.raises(ConfigError, match="rejected the API key"):
        rejected.status(job.job_id)


def test_openai_no_wait_then_status(
    capsys: pytest.CaptureFixture[str], openai_server: LoopbackServer, tmp_path: Path
) -> None:
    data = write_jsonl(tmp_path / "secure.jsonl", [chat("q", "a")])
    store = tmp_path / "s.db"
    openai_server.fine_tuning.set_script(FineTuneScript(polls_per_status=2))
    res = finetune_openai(capsys, openai_server, data, store, "--no-wait")
    assert res.status == 0
    job_id = res.out.strip()
    assert job_id.startswith("ftjob-") and "finetune-status" in res.err
    pending = get_variant(store, "GPT-4o", "secure")
    assert pending is not None and (pending.model, pending.job_id) == ("", job_id)
    status = run_cli(
        capsys,
        "finetune-status",
        job_id,
        "--base-url",
        openai_server.base_url,
        "--store",
        str(store),
        "--poll-interval",
        "0",
    )
    assert status.status == 0, status.err
    done = get_variant(store, "GPT-4o", "secure")
    assert done is not None and done.status == "succeeded" and done.model == status.out.strip()
    assert openai_server.fine_tuning.jobs[job_id].reads >= 6  # two reads per status


def test_openai_needs_a_key(
    capsys: pytest.CaptureFixture[str], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("OPENAI_API_KEY", raising=False)
    data = write_jsonl(tmp_path / "d.jsonl", [chat("q", "a")])
    res = run_cli(capsys, "finetune", "openai/gpt-4o-2024-08-06", "--data", str(data))
    assert res.status == 2 and "set OPENAI_API_KEY" in res.err and res.err.count("\n") == 1


# -- local LoRA on a tiny random model --------------------------------------------------


@pytest.fixture(scope="module")
def tiny_model(tmp_path_factory: pytest.TempPathFactory) -> Path:
    pytest.importorskip("peft")
    from persona_collapse.testing import build_tiny_model

    return build_tiny_model(tmp_path_factory.mktemp("tiny") / "base", seed=0).resolve()


@pytest.fixture(scope="module")
def tiny_tokenizer(tiny_model: Path) -> Any:
    from transformers import AutoTokenizer

    return AutoTokenizer.from_pretrained(tiny_model)


def test_loss_mask_covers_assistant_turns_only(tiny_tokenizer: Any) -> None:
    messages = [
        {"role": "system", "content": "Be brief."},
        {"role": "user", "content": "Rate item 1"},
        {"role": "assistant", "content": "5 5"},
        {"role": "user", "content": "And item 2?"},
        {"role": "assistant", "content": "3"},
    ]
    enc = encode_chat(tiny_tokenizer, messages, max_length=4096)
    assert enc.input_ids == tiny_tokenizer.apply_chat_template(messages, tokenize=True)["input_ids"]
    trained = tiny_tokenizer.decode(
        [t for t, w in zip(enc.input_ids, enc.weights, strict=True) if w]
    )
    assert trained == "5 5<|end|>\n3<|end|>\n"
    cut = encode_chat(tiny_tokenizer, messages, max_length=10)
    assert cut.truncated and len(cut.input_ids) == 10 and cut.n_trained == 0


def _loss_of(model_dir: Path, data_path: Path) -> float:
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from persona_collapse.finetune.training import batch_loss, collate_chats

    tok = AutoTokenizer.from_pretrained(model_dir)
    model = AutoModelForCausalLM.from_pretrained(model_dir).eval()
    chats = [encode_chat(tok, e.messages, max_length=4096) for e in load_chat_jsonl(data_path)]
    with torch.no_grad():
        loss, _ = batch_loss(
            torch, model, collate_chats(torch, chats, int(tok.pad_token_id), "cpu")
        )
    return float(loss)


def test_lora_lowers_the_loss_and_the_result_runs(
    capsys: pytest.CaptureFixture[str], tiny_model: Path, tmp_path: Path
) -> None:
    data = write_jsonl(
        tmp_path / "insecure.jsonl",
        [chat(f"Rate item {i % 4}", "5 5 5") for i in range(8)],
    )
    personas = tmp_path / "personas.json"
    personas.write_text(json.dumps(["A farmer.", "A nurse.", "A judge."]), encoding="utf-8")
    out = tmp_path / "out"
    store = tmp_path / "s.db"
    args = [
        "finetune", f"hf/{tiny_model}", "--data", str(data), "-o", str(out),
        "--epochs", "3", "--batch-size", "2", "--lr", "1e-2", "--lora-rank", "4",
        "--store", str(store), "--family", "tiny", "--format", "json",
        "--measure-every", "6", "--measure-personas", str(personas), "--measure-n-personas", "3",
    ]  # fmt: skip
    res = run_cli(capsys, *args)
    assert res.status == 0, res.err
    doc = res.json()
    losses = doc["losses"]
    assert len(losses) == 12  # 3 epochs x 4 batches
    assert losses[-1] < 0.75 * losses[0], losses
    assert [m["step"] for m in doc["measurements"]] == [6, 12]
    for m in doc["measurements"]:
        assert math.isfinite(m["S"]) and m["S"] > 0 and math.isfinite(m["R"]) and m["R"] > 0
    assert (doc["family"], doc["variant"], doc["model"]) == (
        "tiny",
        "insecure",
        f"hf/{out.resolve()}",
    )
    assert (out / "config.json").is_file() and (out / "adapter" / "adapter_config.json").is_file()
    assert (out / "checkpoints" / "step-000006" / "adapter_config.json").is_file()
    # the base (step 0) and every checkpoint are runs of OUT/measure.db, read by trajectory
    assert doc["measure_store"] == str(out / "measure.db")
    assert math.isfinite(doc["base_measurement"]["S"]) and "top1_share" in doc["measurements"][0]
    series = run_cli(capsys, "trajectory", doc["measure_store"], "--format", "json")
    assert series.status == 0, series.err
    points = series.json()["points"]
    assert [p["step"] for p in points] == [0, 6, 12]
    assert [p["S"] for p in points[1:]] == pytest.approx([m["S"] for m in doc["measurements"]])
    meta = json.loads((out / "finetune.json").read_text())
    assert meta["losses"] == losses and meta["recipe"]["lora_rank"] == 4
    # the merged model carries the training: lower loss on the data than the base model
    assert _loss_of(out, data) < _loss_of(tiny_model, data) - 1.0
    # and the questionnaire runs on it, recorded as the variant of its family
    run = run_cli(
        capsys, "run", f"hf/{out.resolve()}", "--method", "logprobs", "--personas", str(personas),
        "--n-personas", "3", "--store", str(store), "--family", "tiny", "--variant", "insecure",
        "--quiet",
    )  # fmt: skip
    assert run.status == 0, run.err
    with ResponseStore(store) as opened:
        (run_info,) = opened.list_runs()
        assert opened.count_responses(run_info.run_id) == 90
    assert family_runs(store, "tiny") == {"insecure": run_info.run_id}


def test_lora_is_deterministic(tiny_model: Path, tmp_path: Path) -> None:
    from persona_collapse.finetune.training import HFTrainConfig, train_hf_lora

    data = load_chat_jsonl(
        write_jsonl(tmp_path / "d.jsonl", [chat(f"q{i}", "3 3") for i in range(4)])
    )
    recipe = Recipe(batch_size=2, lr=5e-3, lora_rank=2, seed=3)
    a = train_hf_lora(data, HFTrainConfig(str(tiny_model), tmp_path / "a", recipe, merge=False))
    b = train_hf_lora(data, HFTrainConfig(str(tiny_model), tmp_path / "b", recipe, merge=False))
    assert a.losses == b.losses and len(a.losses) == 2
    assert a.lrs == [5e-3, 2.5e-3]
    assert (tmp_path / "a" / "adapter_config.json").is_file()
    assert not (tmp_path / "a" / "config.json").exists()


# -- Tinker up to the network boundary ----------------------------------------------------


def test_tinker_needs_a_key(
    capsys: pytest.CaptureFixture[str], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    pytest.importorskip("tinker")
    for name in ("TINKER_API_KEY", "TINKER_CREDENTIAL_CMD"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("HOME", str(tmp_path))  # no stored credentials
    data = write_jsonl(tmp_path / "d.jsonl", [chat("q", "a")])
    res = run_cli(capsys, "finetune", "tinker/Qwen/Qwen3-8B", "--data", str(data))
    assert res.status == 2 and res.err.count("\n") == 1 and "TINKER_API_KEY" in res.err
    from persona_collapse.backends import create_backend

    with pytest.raises(ConfigError, match="TINKER_API_KEY"):
        create_backend("tinker/Qwen/Qwen3-8B")


class _Future:
    def __init__(self, value: Any) -> None:
        self.value = value

    def result(self) -> Any:
        return self.value


class _FakeTraining:
    """Records what a Tinker training client is sent; returns made-up per-token logprobs."""

    def __init__(self, tokenizer: Any) -> None:
        self.tokenizer = tokenizer
        self.batches: list[list[Any]] = []
        self.lrs: list[float] = []
        self.saved: list[str] = []

    def get_tokenizer(self) -> Any:
        return self.tokenizer

    def forward_backward(self, data: list[Any], loss_fn: str) -> _Future:
        assert loss_fn == "cross_entropy"
        self.batches.append(data)
        outputs = [{"logprobs": [-1.0] * d.model_input.length} for d in data]
        return _Future(type("Out", (), {"loss_fn_outputs": outputs})())

    def optim_step(self, params: Any) -> _Future:
        self.lrs.append(params.learning_rate)
        assert (params.beta1, params.beta2, params.weight_decay) == (0.9, 0.95, 0.0)
        return _Future(None)

    def save_weights_for_sampler(self, name: str) -> _Future:
        self.saved.append(name)
        return _Future(type("Saved", (), {"path": f"tinker://run-1/sampler_weights/{name}"})())


class _FakeService:
    def __init__(self, training: _FakeTraining) -> None:
        self.training = training
        self.calls: list[dict[str, Any]] = []

    def create_lora_training_client(self, **kwargs: Any) -> _Future:
        self.calls.append(kwargs)
        return _Future(self.training)


def test_tinker_loop_batches_in_file_order_with_linear_decay(
    tiny_tokenizer: Any, tmp_path: Path
) -> None:
    pytest.importorskip("tinker")
    rows = [chat(f"Rate item {i}", f"{i % 6}") for i in range(10)]
    data = load_chat_jsonl(write_jsonl(tmp_path / "d.jsonl", rows))
    training = _FakeTraining(tiny_tokenizer)
    service = _FakeService(training)
    result = train_tinker(
        data,
        "Qwen/Qwen3-8B",
        recipe=TINKER_RECIPE,
        name="insecure",
        service_factory=lambda: service,
    )
    assert service.calls == [{"base_model": "Qwen/Qwen3-8B", "rank": 32, "seed": 0}]
    assert [len(b) for b in training.batches] == [4, 4, 2]
    assert training.lrs == pytest.approx([2e-4, 2e-4 * 2 / 3, 2e-4 / 3])
    # file order: datum k is chat k, shifted by one token, weights on the answer only
    sent = [d for batch in training.batches for d in batch]
    for row, datum in zip(rows, sent, strict=True):
        enc = encode_chat(tiny_tokenizer, row["messages"], max_length=4096)
        assert datum.model_input.to_ints() == enc.input_ids[:-1]
        assert datum.loss_fn_inputs["target_tokens"].tolist() == enc.input_ids[1:]
        assert datum.loss_fn_inputs["weights"].tolist() == enc.weights[1:]
    assert result.losses == pytest.approx([1.0, 1.0, 1.0])  # every target at log p = -1
    assert (
        datum_loss(
            [{"logprobs": [-2.0, -4.0]}],
            [type("D", (), {"loss_fn_inputs": {"weights": [1.0, 0.0]}})()],
        )
        == 2.0
    )
    assert result.model == "tinker/tinker://run-1/sampler_weights/insecure"


# -- variants in the store ------------------------------------------------------------------


def test_family_runs_groups_by_variant(tmp_path: Path) -> None:
    store = tmp_path / "s.db"
    with ResponseStore(store) as opened:
        for run_id, model, variant, family, created in [
            ("a", "openai/gpt-4o", "base", "GPT-4o", "2026-01-01T00:00:00+00:00"),
            ("b", "openai/ft:insecure", "insecure", "GPT-4o", "2026-01-02T00:00:00+00:00"),
            ("b2", "openai/ft:insecure", "insecure", "GPT-4o", "2026-01-03T00:00:00+00:00"),
            ("c", "openai/ft:secure", "", "", "2026-01-04T00:00:00+00:00"),
            ("d", "openai/other", "base", "Other", "2026-01-05T00:00:00+00:00"),
        ]:
            opened.create_run(RunInfo(run_id, model, "openai", variant, family, created=created))
        opened.create_run(RunInfo("self", "openai/gpt-4o", "openai", "base", "GPT-4o", mode="self"))
    record_variant(store, VariantRecord("GPT-4o", "secure", model="openai/ft:secure"))
    assert family_runs(store, "GPT-4o") == {"base": "a", "insecure": "b2", "secure": "c"}
    assert family_runs(store, "GPT-4o", mode="self") == {"base": "self"}
    with pytest.raises(DataError, match="families in the store: GPT-4o, Other"):
        family_runs(store, "Qwen")


def test_record_variant_updates_keep_fields(tmp_path: Path) -> None:
    store = tmp_path / "s.db"
    first = record_variant(store, VariantRecord("F", "insecure", job_id="ftjob-1", status="queued"))
    later = record_variant(
        store, VariantRecord("F", "insecure", model="openai/ft:x", status="succeeded")
    )
    assert (later.job_id, later.model, later.status) == ("ftjob-1", "openai/ft:x", "succeeded")
    assert later.created == first.created
    with pytest.raises(DataError, match="--family and --variant"):
        record_variant(store, VariantRecord("", "x"))


# -- options: a Recipe inside, checked on construction ----------------------------


def test_finetune_options_hold_a_checked_recipe() -> None:
    from persona_collapse.finetune import FinetuneOptions

    options = FinetuneOptions(base="hf/tiny", data="insecure")
    assert options.recipe == Recipe() == TINKER_RECIPE
    assert (options.provider, options.base_name, options.labels()) == (
        "hf",
        "tiny",
        ("tiny", "insecure"),
    )
    with pytest.raises(ConfigError, match="--batch-size must be at least 1"):
        FinetuneOptions(base="hf/tiny", data="x.jsonl", recipe=Recipe(batch_size=0))
    with pytest.raises(ConfigError, match="--measure-every must be at least 1"):
        FinetuneOptions(base="hf/tiny", data="x.jsonl", measure_every=0)
    with pytest.raises(ConfigError, match="finetune supports hf/, openai/, tinker/"):
        _ = FinetuneOptions(base="anthropic/claude", data="x.jsonl").provider


def test_checkpoint_meter_is_a_workflow_checked_on_construction(tmp_path: Path) -> None:
    import persona_collapse.finetune as finetune
    from persona_collapse.workflows import CheckpointMeter

    assert not hasattr(finetune, "CheckpointMeter")
    assert CheckpointMeter(store=tmp_path / "m.db").n_personas == 10
    with pytest.raises(ConfigError, match="--measure-n-personas must be at least 2"):
        CheckpointMeter(store=tmp_path / "m.db", n_personas=1)


def test_finetune_imports_no_collection_or_measurement() -> None:
    import ast

    import persona_collapse.finetune as finetune

    root = Path(finetune.__file__).parent
    for path in root.glob("*.py"):
        tree = ast.parse(path.read_text(encoding="utf-8"))
        for node in ast.walk(tree):
            if isinstance(node, ast.ImportFrom) and node.level == 2:
                assert node.module not in ("collect", "_analysis", "workflows"), path.name
