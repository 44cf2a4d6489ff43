"""Downlink: commands from the cloud (§5.2), checked again at the station, executed, and acked (§5.3)."""

from __future__ import annotations

import asyncio
import json
import logging
import random
import re
import sqlite3
import time
from collections.abc import Awaitable, Callable

import httpx

from jincun.phone import is_phone

from . import assist
from . import const as C
from .cloudhttp import cloud_client
from .codes import CodeClash, Codes
from .config import StationConfig
from .counters import Counters
from .errors import CommandTimeout, LockerError, LockerOffline, UplinkError
from .fwrollout import Rollouts
from .lockerlink import LockerLink
from .stationdb import Outbox

log = logging.getLogger("jincun.gateway.downlink")

_SHA = re.compile(r"^[0-9a-f]{64}$")
_VERSION = re.compile(C.FW_VER_RE)  # what a locker accepts (§3.7)
KEEP_RESULTS = 10_000
_ID = re.compile(r"^[A-Za-z0-9_-]{1,64}$")
_CODE = re.compile(r"^[0-9]{6}$")


def apply_setting(cfg: StationConfig, key: str, value) -> None:
    section, name = key.split(".")
    setattr(getattr(cfg, section), name, value)


class BadCommand(Exception):
    """A cloud command this gateway will not execute; args[0] is the §5.3 error code."""


class Deferred(Exception):
    """A command that runs on in the background (a firmware roll-out) and is acked when it ends."""


class Downlink:
    """Long-polls the cloud for commands and answers each one exactly once in effect."""

    def __init__(self, cfg: StationConfig, outbox: Outbox, link: LockerLink, codes: Codes, counters: Counters,
                 transport: httpx.AsyncBaseTransport | None = None) -> None:
        self.cfg = cfg
        self.outbox = outbox
        self.link = link
        self.codes = codes
        self.counters = counters
        self.transport = transport
        self._delay = cfg.cloud.backoff_min_s
        self.last_error: str | None = None
        self.rollouts = Rollouts(cfg, outbox, link, counters, transport=transport)
        # a `return` command: the parcel goes back to its carrier (Deposits.to_return); set by the gateway
        self.on_return: Callable[[str, int, str], Awaitable[bool]] | None = None

    async def run(self) -> None:
        """Poll, execute and ack forever; a failing cloud only delays."""
        c = self.cfg.cloud
        wait = c.downlink_wait_s
        async with cloud_client(c, self.transport, c.timeout_s + wait) as client:
            while True:
                try:
                    await self._ack_pending(client)
                    got = await self.poll(client, wait)
                    self._delay = c.backoff_min_s
                    self.last_error = None
                    if not got and wait == 0:
                        await asyncio.sleep(c.poll_s)
                except UplinkError as exc:
                    self.counters.inc("downlink_failures")
                    if str(exc) != self.last_error:
                        log.warning("downlink: %s", exc)
                    self.last_error = str(exc)
                    await asyncio.sleep(self._delay * random.uniform(0.5, 1.0))
                    self._delay = min(self._delay * 2, c.backoff_max_s)

    async def _get_json(self, client: httpx.AsyncClient, method: str, url: str, **kw) -> dict:
        try:
            resp = await client.request(method, url, **kw)
        except httpx.HTTPError as exc:
            raise UplinkError(f"{type(exc).__name__}: {exc}") from exc
        if resp.status_code // 100 != 2:
            raise UplinkError(f"{method} {url}: HTTP {resp.status_code} {resp.text[:200]}", resp.status_code)
        try:
            data = resp.json()
        except ValueError as exc:
            raise UplinkError(f"{method} {url}: response is not JSON") from exc
        return data if isinstance(data, dict) else {}

    async def poll(self, client: httpx.AsyncClient, wait: int) -> int:
        """One long-poll: execute what came, store each result, ack it; returns how many commands came."""
        cursor = await self._cursor()
        data = await self._get_json(client, "GET", C.COMMANDS_PATH, params={"after": cursor, "wait": wait})
        cmds = data.get("commands") or []
        if not isinstance(cmds, list):
            raise UplinkError("commands response has no commands list")
        for cmd in cmds:
            if not isinstance(cmd, dict):
                self.counters.inc("downlink_malformed")
                continue
            await self.handle(cmd)
            cur = cmd.get("cursor")
            if isinstance(cur, int) and cur > cursor:
                cursor = cur
                await self._set_cursor(cursor)
        await self._ack_pending(client)
        return len(cmds)

    async def handle(self, cmd: dict) -> dict:
        """Execute one command unless its id already has a result; returns {"ok", "err"?}."""
        cmd_id = cmd.get("id")
        if not isinstance(cmd_id, str) or not _ID.match(cmd_id):
            self.counters.inc("downlink_malformed")
            log.warning("downlink command without a usable id dropped: %.200r", cmd)
            return {"ok": False, "err": "bad_command"}
        stored = await self.outbox.query(lambda conn: conn.execute(
            "SELECT ok, err FROM downlink WHERE id=?", (cmd_id,)).fetchone())
        if stored is not None:
            self.counters.inc("downlink_repeats")
            await self.outbox.run(lambda conn: conn.execute("UPDATE downlink SET acked=0 WHERE id=?", (cmd_id,)))
            return {"ok": bool(stored[0]), **({"err": stored[1]} if stored[1] else {})}
        given = cmd.get("op")
        op = given if isinstance(given, str) else "?"
        executed = 0
        try:
            if op == "fw_rollout" and self.rollouts.running(cmd_id):
                raise Deferred()
            await self._execute(cmd, op)
            executed, result = 1, {"ok": True}
        except BadCommand as exc:
            result = {"ok": False, "err": exc.args[0]}
        except Deferred:
            # the roll-out stores its own result when it ends; the ack goes then
            return {"ok": True, "pending": True}
        self.counters.inc("downlink_ok" if result["ok"] else f"downlink_{result['err']}")
        log.info("cloud command %s %s: %s", cmd_id, op, result)

        def store(conn: sqlite3.Connection) -> None:
            conn.execute("INSERT OR IGNORE INTO downlink (id, op, ok, err, at, executed) VALUES (?,?,?,?,?,?)",
                         (cmd_id, op[:16], int(result["ok"]), result.get("err"), time.time(), executed))
            conn.execute("DELETE FROM downlink WHERE acked=1 AND id NOT IN "
                         "(SELECT id FROM downlink ORDER BY at DESC LIMIT ?)", (KEEP_RESULTS,))
        await self.outbox.run(store)
        return result

    async def _execute(self, cmd: dict, op: str) -> None:
        now = time.time()
        exp = cmd.get("expires_at")
        if isinstance(exp, (int, float)) and not isinstance(exp, bool) and exp < now:
            raise BadCommand("expired")
        if op not in C.DOWNLINK_OPS:
            raise BadCommand("bad_command")
        if op == "config":
            await self._config(cmd)
            return
        if op == "fw_rollout":
            await self._fw_rollout(cmd)
            return
        if op == "assist":
            phone, on, at = cmd.get("phone"), cmd.get("door_help"), cmd.get("issued_at")
            if not (isinstance(phone, str) and is_phone(phone) and isinstance(on, bool)):
                raise BadCommand("bad_command")
            await assist.choose(self.outbox, phone, on, at if isinstance(at, (int, float)) else None)
            return
        locker = cmd.get("locker")
        if not isinstance(locker, str) or locker not in self.link.lockers:
            raise BadCommand("unknown_locker")
        comps = self.link.lockers[locker].comps
        try:
            if op == "rebirth":
                await self.link.send_command(locker, "rebirth", wait=False)
                return
            if op == "code_sync":
                await self._code_sync(cmd, locker, comps)
                return
            if op == "return":
                ref, c = cmd.get("ref"), cmd.get("c")
                if not (isinstance(ref, str) and _ID.match(ref) and type(c) is int and c in comps):
                    raise BadCommand("bad_command")
                if self.on_return is None or not await self.on_return(locker, c, ref):
                    raise BadCommand("bad_command")
                return
            c = cmd.get("c")
            if type(c) is not int or c not in comps:
                raise BadCommand("bad_command")
            if op == "open":
                by, why = cmd.get("by"), cmd.get("why")
                if not (isinstance(by, str) and by and isinstance(why, str) and why):
                    raise BadCommand("bad_command")
                await self._open_allowed(now, by[:64], locker, c)
                ack = await self.link.send_command(locker, "open", c=c, by=by[:64], why=why[:200])
                if ack and ack.get("ok"):
                    await self.outbox.run(lambda conn: conn.execute(
                        "INSERT INTO remote_opens VALUES (?,?,?,?)", (now, by[:64], locker, c)))
            else:
                ack = await self.link.send_command(locker, op, c=c)
        except (LockerOffline, CommandTimeout):
            raise BadCommand("offline") from None
        except LockerError:
            raise BadCommand("busy") from None
        if not ack or not ack.get("ok"):
            raise BadCommand("busy" if (ack or {}).get("err") in ("busy", "full") else "bad_command")

    async def _open_allowed(self, now: float, by: str, locker: str, c: int) -> None:
        """The station's own ceiling on remote opens, whatever the cloud allowed: per station a minute and a
        day, per operator a day, per compartment an hour."""
        lim = self.cfg.cloud
        minute, day, op_day, comp_hour = await self.outbox.query(lambda conn: conn.execute(
            "SELECT SUM(at > ?), COUNT(*), SUM(by = ?), SUM(locker = ? AND c = ? AND at > ?) "
            "FROM remote_opens WHERE at > ?", (now - 60, by, locker, c, now - 3600, now - 86400)).fetchone())
        if ((minute or 0) >= lim.remote_open_per_min or (day or 0) >= lim.remote_open_per_day
                or (op_day or 0) >= lim.remote_open_per_operator_day
                or (comp_hour or 0) >= C.REMOTE_OPEN_PER_LOCKER_HOUR):
            self.counters.inc("remote_open_refused")
            log.warning("remote open of %s/%s by %s refused by the station's own limit (%s this minute, %s today, "
                        "%s by this operator today, %s of this compartment this hour)", locker, c, by, minute, day,
                        op_day, comp_hour)
            raise BadCommand("rate_limited")

    async def _config(self, cmd: dict) -> None:
        """Change one setting the gateway lists as remotely settable (const.REMOTE_SETTABLE), within its bounds."""
        key, value = cmd.get("key"), cmd.get("value")
        if key not in C.REMOTE_SETTABLE:
            raise BadCommand("bad_command")
        bounds = C.REMOTE_SETTABLE[key]
        if bounds is None:
            if not (isinstance(value, list) and len(value) <= 5000
                    and all(is_phone(p) for p in value)):
                raise BadCommand("bad_command")
        elif not (isinstance(value, (int, float)) and not isinstance(value, bool) and bounds[0] <= value <= bounds[1]):
            raise BadCommand("bad_command")
        apply_setting(self.cfg, key, value)
        await self.outbox.run(lambda conn: conn.execute(
            "INSERT INTO meta VALUES (?, ?) ON CONFLICT(key) DO UPDATE SET value=excluded.value",
            (f"config:{key}", json.dumps(value))))
        log.info("setting %s changed by the cloud", key)

    async def load_overrides(self) -> None:
        """Re-apply settings changed by `config` commands (call after the outbox is open)."""
        rows = await self.outbox.query(lambda conn: conn.execute(
            "SELECT key, value FROM meta WHERE key LIKE 'config:%'").fetchall())
        for key, value in rows:
            if key[7:] in C.REMOTE_SETTABLE:
                apply_setting(self.cfg, key[7:], json.loads(value))

    async def _fw_rollout(self, cmd: dict) -> None:
        """Check a firmware roll-out and start it in the background (fwrollout.py); raises Deferred."""
        version, url, sha, lockers = cmd.get("version"), cmd.get("url"), cmd.get("sha256"), cmd.get("lockers", [])
        # plain http is allowed: the sha256 from the authenticated command channel pins the archive
        if not (isinstance(version, str) and _VERSION.match(version) and isinstance(url, str)
                and url.startswith(("https://", "http://")) and len(url) <= 500 and isinstance(sha, str)
                and _SHA.match(sha) and isinstance(lockers, list) and all(isinstance(x, str) for x in lockers)):
            raise BadCommand("bad_command")
        if any(x not in self.link.lockers for x in lockers):
            raise BadCommand("unknown_locker")
        if any(x not in self.rollouts.mqtt_lockers() for x in lockers):
            raise BadCommand("bad_command")  # a lock board has no firmware of its own
        await self.rollouts.start(cmd["id"], version, url, sha, list(dict.fromkeys(lockers)))
        raise Deferred()

    async def _code_sync(self, cmd: dict, locker: str, comps: dict) -> None:
        phone, code, cs, exp_ts = cmd.get("phone"), cmd.get("code"), cmd.get("cs"), cmd.get("exp_ts")
        if not (isinstance(phone, str) and phone and isinstance(code, str) and _CODE.match(code)
                and isinstance(cs, list) and cs and all(type(x) is int and x in comps for x in cs)
                and isinstance(exp_ts, (int, float)) and not isinstance(exp_ts, bool)):
            raise BadCommand("bad_command")
        if exp_ts <= time.time():
            raise BadCommand("expired")
        try:
            if not await self.codes.replace(locker, phone, code, cs, exp_ts):
                raise BadCommand("offline")
        except CodeClash:
            raise BadCommand("bad_command") from None

    async def _ack_pending(self, client: httpx.AsyncClient) -> None:
        rows = await self.outbox.query(lambda conn: conn.execute(
            "SELECT d.id, d.ok, d.err, d.at, r.results FROM downlink d LEFT JOIN fw_rollouts r ON r.id = d.id "
            "WHERE d.acked=0 ORDER BY d.at LIMIT 100").fetchall())
        for cmd_id, ok, err, at, results in rows:
            body = {"ok": bool(ok), "at": int(at), **({"err": err} if err else {})}
            if results is not None:
                body["results"] = json.loads(results)  # per locker, for a firmware roll-out
            try:
                await self._get_json(client, "POST", C.COMMAND_ACK_PATH.format(id=cmd_id), json=body)
            except UplinkError as exc:
                code = exc.status
                if code is None or code >= 500 or code in (401, 403, 408, 429):
                    raise
                # the cloud will never take this ack (unknown id, bad form): retrying would block the queue
                self.counters.inc("downlink_ack_refused")
                log.error("cloud refused the ack of %s: %s", cmd_id, exc)
            await self.outbox.run(_mark_acked(cmd_id))

    async def _cursor(self) -> int:
        row = await self.outbox.query(lambda conn: conn.execute(
            "SELECT value FROM meta WHERE key='downlink_cursor'").fetchone())
        return int(row[0]) if row else 0

    async def _set_cursor(self, cursor: int) -> None:
        await self.outbox.run(lambda conn: conn.execute(
            "INSERT INTO meta VALUES ('downlink_cursor', ?) ON CONFLICT(key) DO UPDATE SET value=excluded.value",
            (str(cursor),)))


def _mark_acked(cmd_id: str) -> Callable[[sqlite3.Connection], sqlite3.Cursor]:
    """The outbox step that marks one command's ack as taken by the cloud."""
    return lambda conn: conn.execute("UPDATE downlink SET acked=1 WHERE id=?", (cmd_id,))
