"""Broker audit: reads the station Mosquitto's log and reports lockers the ACL refused.

Mosquitto answers a denied QoS 0/1 PUBLISH of an MQTT 3.1.1 client as if it had been taken, so neither the
locker nor the gateway hears of it on the wire; the broker's log is the only witness. The station's broker
config writes its log to a file (`mqtt.audit_log`, on tmpfs) at debug level for this; the gateway follows
that file, and only the refusal lines matter to it.
"""

from __future__ import annotations

import asyncio
import logging
import os
import re
from collections import deque
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

from .counters import Counters

log = logging.getLogger("jincun.gateway.audit")

_DENIED = re.compile(r"Denied (PUBLISH|SUBSCRIBE) from (\S+) .*?'([^']*)'")
_NOT_AUTH = re.compile(r"Client (\S+) disconnected, not authori[sz]ed")
_BAD_LOGIN = re.compile(r"Client (\S+) .*(bad user name or password|not authori[sz]ed)")
KEEP = 200
READ_MAX = 1 << 20


@dataclass(frozen=True)
class Refusal:
    """One refusal seen in the broker log."""

    what: str  # publish | subscribe | login
    client: str
    topic: str


def parse_line(line: str) -> Refusal | None:
    """The refusal a broker log line reports, or None for every other line."""
    m = _DENIED.search(line)
    if m:
        return Refusal(m.group(1).lower(), m.group(2), m.group(3))
    m = _NOT_AUTH.search(line) or _BAD_LOGIN.search(line)
    if m:
        return Refusal("login", m.group(1), "")
    return None


class BrokerAudit:
    """Follows the broker's log file from its end, across truncation and rotation."""

    def __init__(self, path: str | Path, station: str, counters: Counters, *, poll_s: float = 0.25) -> None:
        self.path = Path(path)
        self.prefix = f"{station}-"
        self.counters = counters
        self.poll_s = poll_s
        self.recent: deque[dict] = deque(maxlen=KEEP)
        self._pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix="audit")
        self._pos: int | None = None
        self._ino: int | None = None
        self._rest = b""

    def _read_sync(self) -> bytes:
        try:
            st = os.stat(self.path)
        except FileNotFoundError:
            return b""
        if self._pos is None:
            self._pos, self._ino = st.st_size, st.st_ino  # only what happens from now on
        if st.st_ino != self._ino or st.st_size < self._pos:
            self._pos, self._ino, self._rest = 0, st.st_ino, b""  # rotated or truncated
        if st.st_size == self._pos:
            return b""
        with open(self.path, "rb") as f:
            f.seek(self._pos)
            data = f.read(READ_MAX)
        self._pos += len(data)
        return data

    def feed(self, data: bytes) -> list[Refusal]:
        data = self._rest + data
        lines = data.split(b"\n")
        self._rest = lines.pop()[-4096:]
        out = []
        for raw in lines:
            r = parse_line(raw.decode("utf-8", errors="replace"))
            if r is not None:
                out.append(r)
                self._report(r)
        return out

    def _report(self, r: Refusal) -> None:
        who = r.client[len(self.prefix):] if r.client.startswith(self.prefix) else r.client
        self.counters.inc(f"acl_denied_{r.what}")
        self.recent.append({"what": r.what, "client": r.client, "locker": who, "topic": r.topic})
        if r.what == "login":
            log.warning("broker refused a login by client %s", r.client[:80])
        else:
            log.warning("broker refused a %s by %s (locker %s) on %s", r.what, r.client[:80], who[:40],
                        r.topic[:160])

    async def run(self) -> None:
        loop = asyncio.get_running_loop()
        while True:
            data = await loop.run_in_executor(self._pool, self._read_sync)
            if data:
                self.feed(data)
            else:
                await asyncio.sleep(self.poll_s)

    def close(self) -> None:
        self._pool.shutdown(wait=False, cancel_futures=True)
