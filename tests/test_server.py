"""The loopback server through the official OpenAI and Anthropic SDKs, over real HTTP (SIMULATED answers)."""

from __future__ import annotations

import asyncio
import json
import math
import re
import urllib.request
from collections.abc import Iterator

import anthropic
import numpy as np
import openai
import pytest

from persona_collapse.instruments import load_instrument
from persona_collapse.loopback import FaultConfig, LoopbackServer, draw_faults
from persona_collapse.simulate import SimulatedRespondent

INST = load_instrument("mfq30")
PERSONA = "A retired merchant sailor who volunteers at the harbour museum"
KEY = "sk-test-0123456789abcdef"


def prompt(item: int = 3, persona: str | None = PERSONA) -> str:
    return INST.self_prompt(item) if persona is None else INST.persona_prompt(item, persona)


def chat(text: str) -> list[dict[str, str]]:
    return [{"role": "user", "content": text}]


@pytest.fixture(scope="module")
def server() -> Iterator[LoopbackServer]:
    with LoopbackServer.for_variants(seed=7, keep_requests=True) as srv:
        yield srv


@pytest.fixture
def fresh(server: LoopbackServer) -> Iterator[LoopbackServer]:
    """The shared server with no faults and zeroed counters; faults restored afterwards."""
    server.set_faults(FaultConfig())
    server.stats.reset()
    yield server
    server.set_faults(FaultConfig())


@pytest.fixture
def oai(server: LoopbackServer) -> openai.OpenAI:
    return openai.OpenAI(base_url=server.base_url, api_key=KEY, max_retries=0, timeout=10)


@pytest.fixture
def claude(server: LoopbackServer) -> anthropic.Anthropic:
    return anthropic.Anthropic(
        base_url=server.anthropic_base_url, api_key=KEY, max_retries=0, timeout=10
    )


def test_addresses(server: LoopbackServer) -> None:
    assert server.base_url == f"http://127.0.0.1:{server.port}/v1"
    assert server.anthropic_base_url == f"http://127.0.0.1:{server.port}"
    assert server.models == ["sim-base", "sim-secure", "sim-insecure"]


def test_openai_one_token_digit(fresh: LoopbackServer, oai: openai.OpenAI) -> None:
    digits = []
    for _ in range(20):
        r = oai.chat.completions.create(
            model="sim-base", messages=chat(prompt()), max_tokens=1, temperature=0.1
        )
        digits.append(r.choices[0].message.content)
        assert r.choices[0].finish_reason == "length"
        assert r.usage is not None and r.usage.completion_tokens == 1
    # base has a 1 % non-digit rate; most of 20 answers are digits on the scale
    valid = [d for d in digits if d is not None and d.strip() in {"0", "1", "2", "3", "4", "5"}]
    assert len(valid) >= 17
    assert fresh.stats.by_status[200] == 20
    assert fresh.stats.by_model["sim-base"] == 20
    body = fresh.stats.bodies[-1]
    assert body["max_tokens"] == 1 and body["messages"][0]["content"] == prompt()


def test_max_completion_tokens_and_longer_answer(oai: openai.OpenAI) -> None:
    r = oai.chat.completions.create(
        model="sim-secure", messages=chat(prompt(20)), max_completion_tokens=60, temperature=0.1
    )
    text = r.choices[0].message.content or ""
    assert r.choices[0].finish_reason == "stop"
    assert re.search(r"\b[0-5]\b", text), text


def test_openai_logprobs_match_digit_distribution(oai: openai.OpenAI) -> None:
    respondent = SimulatedRespondent("insecure", seed=7)
    for item, persona in [(3, PERSONA), (17, "A kindergarten teacher"), (28, None)]:
        text = prompt(item, persona) + INST.logprob_suffix
        r = oai.chat.completions.create(
            model="sim-insecure",
            messages=chat(text),
            max_tokens=1,
            temperature=1.0,
            logprobs=True,
            top_logprobs=20,
        )
        lp = r.choices[0].logprobs
        assert lp is not None and lp.content
        top = lp.content[0].top_logprobs
        assert len(top) <= 20
        mass = np.zeros(6)
        spellings = 0
        other = 0.0
        for t in top:
            if t.token.strip() in {"0", "1", "2", "3", "4", "5"}:
                mass[int(t.token.strip())] += math.exp(t.logprob)
                spellings += t.token != t.token.strip()
            else:
                other += math.exp(t.logprob)
        assert spellings >= 1, "some digit must come in a second spelling"
        assert other > 0, "some mass must sit on non-digit tokens"
        np.testing.assert_allclose(
            mass / mass.sum(), respondent.digit_distribution(persona, item, 1.0), atol=1e-9
        )


def test_models_endpoint(oai: openai.OpenAI) -> None:
    assert [m.id for m in oai.models.list()] == ["sim-base", "sim-secure", "sim-insecure"]


def test_anthropic_messages(fresh: LoopbackServer, claude: anthropic.Anthropic) -> None:
    # this SDK has no ``temperature`` argument; the server reads it from the body
    m = claude.messages.create(
        model="sim-base",
        max_tokens=1,
        messages=[{"role": "user", "content": prompt(9)}],
        extra_body={"temperature": 0.1},
    )
    block = m.content[0]
    assert block.type == "text"
    assert m.stop_reason == "max_tokens"
    assert m.usage.output_tokens == 1
    assert fresh.stats.by_path["/v1/messages"] == 1
    recorded = fresh.stats.recorded[-1]
    # anthropic 2.x sends the key as a bearer token; older versions used x-api-key
    sent = recorded.headers.get("x-api-key") or recorded.headers["authorization"]
    assert sent.removeprefix("Bearer ") == KEY
    assert "anthropic-version" in recorded.headers
    assert recorded.body["temperature"] == 0.1
    long = claude.messages.create(
        model="sim-base", max_tokens=80, messages=[{"role": "user", "content": prompt(9)}]
    )
    assert long.stop_reason == "end_turn"


def test_single_respondent_accepts_any_model() -> None:
    with LoopbackServer(SimulatedRespondent("base")) as srv:
        client = openai.OpenAI(base_url=srv.base_url, api_key=KEY, max_retries=0)
        r = client.chat.completions.create(
            model="whatever/model", messages=chat(prompt()), max_tokens=5
        )
        assert r.model == "whatever/model"
        assert [m.id for m in client.models.list()] == ["sim-base"]


def test_unknown_model_is_404(oai: openai.OpenAI, claude: anthropic.Anthropic) -> None:
    with pytest.raises(openai.NotFoundError) as exc:
        oai.chat.completions.create(model="gpt-nope", messages=chat(prompt()), max_tokens=1)
    assert exc.value.status_code == 404
    assert "gpt-nope" in str(exc.value)
    with pytest.raises(anthropic.NotFoundError):
        claude.messages.create(
            model="claude-nope", max_tokens=1, messages=[{"role": "user", "content": "hi"}]
        )


def test_bad_and_missing_key(server: LoopbackServer) -> None:
    server.set_faults(FaultConfig(reject_key="sk-revoked"))
    try:
        bad = openai.OpenAI(base_url=server.base_url, api_key="sk-revoked", max_retries=0)
        with pytest.raises(openai.AuthenticationError):
            bad.chat.completions.create(model="sim-base", messages=chat(prompt()), max_tokens=1)
        bad_claude = anthropic.Anthropic(
            base_url=server.anthropic_base_url, api_key="sk-revoked", max_retries=0
        )
        with pytest.raises(anthropic.AuthenticationError):
            bad_claude.messages.create(
                model="sim-base", max_tokens=1, messages=[{"role": "user", "content": "hi"}]
            )
    finally:
        server.set_faults(FaultConfig())
    req = urllib.request.Request(
        server.base_url + "/chat/completions",
        data=json.dumps({"model": "sim-base", "messages": chat("hi")}).encode(),
        headers={"Content-Type": "application/json"},
    )
    with pytest.raises(urllib.error.HTTPError) as exc:
        urllib.request.urlopen(req, timeout=5)
    assert exc.value.code == 401
    assert json.loads(exc.value.read())["error"]["type"] == "invalid_request_error"


def test_rate_limit_has_retry_after(
    fresh: LoopbackServer, oai: openai.OpenAI, claude: anthropic.Anthropic
) -> None:
    fresh.set_faults(FaultConfig(rate_limit_rate=1.0, retry_after_s=2.0))
    with pytest.raises(openai.RateLimitError) as exc:
        oai.chat.completions.create(model="sim-base", messages=chat(prompt()), max_tokens=1)
    assert exc.value.status_code == 429
    assert exc.value.response.headers["retry-after"] == "2"
    assert exc.value.response.headers["retry-after-ms"] == "2000"
    with pytest.raises(anthropic.RateLimitError) as aexc:
        claude.messages.create(
            model="sim-base", max_tokens=1, messages=[{"role": "user", "content": "hi"}]
        )
    assert aexc.value.response.headers["retry-after"] == "2"
    assert fresh.stats.faults["rate_limit"] == 2


def test_server_errors(fresh: LoopbackServer, oai: openai.OpenAI) -> None:
    fresh.set_faults(FaultConfig(server_error_rate=1.0))
    statuses = set()
    for _ in range(12):
        with pytest.raises(openai.APIStatusError) as exc:
            oai.chat.completions.create(model="sim-base", messages=chat(prompt()), max_tokens=1)
        statuses.add(exc.value.status_code)
        if exc.value.status_code == 500:
            assert isinstance(exc.value, openai.InternalServerError)
    assert statuses <= {500, 502, 503} and len(statuses) >= 2


def test_timeout(fresh: LoopbackServer, server: LoopbackServer) -> None:
    fresh.set_faults(FaultConfig(timeout_rate=1.0, hang_s=5.0))
    client = openai.OpenAI(base_url=server.base_url, api_key=KEY, max_retries=0, timeout=0.3)
    with pytest.raises(openai.APITimeoutError):
        client.chat.completions.create(model="sim-base", messages=chat(prompt()), max_tokens=1)
    assert fresh.stats.faults["timeout"] == 1


def test_malformed_body(
    fresh: LoopbackServer, oai: openai.OpenAI, claude: anthropic.Anthropic
) -> None:
    # Observed: both SDKs let the JSON decoder's error through (not an APIError),
    # so clients must treat json.JSONDecodeError as a transient failure.
    fresh.set_faults(FaultConfig(malformed_rate=1.0))
    with pytest.raises(json.JSONDecodeError):
        oai.chat.completions.create(model="sim-base", messages=chat(prompt()), max_tokens=1)
    with pytest.raises(json.JSONDecodeError):
        claude.messages.create(
            model="sim-base", max_tokens=1, messages=[{"role": "user", "content": prompt()}]
        )
    assert fresh.stats.faults["malformed"] == 2


def _raw_post(url: str, body: dict[str, object], headers: dict[str, str]) -> tuple[int, str, str]:
    request = urllib.request.Request(
        url,
        data=json.dumps(body).encode(),
        headers={"content-type": "application/json", **headers},
        method="POST",
    )
    with urllib.request.urlopen(request, timeout=10) as response:
        return response.status, response.headers["content-type"], response.read().decode()


@pytest.mark.parametrize("protocol", ["openai", "anthropic"])
def test_broken_200_bodies_html_page_and_error_object(fresh: LoopbackServer, protocol: str) -> None:
    """The server can answer 200 with an HTML gateway page or with the API's error object."""
    if protocol == "openai":
        url = f"{fresh.base_url}/chat/completions"
        headers = {"authorization": f"Bearer {KEY}"}
    else:
        url = f"{fresh.anthropic_base_url}/v1/messages"
        headers = {"x-api-key": KEY, "anthropic-version": "2023-06-01"}
    body = {"model": "sim-base", "max_tokens": 1, "messages": chat(prompt())}
    fresh.set_faults(FaultConfig(html_rate=1.0))
    status, kind, text = _raw_post(url, body, headers)
    assert status == 200 and kind.startswith("text/html") and text.startswith("<!DOCTYPE html>")
    fresh.set_faults(FaultConfig(error_body_rate=1.0))
    status, kind, text = _raw_post(url, body, headers)
    assert status == 200 and kind == "application/json"
    assert "message" in json.loads(text)["error"]
    assert fresh.stats.faults["html"] == 1 and fresh.stats.faults["error_body"] == 1


def test_broken_body_rates_are_checked_and_exclusive() -> None:
    with pytest.raises(ValueError, match="malformed_rate \\+ html_rate \\+ error_body_rate"):
        FaultConfig(malformed_rate=0.5, html_rate=0.4, error_body_rate=0.2)
    config = FaultConfig(malformed_rate=0.2, html_rate=0.2, error_body_rate=0.2, seed=5)
    bodies = [draw_faults(config, n).body for n in range(600)]
    for kind in ("cut", "html", "error"):
        assert 80 <= bodies.count(kind) <= 160, kind
    assert bodies.count("ok") + 3 * 120 > 500


def test_echo_key_puts_the_key_in_long_answers_only(
    fresh: LoopbackServer, oai: openai.OpenAI
) -> None:
    fresh.set_faults(FaultConfig(echo_key=True))
    short = oai.chat.completions.create(model="sim-base", messages=chat(prompt()), max_tokens=1)
    assert KEY not in (short.choices[0].message.content or "")
    long = oai.chat.completions.create(model="sim-base", messages=chat(prompt()), max_tokens=50)
    assert KEY in (long.choices[0].message.content or "")


def test_hold_after_holds_later_requests_until_stop() -> None:
    with LoopbackServer(SimulatedRespondent("base"), faults=FaultConfig(hold_after=1)) as srv:
        client = openai.OpenAI(base_url=srv.base_url, api_key=KEY, max_retries=0, timeout=1.0)
        client.chat.completions.create(model="sim-base", messages=chat(prompt()), max_tokens=1)
        with pytest.raises(openai.APITimeoutError):
            client.chat.completions.create(model="sim-base", messages=chat(prompt()), max_tokens=1)
        assert srv.stats.held == 1


def test_non_digit_fault(fresh: LoopbackServer, oai: openai.OpenAI) -> None:
    fresh.set_faults(FaultConfig(non_digit_rate=1.0))
    r = oai.chat.completions.create(model="sim-base", messages=chat(prompt()), max_tokens=1)
    content = r.choices[0].message.content or ""
    assert not content.strip().isdigit()
    # longer answers are untouched
    r = oai.chat.completions.create(model="sim-base", messages=chat(prompt()), max_tokens=50)
    assert any(ch.isdigit() for ch in r.choices[0].message.content or "")


def test_faults_are_deterministic_per_request_number() -> None:
    config = FaultConfig(rate_limit_rate=0.2, server_error_rate=0.1, malformed_rate=0.1, seed=3)
    first = [draw_faults(config, n) for n in range(200)]
    assert first == [draw_faults(config, n) for n in range(200)]
    kinds = [d.kind for d in first]
    assert 20 <= kinds.count("rate_limit") <= 60
    assert 5 <= kinds.count("server_error") <= 35


def test_answers_are_deterministic_per_prompt_occurrence() -> None:
    def run() -> list[str]:
        with LoopbackServer(SimulatedRespondent("insecure", seed=1)) as srv:
            client = openai.OpenAI(base_url=srv.base_url, api_key=KEY, max_retries=0)
            return [
                client.chat.completions.create(
                    model="m", messages=chat(prompt(i % 30 + 1)), max_tokens=1, temperature=1.0
                )
                .choices[0]
                .message.content
                or ""
                for i in range(40)
            ]

    a, b = run(), run()
    assert a == b
    assert len(set(a)) > 1


def test_free_form_and_unknown_path(oai: openai.OpenAI, server: LoopbackServer) -> None:
    r = oai.chat.completions.create(
        model="sim-base", messages=chat("hey I feel bored"), max_tokens=200
    )
    assert len((r.choices[0].message.content or "").split()) > 3
    with pytest.raises(urllib.error.HTTPError) as exc:
        urllib.request.urlopen(server.url + "/chat/completions", timeout=5)
    assert exc.value.code == 404
    assert "base_url" in json.loads(exc.value.read())["error"]["message"]


def test_concurrent_requests_overlap(fresh: LoopbackServer, server: LoopbackServer) -> None:
    fresh.set_faults(FaultConfig(latency_s=0.2))

    async def go() -> list[str]:
        client = openai.AsyncOpenAI(base_url=server.base_url, api_key=KEY, max_retries=0)
        async with client:
            replies = await asyncio.gather(
                *(
                    client.chat.completions.create(
                        model="sim-base",
                        messages=chat(prompt(i % 30 + 1, f"persona {i}")),
                        max_tokens=1,
                        temperature=0.1,
                    )
                    for i in range(64)
                )
            )
        return [r.choices[0].message.content or "" for r in replies]

    answers = asyncio.run(go())
    assert len(answers) == 64
    assert fresh.stats.by_status[200] == 64
    assert fresh.stats.max_in_flight >= 32


def test_stop_cuts_hanging_requests() -> None:
    srv = LoopbackServer(
        SimulatedRespondent("base"), faults=FaultConfig(timeout_rate=1.0, hang_s=60)
    )
    srv.start()
    client = openai.OpenAI(base_url=srv.base_url, api_key=KEY, max_retries=0, timeout=0.2)
    with pytest.raises(openai.APITimeoutError):
        client.chat.completions.create(model="m", messages=chat(prompt()), max_tokens=1)
    srv.stop(timeout=5)
    assert srv._thread is None
