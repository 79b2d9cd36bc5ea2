"""Progress of a collection on stderr: a rich bar on a terminal, plain lines otherwise.

The bar shows units done/total (slots for ``run``, answers and judgements for
``verify``), the request rate, the ETA, transport retries, the run's own
counts (failures and missing slots for ``run``), tokens in/out and the
estimated cost. Anything shaped like :class:`ShownStats` can be displayed. Simulated runs say SIMULATED in the description. With
``--quiet`` nothing is shown; when stderr is not a terminal a plain line is
written at most every ``plain_interval_s`` seconds (and only once answers
arrive), so logs stay short and error output stays one line.
"""

from __future__ import annotations

import math
import sys
import time
from typing import Literal, Protocol, TextIO

from rich.console import Console
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    TaskID,
    TextColumn,
    TimeRemainingColumn,
)

DisplayMode = Literal["rich", "plain", "off"]


class _Clocked(Protocol):
    """What :class:`Timed` reads: ``started``/``finished`` (``time.monotonic()`` seconds;
    ``finished`` None while running) and the request count."""

    started: float
    finished: float | None

    @property
    def requests(self) -> int: ...

    @property
    def elapsed_s(self) -> float: ...


class Timed:
    """Wall time and request rate of a session's counters (a mixin of the counter classes)."""

    @property
    def elapsed_s(self: _Clocked) -> float:
        """Seconds since the session started (until it finished)."""
        return (self.finished if self.finished is not None else time.monotonic()) - self.started

    @property
    def requests_per_s(self: _Clocked) -> float:
        """Requests per second of wall time (0 before any time passed)."""
        elapsed = self.elapsed_s
        return self.requests / elapsed if elapsed > 0 else 0.0


class ShownStats(Protocol):
    """What a :class:`ProgressDisplay` reads (``CollectStats``, ``VerifyProgress``).

    ``done``: units stored this session; ``retries``: transport retries;
    ``cost_usd``: estimated spend in US dollars; ``progress_counts()``: the
    part of the detail that belongs to the caller (e.g. "failures 2 missing 0");
    ``pause_note()``: "paused 12 s (rate limit)" while requests wait out a
    Retry-After or a backoff, else "".
    """

    @property
    def done(self) -> int: ...

    @property
    def requests_per_s(self) -> float: ...

    @property
    def retries(self) -> int: ...

    @property
    def prompt_tokens(self) -> int: ...

    @property
    def completion_tokens(self) -> int: ...

    @property
    def cost_usd(self) -> float: ...

    def progress_counts(self) -> str: ...

    def pause_note(self) -> str: ...


def _count(n: int) -> str:
    """A compact count: 950, 12.3k, 4.56M."""
    if n < 10_000:
        return str(n)
    if n < 1_000_000:
        return f"{n / 1000:.1f}k"
    return f"{n / 1_000_000:.2f}M"


def format_cost(cost: float | None) -> str:
    return "n/a" if cost is None else f"${cost:,.4f}" if cost < 1 else f"${cost:,.2f}"


def choose_mode(stream: TextIO, *, quiet: bool) -> DisplayMode:
    """``off`` with --quiet, ``rich`` on a terminal, ``plain`` otherwise."""
    if quiet:
        return "off"
    isatty = getattr(stream, "isatty", None)
    try:
        return "rich" if isatty is not None and isatty() else "plain"
    except ValueError:  # a closed stream
        return "off"


class ProgressDisplay:
    """Shows a :class:`ShownStats` while a run goes on (use as a context manager).

    ``total``: units (``unit``, default slots) of the whole run;
    ``stored_before``: units already stored when this session began (the bar
    starts there). ``priced``: whether a cost estimate is available.
    """

    def __init__(
        self,
        description: str,
        *,
        total: int,
        stored_before: int = 0,
        priced: bool = False,
        mode: DisplayMode | None = None,
        stream: TextIO | None = None,
        quiet: bool = False,
        min_interval_s: float = 0.1,
        plain_interval_s: float = 30.0,
        unit: str = "slots",
    ) -> None:
        self.stream = stream if stream is not None else sys.stderr
        self.mode: DisplayMode = mode or choose_mode(self.stream, quiet=quiet)
        self.description = description
        self.total = total
        self.stored_before = stored_before
        self.priced = priced
        self.min_interval_s = min_interval_s
        self.plain_interval_s = plain_interval_s
        self.unit = unit
        self._last = 0.0
        self._last_plain = time.monotonic()
        self._last_pause_line = -math.inf
        self._progress: Progress | None = None
        self._task: TaskID | None = None

    # -- lifetime ------------------------------------------------------------------

    def start(self) -> None:
        if self.mode != "rich" or self._progress is not None:
            return
        console = Console(file=self.stream, stderr=True)
        self._progress = Progress(
            TextColumn("[bold]{task.description}"),
            BarColumn(bar_width=24),
            MofNCompleteColumn(),
            TextColumn("{task.fields[rate]}"),
            TimeRemainingColumn(compact=True),
            TextColumn("{task.fields[detail]}"),
            console=console,
            transient=False,
            refresh_per_second=4,
        )
        self._task = self._progress.add_task(
            self.description,
            total=self.total,
            completed=self.stored_before,
            rate="0 req/s",
            detail="",
        )
        self._progress.start()

    def stop(self, stats: ShownStats | None = None) -> None:
        if stats is not None:
            self.update(stats, force=True)
        if self._progress is not None:
            self._progress.stop()
            self._progress = None

    def __enter__(self) -> ProgressDisplay:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    # -- updates -------------------------------------------------------------------

    def detail(self, stats: ShownStats) -> str:
        """Retries, the caller's counts (run: failures, missing slots), tokens in/out, cost.

        While requests wait out a Retry-After or a backoff of a second or more,
        ``paused N s (REASON)`` is appended.
        """
        cost = format_cost(stats.cost_usd if self.priced else None)
        text = (
            f"retries {stats.retries} {stats.progress_counts()} "
            f"tokens {_count(stats.prompt_tokens)}/{_count(stats.completion_tokens)} {cost}"
        )
        pause = stats.pause_note()
        return f"{text} {pause}" if pause else text

    def line(self, stats: ShownStats) -> str:
        """One plain progress line."""
        done = self.stored_before + stats.done
        pct = 100.0 * done / self.total if self.total else 100.0
        return (
            f"{self.description}: {done}/{self.total} {self.unit} ({pct:.0f}%), "
            f"{stats.requests_per_s:.1f} req/s, {self.detail(stats)}"
        )

    def update(self, stats: ShownStats, *, force: bool = False) -> None:
        """Show ``stats`` (throttled to ``min_interval_s`` unless ``force``)."""
        if self.mode == "off":
            return
        now = time.monotonic()
        if not force and now - self._last < self.min_interval_s:
            return
        self._last = now
        if self.mode == "plain":
            due = stats.done and now - self._last_plain >= self.plain_interval_s
            # A pause is said at once (at most every 5 s): a quiet log must not look hung.
            paused = bool(stats.pause_note()) and now - self._last_pause_line >= 5.0
            if not force and (due or paused):
                self._last_plain = now
                if paused:
                    self._last_pause_line = now
                print(self.line(stats), file=self.stream, flush=True)
            return
        if self._progress is not None and self._task is not None:
            self._progress.update(
                self._task,
                completed=self.stored_before + stats.done,
                rate=f"{stats.requests_per_s:.0f} req/s",
                detail=self.detail(stats),
            )
