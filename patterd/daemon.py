"""The daemon's lifecycle: claim the socket, serve the API, notify systemd, drain on SIGTERM."""

from __future__ import annotations

import asyncio
import contextlib
import gc
import importlib
import logging
import signal
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from aiohttp import web

from patter_core.bus import EventBus
from patter_core.events import BaseEvent, CallEnded
from patter_core.tracing import CallTracer
from patterd import __version__, sdnotify
from patterd.api.app import ApiContext, build_app
from patterd.config import ConfigError, DaemonConfig, load_config
from patterd.credentials import Credentials
from patterd.eventlog import EventLog, EventPump
from patterd.heap import GcPauses, freeze_startup_heap
from patterd.logs import SecretRedactor
from patterd.looplag import watch_loop_lag
from patterd.metrics import Metrics
from patterd.paths import SocketClaim
from patterd.runtime import Runtime, RuntimeFactory, RuntimeFailure

log = logging.getLogger(__name__)

DEFAULT_RUNTIME = "patterd.sdk_runtime:create_runtime"


class StartupError(Exception):
    """The daemon cannot start; the message says why and what to do."""


def load_runtime_factory(spec: str) -> RuntimeFactory:
    module_name, _, attr = spec.partition(":")
    if not module_name or not attr:
        raise StartupError(f"--runtime must look like module:function, got {spec!r}")
    try:
        module = importlib.import_module(module_name)
    except ModuleNotFoundError as exc:
        if exc.name == module_name:
            raise StartupError(
                f"runtime module {module_name!r} cannot be imported;"
                " pass --runtime module:function (the default is"
                " patterd.sdk_runtime:create_runtime)"
            ) from None
        raise
    factory = getattr(module, attr, None)
    if not callable(factory):
        raise StartupError(f"runtime factory {spec!r} not found")
    return factory  # type: ignore[no-any-return]


@dataclass
class DaemonOptions:
    config_path: Path
    socket_path: Path
    runtime_factory: RuntimeFactory
    drain_grace_s: float | None = None
    event_capacity: int = 5000


def make_tracer() -> CallTracer:
    """A tracer exporting with OTLP over HTTP to wherever OTEL_EXPORTER_OTLP_* point."""
    try:
        from opentelemetry import trace
        from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
        from opentelemetry.sdk.resources import Resource
        from opentelemetry.sdk.trace import TracerProvider
        from opentelemetry.sdk.trace.export import BatchSpanProcessor
    except ImportError as exc:
        raise StartupError(
            "[telemetry] traces = true needs the otel extra: pip install 'patter[otel]'"
        ) from exc
    provider = TracerProvider(resource=Resource.create({"service.name": "patterd"}))
    provider.add_span_processor(BatchSpanProcessor(OTLPSpanExporter()))
    trace.set_tracer_provider(provider)
    return CallTracer(provider)


class Daemon:
    def __init__(
        self, options: DaemonOptions, config: DaemonConfig, redactor: SecretRedactor
    ) -> None:
        self.options = options
        self.config = config
        self.redactor = redactor
        self.bus = EventBus()
        self.credentials = Credentials(config.credentials, on_secret=redactor.add)
        self.events = EventLog(options.event_capacity)
        self.accepting = True
        self._stop = asyncio.Event()
        self._reload_lock = asyncio.Lock()
        try:
            self.runtime: Runtime = options.runtime_factory(config, self.bus, self.credentials)
        except (RuntimeFailure, ValueError) as exc:
            raise StartupError(f"cannot start: {exc}") from None
        self.metrics = Metrics(self.bus, lambda: len(self.runtime.live_calls()))
        observers: list[Callable[[BaseEvent], None]] = [self.metrics.observe]
        self.tracer = make_tracer() if config.telemetry.traces else None
        if self.tracer is not None:
            observers.append(self.tracer.observe)
        self._pump = EventPump(self.bus, self.events, observers)
        self._claim = SocketClaim(options.socket_path)
        self._tasks: list[asyncio.Task[None]] = []

    async def reload(self) -> None:
        """Re-read the config; on error keep the old one and raise ConfigError."""
        async with self._reload_lock:
            new = await asyncio.to_thread(load_config, self.options.config_path)
            self.credentials.set_explicit(new.credentials)
            try:
                await self.runtime.reload_config(new)
            except (RuntimeFailure, ValueError) as exc:
                self.credentials.set_explicit(self.config.credentials)
                raise ConfigError([f"{self.options.config_path}: {exc}"]) from None
            self.config = new
            log.info("config reloaded from %s", self.options.config_path)

    async def _reload_from_signal(self) -> None:
        try:
            await self.reload()
        except ConfigError as exc:
            for problem in exc.problems:
                log.error("reload refused, keeping the running config: %s", problem)
        except Exception:
            log.exception("reload failed; keeping the running config")

    def request_stop(self) -> None:
        self._stop.set()

    async def run(self) -> int:
        self._claim.acquire()  # raises SocketInUse
        runner: web.AppRunner | None = None
        metrics_runner: web.AppRunner | None = None
        gc_pauses = GcPauses(self.metrics.gc_pause)
        try:
            self._pump.start()
            try:
                await self.runtime.start()
            except (RuntimeFailure, ValueError) as exc:
                raise StartupError(f"cannot start: {exc}") from None
            ctx = ApiContext(
                runtime=self.runtime,
                events=self.events,
                metrics=self.metrics,
                credentials=self.credentials,
                version=__version__,
                config_path=self.options.config_path,
                socket_path=self.options.socket_path,
                accepting=lambda: self.accepting,
                reload=self.reload,
                credential_names=lambda: self.config.credentials.keys(),
                describe=lambda: (self.config.carrier.kind, self.config.server.public_host),
                max_calls=self.config.server.max_calls,
            )
            runner = web.AppRunner(build_app(ctx), handle_signals=False, shutdown_timeout=2.0)
            await runner.setup()
            site = web.UnixSite(runner, str(self.options.socket_path))
            try:
                await site.start()
            except OSError as exc:
                raise StartupError(
                    f"cannot create the control socket {self.options.socket_path}: {exc}"
                ) from None
            self._claim.secure()
            if self.config.server.metrics_port:
                metrics_runner = await self._serve_metrics(self.config.server.metrics_port)
            self._install_signals()
            self.metrics.gc_frozen = freeze_startup_heap()
            gc_pauses.install()
            self._tasks.append(asyncio.create_task(watch_loop_lag(self.metrics.loop_lag)))
            log.info("patterd %s listening on %s", __version__, self.options.socket_path)
            sdnotify.notify(f"READY=1\nSTATUS=listening on {self.options.socket_path}")
            interval = sdnotify.watchdog_interval()
            if interval:
                self._tasks.append(asyncio.create_task(self._watchdog(interval)))
            await self._stop.wait()
            sdnotify.notify("STOPPING=1")
            await self._drain()
            return 0
        finally:
            gc_pauses.remove()
            gc.unfreeze()
            for task in self._tasks:
                task.cancel()
            for task in self._tasks:
                with contextlib.suppress(asyncio.CancelledError):
                    await task
            await self._pump.aclose()
            if self.tracer is not None:
                self.tracer.close()
            for r in (metrics_runner, runner):
                if r is not None:
                    await r.cleanup()
            self._claim.release()
            log.info("patterd stopped")

    async def _serve_metrics(self, port: int) -> web.AppRunner:
        """Metrics only, on loopback, for a scraper; the control API never goes on TCP."""

        async def handler(_: web.Request) -> web.Response:
            return web.Response(text=self.metrics.render(), content_type="text/plain")

        app = web.Application()
        app.router.add_get("/metrics", handler)
        runner = web.AppRunner(app, handle_signals=False)
        await runner.setup()
        await web.TCPSite(runner, "127.0.0.1", port).start()
        log.info("metrics on http://127.0.0.1:%d/metrics", port)
        return runner

    def _install_signals(self) -> None:
        loop = asyncio.get_running_loop()
        loop.add_signal_handler(signal.SIGTERM, self.request_stop)
        loop.add_signal_handler(signal.SIGINT, self.request_stop)
        loop.add_signal_handler(
            signal.SIGHUP,
            lambda: self._tasks.append(asyncio.create_task(self._reload_from_signal())),
        )

    async def _watchdog(self, interval: float) -> None:
        while True:
            sdnotify.notify("WATCHDOG=1")
            await asyncio.sleep(interval)

    async def _drain(self) -> None:
        """Stop taking calls, let live ones finish within the grace period, end the rest, flush."""
        self.accepting = False
        self.runtime.stop_accepting()
        grace = (
            self.options.drain_grace_s
            if self.options.drain_grace_s is not None
            else self.config.drain_grace_s
        )
        live = self.runtime.live_calls()
        if live:
            log.info("draining: %d live call(s), waiting up to %.0fs", len(live), grace)
            sub = self.bus.subscribe(maxsize=1000, predicate=lambda e: isinstance(e, CallEnded))
            try:
                async with asyncio.timeout(grace):
                    while self.runtime.live_calls():
                        with contextlib.suppress(TimeoutError):
                            await asyncio.wait_for(sub.get(), 1.0)
            except TimeoutError:
                pass
            finally:
                sub.close()
            left = self.runtime.live_calls()
            for call in left:
                log.info("grace period over: ending call %s", call.call_id)
                try:
                    await asyncio.wait_for(
                        self.runtime.hangup(call.call_id, reason="shutdown"), 10.0
                    )
                except Exception as exc:
                    log.warning("could not end call %s cleanly: %s", call.call_id, exc)
        await asyncio.wait_for(self.runtime.aclose(), 30.0)
        log.info("drained")
