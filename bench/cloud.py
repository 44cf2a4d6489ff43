"""`jincun bench cloud`: one uvicorn worker on PostgreSQL; batched gateway ingest, set beside the machine's own
PostgreSQL upsert rate (bench/pgceiling.py), then code and parcel lookups at a fixed request rate. The last line
printed is one JSON object."""

from __future__ import annotations

import argparse
import asyncio
import gc
import json
import os
import random
import secrets
import shutil
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path
from urllib.parse import quote, urlparse

import httpx

from bench.pgceiling import RATIO_GOAL, pg_ceiling, ratio_fields
from simulator.net import free_port
from simulator.procs import stop_process

REPO = Path(__file__).resolve().parents[1]
PG_ADMIN_URL = os.environ.get("JINCUN_BENCH_PG", "postgresql+psycopg://jincun:jincun@127.0.0.1:5432/postgres")
COMPS = 12
LOCKERS = ("l1", "l2")


def _wait_http(url: str, timeout: float = 60.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            if httpx.get(url, timeout=2).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.1)
    raise TimeoutError(f"{url} did not answer")


class _Influx:
    """An InfluxDB server of its own for the run (the `influxd` on PATH), in a temporary directory.

    Started by the test suite's helper (tests/cloud/influxkit.py), which also holds the one compatibility
    shim: influxdb-client writes to `/api/v2/write`, which Debian's InfluxDB 1.6 does not serve, so a relay
    passes the line protocol on to the server's own `/write`; every point lands in the real server.
    """

    def __init__(self, db: str = "jincun") -> None:
        # the shim belongs to the test suite, which lives in the checkout, not in the installed packages
        if str(REPO) not in sys.path:
            sys.path.insert(0, str(REPO))
        from tests.cloud.influxkit import start_influx

        self.dir = tempfile.mkdtemp(prefix="jincun-bench-influx-")
        self.server = start_influx(Path(self.dir), db)
        self.url, self.write_url, self.proc = self.server.url, self.server.write_url, self.server.proc

    def points(self, db: str = "jincun") -> int:
        """Points held, summed over the measurements (to check the telemetry arrived)."""
        total = 0
        resp = httpx.get(f"{self.url}/query", params={"db": db, "q": "SHOW MEASUREMENTS"}, timeout=30).json()
        for series in resp["results"][0].get("series", []):
            for (name,) in series["values"]:
                r = httpx.get(f"{self.url}/query", params={"db": db, "q": f'SELECT count(*) FROM "{name}"'},
                              timeout=60).json()["results"][0]
                for s in r.get("series", []):
                    total += max(v for v in s["values"][0][1:] if v is not None)
        return total

    def cpu_seconds(self) -> float:
        return _proc_cpu_seconds(self.proc.pid)

    def stop(self) -> None:
        self.server.stop()
        shutil.rmtree(self.dir, ignore_errors=True)


class Station:
    """Generates one station's outbox as a gateway would send it."""

    def __init__(self, sid: str, rng: random.Random) -> None:
        self.sid, self.rng, self.key = sid, rng, f"bench-key-{sid}-{secrets.token_hex(8)}"
        self.gw_seq = 0
        self.evt_seq = {lid: 0 for lid in LOCKERS}
        self.boot = {lid: secrets.token_hex(4) for lid in LOCKERS}
        self.occupied: dict[tuple[str, int], str] = {}
        self.codes: list[tuple[str, str]] = []     # (code, ref)
        self.refs: list[str] = []

    def _gw(self, kind: str, body: dict, src: str = "gw") -> dict:
        self.gw_seq += 1
        return {"src": src, "boot": "gwepoch1", "seq": self.gw_seq, "kind": kind, "rx": time.time(), "body": body}

    def _evt(self, lid: str, type_: str, **fields) -> dict:
        self.evt_seq[lid] += 1
        seq, boot = self.evt_seq[lid], self.boot[lid]
        body = {"v": 1, "boot": boot, "seq": seq, "ts": int(time.time()), "mono": seq * 1000, "type": type_,
                **fields}
        return {"src": lid, "boot": boot, "seq": seq, "kind": "evt", "rx": time.time(), "body": body}

    def births(self) -> list[dict]:
        comps = [{"n": n, "size": "SML"[(n - 1) % 3], "st": "empty", "door": "closed", "occ": False}
                 for n in range(1, COMPS + 1)]
        return [self._gw("birth", {"v": 1, "boot": self.boot[lid], "fw": "0.1.0", "seq": 0, "ts": int(time.time()),
                                   "mono": 1, "comps": comps, "outbox": 0, "vault": 0}, src=lid) for lid in LOCKERS]

    def items(self, n: int) -> list[dict]:
        """About n items: door cycles, telemetry, deposits with their parcel and code records, pickups."""
        out: list[dict] = []
        rng = self.rng
        while len(out) < n:
            lid = rng.choice(LOCKERS)
            c = rng.randint(1, COMPS)
            roll = rng.random()
            if roll < 0.25:
                out.append(self._gw("tele", {"v": 1, "boot": self.boot[lid], "ts": int(time.time()), "mono": 5,
                                             "up": 100, "heap": 40000, "rssi": rng.randint(-90, -40),
                                             "vin": round(rng.uniform(11.5, 12.6), 2),
                                             "temp": round(rng.uniform(5, 45), 1), "outbox": rng.randint(0, 3),
                                             "fw": "0.1.0"}, src=lid))
            elif (lid, c) in self.occupied:
                ref = self.occupied.pop((lid, c))
                out += [self._evt(lid, "code_ok", cs=[c]), self._evt(lid, "lock", c=c, why="pickup"),
                        self._evt(lid, "door", c=c, open=True), self._evt(lid, "door", c=c, open=False),
                        self._evt(lid, "pickup", c=c, ref=ref)]
            else:
                ref = f"b{uuid.uuid4().hex[:20]}"
                phone = f"139{rng.randint(0, 99999999):08d}"
                code = f"{rng.randint(0, 999999):06d}"
                out += [self._gw("parcel", {"ref": ref, "waybill": f"YT{rng.randint(10**11, 10**12)}",
                                            "carrier": rng.choice(("YTO", "ZTO", "SF", "JD")), "phone": phone,
                                            "locker": lid, "c": c, "size": "M"}),
                        self._evt(lid, "lock", c=c, why="deposit"), self._evt(lid, "door", c=c, open=True),
                        self._evt(lid, "door", c=c, open=False), self._evt(lid, "deposit", c=c, ref=ref),
                        self._gw("code", {"ref": ref, "locker": lid, "phone": phone, "code": code,
                                          "exp_ts": int(time.time()) + 7 * 86400})]
                self.occupied[(lid, c)] = ref
                self.codes.append((code, ref))
                self.refs.append(ref)
        return out


def _create_db() -> tuple[str, str]:
    from sqlalchemy import create_engine
    name = f"jincun_bench_{uuid.uuid4().hex[:10]}"
    admin = create_engine(PG_ADMIN_URL, isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.exec_driver_sql(f'CREATE DATABASE "{name}"')
    admin.dispose()
    return PG_ADMIN_URL.rsplit("/", 1)[0] + f"/{name}", name


def _drop_db(name: str) -> None:
    from sqlalchemy import create_engine
    admin = create_engine(PG_ADMIN_URL, isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.exec_driver_sql(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
    admin.dispose()


async def _ingest(base: str, batches: list[tuple[Station, list[dict]]], senders: int) -> tuple[int, float, int]:
    queue: asyncio.Queue = asyncio.Queue()
    # bodies are encoded before the clock starts, as a gateway's outbox holds them ready: the load
    # generator shares the cores with the server and must cost far less than it
    for st, items in batches:
        body = json.dumps({"station": st.sid, "batch": secrets.token_hex(6), "items": items},
                          ensure_ascii=False, separators=(",", ":")).encode("utf-8")
        queue.put_nowait((st, body))
    applied = errors = 0
    conns = [_Conn.to(base) for _ in range(senders)]
    for conn in conns:
        await conn.connect()  # before the clock starts, as a gateway's connection is

    async def sender(conn: _Conn) -> None:
        nonlocal applied, errors
        while not queue.empty():
            st, body = queue.get_nowait()
            status, answer = await conn.request("POST", "/api/v1/gateway/ingest", st.key, body)
            if status != 200:
                errors += 1
                continue
            data = json.loads(answer)
            applied += data["applied"]
            errors += data["rejected"]

    try:
        t0 = time.perf_counter()
        await asyncio.gather(*(sender(conn) for conn in conns))
        return applied, time.perf_counter() - t0, errors
    finally:
        for conn in conns:
            conn.close()


class _Conn:
    """A minimal keep-alive HTTP/1.1 client: the load generator must cost far less than the server (an httpx
    client took some 8 % of the machine's CPU during the ingest)."""

    def __init__(self, host: str, port: int) -> None:
        self.host, self.port = host, port
        self.reader: asyncio.StreamReader | None = None
        self.writer: asyncio.StreamWriter | None = None

    @classmethod
    def to(cls, base: str) -> _Conn:
        """A connection to the server at the base URL `base` (not opened yet)."""
        url = urlparse(base)
        return cls(url.hostname or "127.0.0.1", url.port or 80)

    async def connect(self) -> None:
        self.reader, self.writer = await asyncio.open_connection(self.host, self.port)

    async def request(self, method: str, path: str, token: str, body: bytes | None = None) -> tuple[int, bytes]:
        """One request on the kept connection: the status and the response body."""
        if self.writer is None:
            await self.connect()
        reader, writer = self.reader, self.writer
        assert reader is not None and writer is not None  # connect() sets both
        head = f"{method} {path} HTTP/1.1\r\nHost: {self.host}\r\nAuthorization: Bearer {token}\r\n"
        if body is not None:
            head += f"Content-Type: application/json\r\nContent-Length: {len(body)}\r\n"
        writer.write(head.encode() + b"\r\n" + (body or b""))
        await writer.drain()
        status = int((await reader.readline()).split()[1])
        length = 0
        while True:
            line = await reader.readline()
            if line in (b"\r\n", b""):
                break
            name, _, value = line.decode("latin-1").partition(":")
            if name.lower() == "content-length":
                length = int(value)
        return status, await reader.readexactly(length)

    def close(self) -> None:
        if self.writer is not None:
            self.writer.close()


async def _lookups(base: str, token: str, stations: list[Station], rate: float, seconds: float,
                   seed: int, conns: int = 64) -> tuple[list[float], int, int]:
    """Open loop: request i is due at t0 + i/rate and its latency counts from then (no coordinated omission)."""
    rng = random.Random(seed)
    pool: asyncio.Queue[_Conn] = asyncio.Queue()
    for _ in range(conns):
        conn = _Conn.to(base)
        await conn.connect()  # before the clock starts, as a load balancer's connections are
        pool.put_nowait(conn)
    lat: list[float] = []
    bad = 0
    total = int(rate * seconds)
    t0 = time.perf_counter() + 0.2

    async def one(i: int, due: float) -> None:
        nonlocal bad
        st = rng.choice(stations)
        body: bytes | None = None
        if i % 2 == 0 and st.codes:
            code, _ref = rng.choice(st.codes)
            # the code goes in the body, never in the URL
            body = json.dumps({"station": st.sid, "code": code}).encode()
            method, path = "POST", "/api/v1/codes/lookup"
        else:
            method, path = "GET", f"/api/v1/parcels/{quote(rng.choice(st.refs))}"
        conn = await pool.get()
        try:
            ok = (await conn.request(method, path, token, body))[0] == 200
        except (OSError, ValueError, IndexError, asyncio.IncompleteReadError):
            conn.close()
            conn = _Conn(conn.host, conn.port)
            ok = False
        finally:
            pool.put_nowait(conn)
        if not ok:
            bad += 1
        lat.append((time.perf_counter() - due) * 1000)

    # each request is started at its due time (creating them all up front cost the client long enough to make
    # the first ones late); a late start still counts from the due time
    tasks = []
    for i in range(total):
        due = t0 + i / rate
        delay = due - time.perf_counter()
        if delay > 0:
            await asyncio.sleep(delay)
        tasks.append(asyncio.create_task(one(i, due)))
    await asyncio.gather(*tasks)
    elapsed = time.perf_counter() - t0
    while not pool.empty():
        pool.get_nowait().close()
    return lat, bad, int(total / elapsed) if elapsed > 0 else 0


def _db_cpu_seconds(url: str) -> float:
    """CPU seconds used so far by the PostgreSQL backends serving this database (same host, from /proc)."""
    from sqlalchemy import create_engine, text
    name = url.rsplit("/", 1)[1]
    eng = create_engine(PG_ADMIN_URL)
    try:
        with eng.connect() as conn:
            pids = conn.execute(text("SELECT pid FROM pg_stat_activity WHERE datname = :d"),
                                {"d": name}).scalars().all()
    finally:
        eng.dispose()
    ticks = os.sysconf("SC_CLK_TCK")
    total = 0.0
    for pid in pids:
        try:
            fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        total += (int(fields[11]) + int(fields[12])) / ticks
    return total


def _proc_cpu_seconds(pid: int) -> float:
    """CPU seconds (user + system) a process has used so far, from /proc."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def _cpu_probe() -> float:
    """Seconds a fixed pure-Python loop takes here now: how quick this shared machine is at the time of the run
    (its speed for the same work has been seen to vary by half), to set beside the rates."""
    t0 = time.perf_counter()
    total = 0
    for i in range(5_000_000):
        total += i
    return round(time.perf_counter() - t0, 3)


def _quiet_gc() -> None:
    """Collect now and leave what exists out of later collections: the client holds the run's items (hundreds
    of thousands of objects), and a full collection over them in a timed phase stalled every request in
    flight (measured ad hoc: a lookup p99 of 105-141 ms in three runs without this, 14 ms with it)."""
    gc.collect()
    gc.freeze()


def _p(values: list[float], q: float) -> float:
    s = sorted(values)
    return round(s[min(len(s) - 1, int(q * len(s)))], 2) if s else 0.0


def _ceiling(url: str, args: argparse.Namespace) -> dict:
    got = pg_ceiling(url, batch=args.batch, seconds=args.ceiling_seconds, stations=args.stations,
                     lockers=LOCKERS, comps=COMPS)
    cpu = (f", its backend used {got['db_cpu_s']:.1f} CPU s ({got['db_cpu_s'] / got['rows'] * 10_000:.2f} per 10k rows)"
           if got["db_cpu_s"] is not None else "")
    print(f"PostgreSQL ceiling: {got['rows']} rows upserted in {got['seconds']:.1f} s = {got['rows_per_s']:.0f} "
          f"rows/s (batches of {args.batch}, one connection){cpu}; load average {os.getloadavg()[0]:.1f}",
          file=sys.stderr)
    return got


def main(argv: list[str] | None = None) -> int:
    """Run the benchmark; prints progress, then one JSON object as the last line."""
    ap = argparse.ArgumentParser(prog="jincun bench cloud", description=__doc__)
    ap.add_argument("--pg-url", help="PostgreSQL URL to use (default: a fresh database, dropped afterwards)")
    ap.add_argument("--stations", type=int, default=40, help="stations the events come from (default: %(default)s)")
    ap.add_argument("--events", type=int, default=100_000, help="ingest items to send in total")
    ap.add_argument("--batch", type=int, default=500, help="events per ingest batch (default: %(default)s)")
    ap.add_argument("--senders", type=int, default=8, help="concurrent gateways sending")
    ap.add_argument("--lookup-rate", type=float, default=500.0,
                    help="pickup-code look-ups per second offered (default: %(default)s)")
    ap.add_argument("--lookup-seconds", type=float, default=10.0,
                    help="seconds of measured look-ups (default: %(default)s)")
    ap.add_argument("--lookup-warmup", type=float, default=2.0,
                    help="seconds of lookups at the same rate before the measured ones (not counted)")
    ap.add_argument("--telemetry", choices=("auto", "sql", "influxdb"), default="auto",
                    help="telemetry store: influxdb (a server of the run's own, started and stopped here), sql, or "
                         "auto: influxdb when `influxd` is installed, else sql")
    ap.add_argument("--influx-url", help="InfluxDB 2.x-compatible write URL of a running server (telemetry store)")
    ap.add_argument("--influx-query-url", help="InfluxQL /query base URL if not the write URL")
    ap.add_argument("--influx-bucket", default="jincun/autogen",
                    help="InfluxDB bucket (database/retention) for telemetry (default: %(default)s)")
    ap.add_argument("--seed", type=int, default=1, help="seed of the generated events (default: %(default)s)")
    ap.add_argument("--settle", type=float, default=5.0, help="seconds between ingest and lookups")
    ap.add_argument("--ceiling-seconds", type=float, default=3.0,
                    help="seconds of PostgreSQL's own upsert loop, run once before and once after the ingest, "
                         "for pg_ceiling_rows_per_s and ingest_ratio (default: %(default)s)")
    args = ap.parse_args(argv)

    created = influx = None
    url = args.pg_url
    if url is None:
        url, created = _create_db()
    token = secrets.token_urlsafe(24)
    port = free_port()
    env = dict(os.environ, JINCUN_ADMIN_TOKEN=token, JINCUN_DATABASE_URL=url, PYTHONPATH=str(REPO),
               JINCUN_LOG_LEVEL="WARNING", JINCUN_SMS_RETRY_SECONDS="3600")
    use_influx = bool(args.influx_url) or args.telemetry == "influxdb" or (
        args.telemetry == "auto" and shutil.which("influxd") is not None)
    if use_influx and not args.influx_url:
        try:
            influx = _Influx()
        except Exception:
            if created:
                _drop_db(created)
            raise
        args.influx_url, args.influx_query_url, args.influx_bucket = influx.write_url, influx.url, "jincun/autogen"
    if args.influx_url:
        env.update(JINCUN_INFLUX_URL=args.influx_url, JINCUN_INFLUX_BUCKET=args.influx_bucket)
        if args.influx_query_url:
            env["JINCUN_INFLUX_QUERY_URL"] = args.influx_query_url
    log = tempfile.NamedTemporaryFile(prefix="jincun-bench-cloud-", suffix=".log", delete=False)
    proc = subprocess.Popen([sys.executable, "-c", f"import cloud; cloud.serve('127.0.0.1', {port})"],
                            env=env, stdout=log, stderr=subprocess.STDOUT, cwd=tempfile.gettempdir())
    base = f"http://127.0.0.1:{port}"
    try:
        _wait_http(f"{base}/api/v1/health")
        rng = random.Random(args.seed)
        stations = [Station(f"bench-{i:04d}", rng) for i in range(args.stations)]
        admin = {"Authorization": f"Bearer {token}"}
        with httpx.Client(base_url=base, headers=admin, timeout=60) as c:
            for st in stations:
                c.post("/api/v1/admin/stations", json={"id": st.sid, "name": f"测试站{st.sid}",
                                                       "api_key": st.key}).raise_for_status()
                for lid in LOCKERS:
                    c.post(f"/api/v1/admin/stations/{st.sid}/lockers", json={
                        "id": lid, "comps": [{"n": n, "size": "SML"[(n - 1) % 3]} for n in range(1, COMPS + 1)]
                    }).raise_for_status()
        batches = [(st, st.births()) for st in stations]
        per_station = max(1, args.events // (args.batch * len(stations)))
        for _ in range(per_station):
            for st in stations:
                batches.append((st, st.items(args.batch)[: args.batch]))
        warm, batches = batches[: len(stations)], batches[len(stations):]
        asyncio.run(_ingest(base, warm, 1))
        n_items = sum(len(b[1]) for b in batches)
        print(f"ingest: {n_items} items in {len(batches)} batches of {args.batch}, {args.senders} senders",
              file=sys.stderr)
        ceilings = [_ceiling(url, args)]
        db_before, cloud_before = _db_cpu_seconds(url), _proc_cpu_seconds(proc.pid)
        influx_before = influx.cpu_seconds() if influx else 0.0
        _quiet_gc()
        probe = _cpu_probe()
        applied, secs, errors = asyncio.run(_ingest(base, batches, args.senders))
        db_cpu = max(0.0, _db_cpu_seconds(url) - db_before)
        cloud_cpu = _proc_cpu_seconds(proc.pid) - cloud_before
        load = os.getloadavg()[0]
        eps = applied / secs if secs else 0.0
        print(f"ingest: {applied} applied in {secs:.1f} s = {eps:.0f} events/s ({errors} errors); "
              f"PostgreSQL used {db_cpu:.1f} CPU s, the cloud worker {cloud_cpu:.1f} CPU s; load average {load:.1f}",
              file=sys.stderr)
        influx_cpu = influx_points = None
        if influx:
            # the batcher sends within its flush interval: wait for it, then count what arrived
            time.sleep(2.0)
            influx_cpu = influx.cpu_seconds() - influx_before
            influx_points = influx.points()
            print(f"telemetry: InfluxDB holds {influx_points} points and used {influx_cpu:.1f} CPU s",
                  file=sys.stderr)
        # the items were cut at batch size: drop refs whose records did not make it into a batch
        for st in stations:
            st.codes = st.codes[:-3] or st.codes
            st.refs = st.refs[:-3] or st.refs
        # lookups are measured once the SMS outbox the ingest filled has been sent (steady state)
        last, deadline = -1, time.monotonic() + 120
        while time.monotonic() < deadline:
            sent = httpx.get(f"{base}/api/v1/health", timeout=30).json()["counters"].get("sms_sent", 0)
            if sent == last:
                break
            last = sent
            time.sleep(2)
        ceilings.append(_ceiling(url, args))
        ratio = ratio_fields(eps, [c["rows_per_s"] for c in ceilings])
        ceiling_cpu = [c["db_cpu_s"] / c["rows"] * 10_000 for c in ceilings if c["db_cpu_s"] is not None]
        ratio["pg_ceiling_db_cpu_s_per_10k_rows"] = (round(sum(ceiling_cpu) / len(ceiling_cpu), 3)
                                                     if ceiling_cpu else None)
        print(f"ingest ratio: {eps:.0f} events/s over PostgreSQL's own {ratio['pg_ceiling_rows_per_s']} rows/s "
              f"= {ratio['ingest_ratio']} (goal {RATIO_GOAL}: {'met' if ratio['ingest_ratio_met'] else 'not met'})",
              file=sys.stderr)
        time.sleep(args.settle)
        del batches, warm
        _quiet_gc()
        if args.lookup_warmup > 0:
            # the worker's first requests pay for its cold paths (the pool's connections, statements prepared
            # on the server, compiled caches): a warm-up at the same rate, not counted, as any steady-state
            # measurement takes
            warm_lat, _, _ = asyncio.run(_lookups(base, token, stations, args.lookup_rate, args.lookup_warmup,
                                                  args.seed + 1))
            print(f"lookup warm-up: {len(warm_lat)} in {args.lookup_warmup:.0f} s, p99 {_p(warm_lat, .99)} ms "
                  "(not counted)",
                  file=sys.stderr)
        _quiet_gc()
        lat, bad, achieved = asyncio.run(_lookups(base, token, stations, args.lookup_rate, args.lookup_seconds,
                                                  args.seed))
        print(f"lookups: {len(lat)} at {args.lookup_rate:.0f}/s (achieved {achieved}/s), p50 {_p(lat, .5)} ms, "
              f"p99 {_p(lat, .99)} ms, {bad} not 200", file=sys.stderr)
        result = {"ingest_events_per_s": round(eps), **ratio, "lookup_p99_ms": _p(lat, 0.99),
                  "lookup_rate": args.lookup_rate, "lookup_p50_ms": _p(lat, 0.5), "lookup_errors": bad,
                  "lookup_seconds": args.lookup_seconds, "lookup_warmup_s": args.lookup_warmup,
                  "ingest_items": applied, "ingest_errors": errors,
                  "db_cpu_s_per_10k_events": round(db_cpu / applied * 10_000, 2) if applied else None,
                  "cloud_cpu_s_per_10k_events": round(cloud_cpu / applied * 10_000, 2) if applied else None,
                  "load_average": round(load, 1), "cpu_probe_s": probe, "batch": args.batch, "senders": args.senders,
                  "stations": args.stations, "workers": 1, "database": "postgresql",
                  "telemetry": "influxdb" if args.influx_url else "sql",
                  "influx_cpu_s_per_10k_events": round(influx_cpu / applied * 10_000, 2)
                  if influx_cpu is not None and applied else None, "influx_points": influx_points}
    finally:
        stop_process(proc, 20)
        if created:
            _drop_db(created)
        if influx:
            influx.stop()
    print(json.dumps(result))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
