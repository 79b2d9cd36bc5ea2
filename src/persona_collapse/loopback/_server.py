"""A real HTTP server on 127.0.0.1 that speaks the OpenAI and Anthropic APIs (SIMULATED answers).

It runs its own asyncio event loop in a background thread, so synchronous
tests, benchmarks and the demo can use it with any HTTP client or the official
SDKs. Latency is an asyncio sleep, so thousands of slow requests overlap at
little CPU cost.
"""

from __future__ import annotations

import asyncio
import contextlib
import threading
from collections.abc import Iterable

from ..instruments import Instrument
from ..protocol import VARIANT_LABELS
from ..simulate import SimulatedRespondent
from ._app import SimulatorApp
from ._batch_api import BatchService
from ._counters import ServerStats
from ._faults import FaultConfig
from ._finetune_api import FineTuneService
from ._http import serve_connection


class LoopbackServer:
    """The simulated OpenAI- and Anthropic-compatible API on a local port.

    Args:
        respondent: One respondent (it answers for every model name) or a dict
            mapping model names (e.g. ``sim-base``, ``sim-insecure``) to
            respondents; an unknown model then gets each API's 404 error.
        faults: What goes wrong and how often; change later with
            :meth:`set_faults`.
        port: TCP port; 0 picks a free one (read it from :attr:`port`).
        host: Interface to bind (loopback by default).
        keep_requests: Record every received request in ``stats.recorded``.

    Use as a context manager (``with LoopbackServer(r) as server: ...``) or
    call :meth:`start` and :meth:`stop`.

    Client set-up:

    * OpenAI SDK: ``openai.OpenAI(base_url=server.base_url, api_key="sk-...")``
      where ``base_url`` is ``http://127.0.0.1:PORT/v1``.
    * Anthropic SDK: ``anthropic.Anthropic(base_url=server.anthropic_base_url,
      api_key="...")`` where ``anthropic_base_url`` is ``http://127.0.0.1:PORT``
      (the SDK adds ``/v1/messages`` itself).

    Any non-empty key is accepted except ``faults.reject_key``. anthropic 2.x
    has no ``temperature`` argument: pass ``extra_body={"temperature": T}``.
    A response body cut by ``malformed_rate`` surfaces in both SDKs as
    ``json.JSONDecodeError`` (not an ``APIError``); ``html_rate`` and
    ``error_body_rate`` answer 200 with an HTML page or an error object.
    """

    def __init__(
        self,
        respondent: SimulatedRespondent | dict[str, SimulatedRespondent],
        *,
        faults: FaultConfig | None = None,
        port: int = 0,
        host: str = "127.0.0.1",
        keep_requests: bool = False,
    ) -> None:
        if isinstance(respondent, dict):
            if not respondent:
                raise ValueError("LoopbackServer needs at least one respondent")
            respondents, default = dict(respondent), None
        else:
            respondents, default = {}, respondent
        self.stats = ServerStats()
        self._app = SimulatorApp(
            respondents, default, faults or FaultConfig(), self.stats, keep_requests=keep_requests
        )
        self._host = host
        self._requested_port = port
        self._port: int | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None
        self._stop_event: asyncio.Event | None = None
        self._started = threading.Event()
        self._error: BaseException | None = None
        self._connections: set[asyncio.Task[None]] = set()

    @classmethod
    def for_variants(
        cls,
        variants: Iterable[str] = VARIANT_LABELS,
        *,
        seed: int = 0,
        instrument: Instrument | str | None = None,
        prefix: str = "sim-",
        faults: FaultConfig | None = None,
        port: int = 0,
        host: str = "127.0.0.1",
        keep_requests: bool = False,
    ) -> LoopbackServer:
        """A server with one respondent per preset, as models ``sim-base``, ``sim-secure``, ..."""
        respondents = {
            f"{prefix}{v}": SimulatedRespondent(v, instrument=instrument, seed=seed)
            for v in variants
        }
        return cls(respondents, faults=faults, port=port, host=host, keep_requests=keep_requests)

    # -- addresses ---------------------------------------------------------------

    @property
    def port(self) -> int:
        """The bound TCP port (after :meth:`start`)."""
        if self._port is None:
            raise RuntimeError("the server is not running: call start() first")
        return self._port

    @property
    def url(self) -> str:
        """``http://HOST:PORT``, the server root."""
        return f"http://{self._host}:{self.port}"

    @property
    def base_url(self) -> str:
        """Base URL for the OpenAI SDK and other OpenAI-compatible clients (ends in ``/v1``)."""
        return f"{self.url}/v1"

    @property
    def anthropic_base_url(self) -> str:
        """Base URL for the Anthropic SDK: the root, since the SDK adds ``/v1/messages``."""
        return self.url

    @property
    def models(self) -> list[str]:
        """Model names the server lists."""
        return self._app.models

    @property
    def faults(self) -> FaultConfig:
        return self._app.faults

    @property
    def fine_tuning(self) -> FineTuneService:
        """The simulated files and fine-tuning jobs API (script it with ``set_script``)."""
        return self._app.fine_tuning

    @property
    def batches(self) -> BatchService:
        """The simulated batch APIs of both protocols (script them with ``set_script``)."""
        return self._app.batches

    def set_faults(self, faults: FaultConfig) -> None:
        """Use ``faults`` for requests arriving from now on."""
        self._app.faults = faults

    # -- lifecycle ---------------------------------------------------------------

    def start(self, timeout: float = 10.0) -> LoopbackServer:
        """Bind and serve in a background thread; returns once the port is open."""
        if self._thread is not None:
            raise RuntimeError("the server is already running")
        self._started.clear()
        self._error = None
        self._thread = threading.Thread(
            target=self._run, name="persona-collapse-loopback", daemon=True
        )
        self._thread.start()
        if not self._started.wait(timeout):
            raise RuntimeError("the loopback server did not start in time")
        if self._error is not None:
            self._thread.join()
            self._thread = None
            raise RuntimeError(f"the loopback server could not start: {self._error}")
        return self

    def stop(self, timeout: float = 10.0) -> None:
        """Close the port, cut open connections (hanging requests too) and join the thread."""
        thread, loop, event = self._thread, self._loop, self._stop_event
        if thread is None:
            return
        if loop is not None and event is not None and not loop.is_closed():
            with contextlib.suppress(RuntimeError):
                loop.call_soon_threadsafe(event.set)
        thread.join(timeout)
        self._thread = None
        self._port = None

    def serve_forever(self) -> None:
        """Block until interrupted (Ctrl-C), starting first if needed; stops on the way out."""
        if self._thread is None:
            self.start()
        try:
            assert self._thread is not None
            while self._thread.is_alive():
                self._thread.join(0.5)
        finally:
            self.stop()

    def __enter__(self) -> LoopbackServer:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    # -- the event loop thread ------------------------------------------------------

    def _run(self) -> None:
        loop = asyncio.new_event_loop()
        self._loop = loop
        try:
            loop.run_until_complete(self._main())
        except BaseException as exc:
            self._error = exc
        finally:
            self._started.set()
            loop.close()

    async def _on_connection(
        self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter
    ) -> None:
        task = asyncio.current_task()
        assert task is not None
        self._connections.add(task)
        self.stats.connections += 1
        try:
            await serve_connection(reader, writer, self._app.handle)
        except asyncio.CancelledError:
            pass  # cut by stop(); ending quietly keeps asyncio from logging it
        finally:
            self._connections.discard(task)

    async def _main(self) -> None:
        self._stop_event = asyncio.Event()
        server = await asyncio.start_server(
            self._on_connection,
            self._host,
            self._requested_port,
            backlog=2048,
            limit=64 * 1024,
        )
        sockets = server.sockets or ()
        self._port = int(sockets[0].getsockname()[1])
        self._started.set()
        try:
            await self._stop_event.wait()
        finally:
            server.close()
            for task in list(self._connections):
                task.cancel()
            if self._connections:
                await asyncio.gather(*self._connections, return_exceptions=True)
            await server.wait_closed()
