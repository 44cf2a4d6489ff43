"""Firmware roll-out (§5.2 `fw_rollout`): fetch and check a set, offer it to lockers a few at a time.

The archive at `url` is a gzip'd tar of the app files, named relative to the app root (`jc/app.py`, ...),
checked against the command's sha256 and kept in the firmware folder as `{sha256}.tar.gz`; an archive an
operator puts there by hand is used without a download. Each locker gets an offer MAC'd with its own
device secret (fwserve.py), pulls the files over the locker link and reports with `fw` events. At most
`gateway.firmware.parallel` lockers update at once, and a roll-out stops at the first locker that rolls
back. The result per locker is kept in `fw_rollouts` and goes to the cloud with the command's ack.
"""

from __future__ import annotations

import asyncio
import hashlib
import io
import json
import logging
import os
import tarfile
import time
import zlib
from pathlib import Path

import httpx

from . import const as C
from .config import StationConfig
from .counters import Counters
from .errors import CommandTimeout, GatewayError, LockerError, LockerOffline
from .fwserve import EXCLUDED, FirmwareSet, FwServe, FwServeError
from .lockerlink import LockerLink
from .lockerstate import LockerState
from .stationdb import Outbox

log = logging.getLogger("jincun.gateway.fwrollout")

DOWNLOAD_TRIES = 3
DOWNLOAD_TIMEOUT_S = 60.0
SYNC_WAIT_S = 30.0  # after a gateway restart, how long to wait for a locker's birth before calling it offline
# results that count as success; `current`: the locker already ran the version
GOOD = ("ok", "current")
# a locker that did not take the set for a reason of its own (the rest is `offline`, `skipped`)
FAILED = ("rolled_back", "bad_mac", "bad_hash", "no_space", "timeout", "refused", "busy")


class RolloutError(GatewayError):
    """A roll-out cannot start; `code` is the §5.3 error its command is acked with."""

    def __init__(self, code: str, detail: str) -> None:
        super().__init__(f"{code}: {detail}")
        self.code = code


def unpack_set(data: bytes, ver: str, max_bytes: int) -> FirmwareSet:
    """A FirmwareSet from a tar.gz of app files; links, devices and oversized archives are refused."""
    files: dict[str, bytes] = {}
    total = 0
    try:
        with tarfile.open(fileobj=io.BytesIO(data), mode="r:gz") as tar:
            for m in tar:
                if m.isdir():
                    continue
                if not m.isfile():
                    raise RolloutError("bad_command", f"archive member {m.name!r} is not a regular file")
                name = m.name[2:] if m.name.startswith("./") else m.name
                if name in EXCLUDED or "__pycache__" in name or name.endswith(".pyc"):
                    continue
                total += m.size
                if total > max_bytes:
                    raise RolloutError("bad_command", f"archive unpacks to over {max_bytes} bytes")
                f = tar.extractfile(m)
                files[name] = f.read() if f is not None else b""
    except (tarfile.TarError, EOFError, zlib.error, OSError) as exc:
        raise RolloutError("bad_command", f"archive unreadable: {exc}") from None
    try:
        return FirmwareSet(ver, files)
    except FwServeError as exc:
        raise RolloutError("bad_command", str(exc)) from None


def pack_set(folder: str | Path) -> bytes:
    """The archive of a folder of app files, as a roll-out expects it (for operators and tests)."""
    root = Path(folder)
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w:gz") as tar:
        for p in sorted(root.rglob("*")):
            rel = p.relative_to(root).as_posix()
            if p.is_file() and "__pycache__" not in p.parts and p.suffix != ".pyc" and rel not in EXCLUDED:
                tar.add(p, arcname=rel)
    return buf.getvalue()


class ArchiveStore:
    """Firmware archives by sha256 in a local folder, downloaded over HTTP when missing."""

    def __init__(self, folder: Path, max_bytes: int, counters: Counters,
                 transport: httpx.AsyncBaseTransport | None = None) -> None:
        self.folder = Path(folder)
        self.max_bytes = max_bytes
        self.counters = counters
        self.transport = transport

    async def get(self, url: str, sha: str) -> bytes:
        """The archive's bytes, checked against sha; RolloutError(offline) if it cannot be fetched."""
        path = self.folder / f"{sha}.tar.gz"
        data = await asyncio.to_thread(_read_or_none, path)
        if data is not None:
            if hashlib.sha256(data).hexdigest() == sha:
                return data
            self.counters.inc("fw_archive_corrupt")
            log.error("firmware archive %s does not match its hash; fetching it again", path)
        data = await self._download(url)
        got = hashlib.sha256(data).hexdigest()
        if got != sha:
            self.counters.inc("fw_archive_bad_sha256")
            raise RolloutError("bad_command", f"archive at {url} has sha256 {got}, the command says {sha}")
        await asyncio.to_thread(_write_atomic, path, data)
        return data

    async def _download(self, url: str) -> bytes:
        delay = 1.0
        last = ""
        for attempt in range(DOWNLOAD_TRIES):
            if attempt:
                await asyncio.sleep(delay)
                delay *= 2
            try:
                async with httpx.AsyncClient(transport=self.transport, timeout=DOWNLOAD_TIMEOUT_S) as client:
                    async with client.stream("GET", url) as resp:
                        if resp.status_code != 200:
                            last = f"HTTP {resp.status_code}"
                            if resp.status_code // 100 == 4 and resp.status_code not in (408, 429):
                                break
                            continue
                        buf = bytearray()
                        async for part in resp.aiter_bytes():
                            buf += part
                            if len(buf) > self.max_bytes:
                                raise RolloutError("bad_command", f"archive at {url} is over {self.max_bytes} bytes")
                        return bytes(buf)
            except httpx.HTTPError as exc:
                last = f"{type(exc).__name__}: {exc}"
            self.counters.inc("fw_download_failures")
            log.warning("firmware download %s failed: %s", url, last)
        raise RolloutError("offline", f"cannot download {url}: {last}")


def _read_or_none(path: Path) -> bytes | None:
    try:
        return path.read_bytes()
    except FileNotFoundError:
        return None


def _write_atomic(path: Path, data: bytes) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".part")
    with open(tmp, "wb") as f:
        f.write(data)
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, path)


def ack_error(results: dict[str, str]) -> str | None:
    """The §5.3 error of a finished roll-out: None when every locker runs the version."""
    if all(r in GOOD for r in results.values()):
        return None
    return "busy" if any(r in FAILED for r in results.values()) else "offline"


class Rollouts:
    """Runs `fw_rollout` commands in the background, one task per command, resumed after a restart."""

    def __init__(self, cfg: StationConfig, outbox: Outbox, link: LockerLink, counters: Counters,
                 transport: httpx.AsyncBaseTransport | None = None) -> None:
        fw = cfg.gateway.firmware
        self.cfg = cfg
        self.outbox = outbox
        self.link = link
        self.counters = counters
        self.parallel = fw.parallel
        self.locker_timeout_s = fw.locker_timeout_s
        self.max_bytes = int(fw.max_archive_mb * 1024 * 1024)
        assert fw.dir is not None  # the configuration fills it in when it is validated
        self.store = ArchiveStore(fw.dir, self.max_bytes, counters, transport)
        self.secrets = {lk.id: lk.secret for lk in cfg.lockers}
        self._tasks: dict[str, asyncio.Task] = {}
        self._waiting: dict[tuple[str, str], asyncio.Future] = {}
        self.updating: set[str] = set()
        link.event_handlers.append(self.on_event)

    def running(self, cmd_id: str) -> bool:
        return cmd_id in self._tasks

    def mqtt_lockers(self) -> list[str]:
        """Lockers that can take an update: controllers on MQTT, not lock boards the gateway runs."""
        return [lk for lk in self.link.lockers if lk not in self.link.local and lk in self.secrets]

    async def start(self, cmd_id: str, version: str, url: str, sha: str, lockers: list[str]) -> None:
        """Record a roll-out and run it in the background; a repeated id changes nothing."""
        if cmd_id in self._tasks:
            return
        targets = lockers or self.mqtt_lockers()
        await self.outbox.run(lambda conn: conn.execute(
            "INSERT OR IGNORE INTO fw_rollouts (id, version, url, sha256, lockers, at) VALUES (?,?,?,?,?,?)",
            (cmd_id, version, url, sha, json.dumps(targets), time.time())))
        self.counters.inc("fw_rollouts")
        self._spawn(cmd_id)

    async def resume(self) -> None:
        """Go on with the roll-outs a stop interrupted (call after the outbox is open)."""
        rows = await self.outbox.query(lambda conn: conn.execute(
            "SELECT id FROM fw_rollouts WHERE done=0 ORDER BY at").fetchall())
        for (cmd_id,) in rows:
            log.info("resuming firmware roll-out %s", cmd_id)
            self._spawn(cmd_id)

    async def close(self) -> None:
        for t in self._tasks.values():
            t.cancel()
        await asyncio.gather(*self._tasks.values(), return_exceptions=True)
        self._tasks.clear()

    def _spawn(self, cmd_id: str) -> None:
        task = asyncio.create_task(self._run(cmd_id), name=f"fw-rollout-{cmd_id}")
        self._tasks[cmd_id] = task

        def done(t: asyncio.Task) -> None:
            if self._tasks.get(cmd_id) is t:
                del self._tasks[cmd_id]
            if not t.cancelled() and t.exception() is not None:
                # the row stays open and is resumed at the next start
                self.counters.inc("task_errors")
                log.error("firmware roll-out %s failed: %r", cmd_id, t.exception())
        task.add_done_callback(done)

    async def on_event(self, locker: str, evt: dict) -> None:
        """A locker's `fw` event: progress is logged, a final result ends that locker's wait."""
        if evt["type"] != "fw":
            return
        ver, result = evt["ver"], evt["result"]
        self.counters.inc(f"fw_{result}")
        (log.info if result in ("staged", "ok") else log.warning)("locker %s firmware %s: %s", locker, ver, result)
        fut = self._waiting.get((locker, ver))
        if result in C.FW_FINAL and fut is not None and not fut.done():
            fut.set_result(result)

    async def _run(self, cmd_id: str) -> None:
        row = await self.outbox.query(lambda conn: conn.execute(
            "SELECT version, url, sha256, lockers, results FROM fw_rollouts WHERE id=?", (cmd_id,)).fetchone())
        version, url, sha, lockers_json, results_json = row
        lockers: list[str] = json.loads(lockers_json)
        results: dict[str, str] = json.loads(results_json)
        try:
            data = await self.store.get(url, sha)
            fwset = await asyncio.to_thread(unpack_set, data, version, self.max_bytes)
        except RolloutError as exc:
            log.error("firmware roll-out %s: %s", cmd_id, exc)
            self.counters.inc("fw_rollouts_refused")
            await self._finish(cmd_id, {lk: results.get(lk, "not_offered") for lk in lockers}, exc.code)
            return
        srv = FwServe(fwset)
        todo = [lk for lk in lockers if lk not in results]
        stopped = "rolled_back" in results.values()
        log.info("firmware roll-out %s: %s (%d files, %d bytes) to %s", cmd_id, version, len(fwset.files),
                 fwset.total_bytes(), ", ".join(todo) or "nobody")

        async def worker() -> None:
            nonlocal stopped
            while todo and not stopped:
                lk = todo.pop(0)
                res = await self._update(lk, srv)
                results[lk] = res
                await self._save(cmd_id, results)
                if res == "rolled_back":
                    stopped = True
                    log.error("firmware roll-out %s stopped: locker %s rolled %s back", cmd_id, lk, version)
        await asyncio.gather(*(worker() for _ in range(max(1, min(self.parallel, len(todo))))))
        for lk in lockers:
            results.setdefault(lk, "skipped")
        await self._finish(cmd_id, results, None)

    async def _synced(self, ls: LockerState) -> bool:
        """True once the locker is online with a birth (after a gateway restart that takes a moment)."""
        deadline = time.monotonic() + SYNC_WAIT_S
        while not (ls.online and ls.birth_at is not None):
            if time.monotonic() >= deadline:
                return False
            await asyncio.sleep(0.2)
        return True

    async def _update(self, locker: str, srv: FwServe) -> str:
        """Offer the set to one locker and wait for its final `fw` result."""
        ver = srv.set.ver
        ls = self.link.lockers.get(locker)
        secret = self.secrets.get(locker)
        if ls is None or secret is None:
            return "refused"
        if not await self._synced(ls):
            return "offline"
        if ls.fw == ver:
            return "current"
        key = (locker, ver)
        fut = asyncio.get_running_loop().create_future()
        self._waiting[key] = fut
        self.link.fw_servers[locker] = srv
        self.updating.add(locker)
        try:
            # the offer's shape (inline files or a manifest to fetch) depends on its length, so it is built
            # with an id as long as the one send_command gives it
            offer = json.loads(srv.offer("g" + "0" * 16, secret))
            fields = {k: v for k, v in offer.items() if k not in ("v", "id", "op")}
            try:
                ack = await self.link.send_command(locker, "fw_offer", **fields)
            except (LockerOffline, CommandTimeout):
                return "offline"
            except LockerError:
                return "busy"
            if not ack or not ack.get("ok"):
                err = (ack or {}).get("err")
                return err if err in ("bad_mac", "no_space", "busy") else "refused"
            log.info("locker %s took the offer of firmware %s", locker, ver)
            try:
                return await asyncio.wait_for(fut, self.locker_timeout_s)
            except TimeoutError:
                try:
                    await self.link.send_command(locker, "fw_abort", wait=False, ver=ver)
                except LockerError as exc:
                    log.warning("fw_abort to %s not sent: %s", locker, exc)
                return "timeout"
        finally:
            self._waiting.pop(key, None)
            self.updating.discard(locker)
            if self.link.fw_servers.get(locker) is srv:
                del self.link.fw_servers[locker]

    async def _save(self, cmd_id: str, results: dict[str, str]) -> None:
        data = json.dumps(results)
        await self.outbox.run(lambda conn: conn.execute("UPDATE fw_rollouts SET results=? WHERE id=?",
                                                        (data, cmd_id)))

    async def _finish(self, cmd_id: str, results: dict[str, str], err: str | None) -> None:
        """Close the roll-out and leave its result for the downlink to ack (one transaction)."""
        err = err or ack_error(results)
        data = json.dumps(results)
        log.info("firmware roll-out %s finished: %s", cmd_id, data)
        self.counters.inc("fw_rollouts_ok" if err is None else "fw_rollouts_failed")

        def finish(conn) -> None:
            conn.execute("UPDATE fw_rollouts SET results=?, done=1 WHERE id=?", (data, cmd_id))
            conn.execute("INSERT OR IGNORE INTO downlink (id, op, ok, err, at, executed) VALUES (?,?,?,?,?,1)",
                         (cmd_id, "fw_rollout", int(err is None), err, time.time()))
        await self.outbox.run(finish)
