"""An in-process MQTT broker (amqtt) for machines without Mosquitto: the demo's embedded default only."""

from __future__ import annotations

import asyncio
import logging
import threading
from typing import Any

log = logging.getLogger(__name__)


class EmbeddedBroker:
    """Runs amqtt on its own event loop in a thread. Anonymous: it is for a one-machine demo, not a station."""

    def __init__(self, *, port: int, host: str = "127.0.0.1") -> None:
        self.host, self.port = host, port
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None
        self._broker: Any = None  # amqtt.broker.Broker, imported in the broker thread
        self._ready = threading.Event()
        self._error: BaseException | None = None

    def start(self) -> None:
        """Start the broker and wait until it listens."""
        self._ready.clear()
        self._thread = threading.Thread(target=self._run, name="amqtt", daemon=True)
        self._thread.start()
        if not self._ready.wait(15):
            raise RuntimeError("embedded broker did not start in 15 s")
        if self._error is not None:
            raise RuntimeError(f"embedded broker failed to start: {self._error}") from self._error

    def stop(self) -> None:
        """Stop the broker and its thread."""
        if self._loop is None or self._broker is None:
            return
        fut = asyncio.run_coroutine_threadsafe(self._broker.shutdown(), self._loop)
        try:
            fut.result(10)
        finally:
            self._loop.call_soon_threadsafe(self._loop.stop)
            if self._thread is not None:
                self._thread.join(10)
            self._loop = self._broker = None

    def _run(self) -> None:
        from amqtt.broker import Broker

        loop = asyncio.new_event_loop()
        self._loop = loop
        asyncio.set_event_loop(loop)
        config = {
            "listeners": {"default": {"type": "tcp", "bind": f"{self.host}:{self.port}"}},
            "plugins": {"amqtt.plugins.authentication.AnonymousAuthPlugin": {"allow_anonymous": True}},
        }
        try:
            self._broker = Broker(config, loop=loop)
            loop.run_until_complete(self._broker.start())
        except Exception as exc:  # noqa: BLE001 - reported to the starting thread
            self._error = exc
            self._ready.set()
            return
        self._ready.set()
        loop.run_forever()
        loop.close()
