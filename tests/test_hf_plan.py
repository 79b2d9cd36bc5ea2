"""The ``hf/`` engine's batch planning, offline: which shared prefixes are computed once
(:mod:`persona_collapse.backends._hf_plan`) and how many positions go into a forward pass
(:mod:`persona_collapse.backends._hf_tune`). Pure numpy: no model, no torch."""

from __future__ import annotations

import numpy as np
import pytest

from persona_collapse.backends._hf_plan import choose_prefixes
from persona_collapse.backends._hf_tune import ForwardBudget, split_by_budget

HEADER = list(range(1000, 1030))  # 30 tokens every prompt shares (the chat header)


def _prompts(personas: int, items: int, persona_len: int = 80, tail: int = 60) -> list[np.ndarray]:
    """``personas`` x ``items`` prompts: header, persona text, item, a shared scale tail."""
    out = []
    for p in range(personas):
        persona = [2000 + 100 * p + k % 100 for k in range(persona_len)]
        for i in range(items):
            item = [5000 + 10 * i + k for k in range(8)]
            out.append(np.array(HEADER + persona + item + list(range(9000, 9000 + tail))))
    return out


def _nothing_cached(_: np.ndarray) -> int:
    return 0


def test_one_prefix_per_persona_not_only_the_shared_header() -> None:
    prompts = _prompts(personas=4, items=15)
    choice = choose_prefixes(prompts, [0] * len(prompts), _nothing_cached, min_saving=256)
    assert len(choice.prefixes) == 4
    assert sorted(p.size for p in choice.prefixes) == [110] * 4  # header + persona
    for k, prompt in enumerate(prompts):
        prefix = choice.prefixes[choice.rows[k]]
        assert np.array_equal(prompt[: prefix.size], prefix)
    assert choice.covered == set(range(len(prompts)))
    # Saving: each persona's 15 prompts skip 110 positions; each prefix costs 110 once.
    assert choice.saving == 4 * (15 * 110 - 110)


def test_the_header_alone_when_personas_have_one_prompt_each() -> None:
    prompts = _prompts(personas=20, items=1)
    choice = choose_prefixes(prompts, [0] * 20, _nothing_cached, min_saving=256)
    assert [p.size for p in choice.prefixes] == [30]
    assert choice.saving == 20 * 30 - 30


def test_cached_positions_are_not_counted_twice() -> None:
    prompts = _prompts(personas=2, items=10)
    # The cache already serves every prompt's header and persona: nothing is worth computing.
    choice = choose_prefixes(prompts, [110] * 20, lambda ids: min(ids.size, 110), min_saving=1)
    assert choice.prefixes == [] and choice.covered == set()
    # The cache holds the header only: the persona prefixes are computed (cost 80 each).
    choice = choose_prefixes(prompts, [30] * 20, lambda ids: min(ids.size, 30), min_saving=1)
    assert len(choice.prefixes) == 2 and choice.saving == 2 * (10 * 80 - 80)


def test_a_small_saving_is_not_worth_a_pass() -> None:
    prompts = _prompts(personas=1, items=2, persona_len=10)
    assert choose_prefixes(prompts, [0, 0], _nothing_cached, min_saving=256).prefixes == []
    assert choose_prefixes(prompts, [0, 0], _nothing_cached, min_saving=1).prefixes


def test_every_prompt_keeps_its_last_position() -> None:
    short = np.arange(50)
    prompts = [short, np.concatenate([short, [7, 8, 9]])]  # one prompt is the other's prefix
    choice = choose_prefixes(prompts, [0, 0], _nothing_cached, min_saving=1)
    assert [p.size for p in choice.prefixes] == [49]


def test_one_prompt_or_none() -> None:
    assert choose_prefixes([], [], _nothing_cached).rows == []
    assert choose_prefixes([np.arange(9)], [0], _nothing_cached).rows == [-1]


# -- positions per forward pass -----------------------------------------------------------


def test_split_keeps_order_and_balances() -> None:
    assert split_by_budget([100] * 30, 1024) == [range(0, 10), range(10, 20), range(20, 30)]
    assert split_by_budget([100] * 30, 8192) == [range(0, 30)]
    assert split_by_budget([5000, 10, 10], 1024)[0] == range(0, 1)
    assert split_by_budget([], 512) == []
    sizes = list(np.random.default_rng(0).integers(50, 300, size=97))
    runs = split_by_budget(sizes, 1000)
    assert [i for r in runs for i in r] == list(range(97))
    assert len(runs) == int(np.ceil(sum(sizes) / 1000))


def _tune(budget: ForwardBudget, rate: dict[int, float], total: int, passes: int) -> list[int]:
    """Drive ``budget`` with passes of exactly the asked size at ``rate[size]`` positions/s."""
    asked = []
    for _ in range(passes):
        size = budget.budget_for(total)
        asked.append(size)
        budget.record(size, min(size, total), min(size, total) / rate[size])
    return asked


def test_the_budget_tries_each_size_then_keeps_the_fastest() -> None:
    rate = {1024: 900.0, 2048: 1000.0, 4096: 1500.0, 8192: 1200.0, 16384: 800.0}
    budget = ForwardBudget(trials=2, revisit=10)
    asked = _tune(budget, rate, total=100_000, passes=30)
    # Largest first; 2048 was slower than 4096, so the descent ends there (1024 untried).
    assert asked[:8] == [16384, 16384, 8192, 8192, 4096, 4096, 2048, 2048]
    assert asked[8:18] == [4096] * 10
    assert set(asked[19:]) <= {2048, 4096, 8192}  # a neighbour retried now and then
    assert asked.count(4096) > 15
    assert max(budget.rates, key=budget.rates.__getitem__) == 4096


def test_the_descent_stops_at_the_first_smaller_size_that_is_slower() -> None:
    rate = {1024: 5000.0, 2048: 900.0, 4096: 1500.0, 8192: 1200.0, 16384: 800.0}
    budget = ForwardBudget(trials=1, revisit=1000)
    asked = _tune(budget, rate, total=100_000, passes=8)
    # 16384 -> 8192 -> 4096 got faster, 2048 was slower: 1024 is never tried.
    assert asked == [16384, 8192, 4096, 2048, 4096, 4096, 4096, 4096]


def test_sizes_a_batch_cannot_fill_are_not_tried() -> None:
    budget = ForwardBudget(trials=1)
    rate = dict.fromkeys(budget.candidates, 1000.0)
    asked = _tune(budget, rate, total=1500, passes=5)
    assert set(asked) <= {1024, 2048}


def test_a_load_change_moves_the_choice() -> None:
    budget = ForwardBudget(trials=1, revisit=4)
    fast_big = {1024: 100.0, 2048: 200.0, 4096: 300.0, 8192: 400.0, 16384: 500.0}
    _tune(budget, fast_big, 100_000, 12)
    assert budget.budget_for(100_000) == 16384
    fast_small = {1024: 900.0, 2048: 800.0, 4096: 700.0, 8192: 600.0, 16384: 50.0}
    asked = _tune(budget, fast_small, 100_000, 60)
    assert asked[-1] < 16384


def test_a_fixed_budget_is_kept() -> None:
    budget = ForwardBudget(fixed=300)
    assert budget.budget_for(10_000) == 300
    budget.record(300, 300, 1.0)
    assert budget.rates == {}
    with pytest.raises(ValueError):
        ForwardBudget(fixed=0)
    with pytest.raises(ValueError):
        ForwardBudget(candidates=())


def test_a_prefix_adding_a_few_positions_to_the_cache_is_not_worth_a_row() -> None:
    prompts = _prompts(personas=1, items=10)
    # Two items share 4 tokens after the header and persona, which the cache already serves.
    prompts[1] = np.concatenate([prompts[0][:114], prompts[1][114:]])
    hits = [110] * 10
    choice = choose_prefixes(prompts, hits, lambda ids: min(ids.size, 110), min_saving=1)
    assert choice.prefixes == []
    choice = choose_prefixes(
        prompts, hits, lambda ids: min(ids.size, 110), min_saving=1, min_extension=1
    )
    assert [p.size for p in choice.prefixes] == [114]
