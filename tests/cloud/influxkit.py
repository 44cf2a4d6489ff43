"""A real InfluxDB 1.6 server for tests, plus the one compatibility shim the tests need.

The shim bridges one gap only: influxdb-client writes to InfluxDB 2's `/api/v2/write?bucket=db/rp`, which
InfluxDB 1.6 does not serve (1.8 and later do). It relays the request body, unchanged line protocol, to the
server's own `/write?db=…&rp=…`, so every point lands in the real server. Queries go straight to the server.
"""

from __future__ import annotations

import subprocess
import threading
import time
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from urllib.parse import parse_qs, urlparse

import httpx

from simulator.net import free_port, wait_port
from simulator.procs import stop_process

PRECISION = {"ns": "n", "us": "u", "ms": "ms", "s": "s"}


@dataclass
class Influx:
    url: str            # the real server (/write, /query)
    write_url: str      # the v2-write relay in front of it
    proc: subprocess.Popen
    relay: ThreadingHTTPServer

    def query(self, q: str, db: str = "jincun") -> list:
        resp = httpx.get(f"{self.url}/query", params={"db": db, "q": q, "epoch": "s"}, timeout=10)
        resp.raise_for_status()
        return resp.json()["results"][0].get("series", [])

    def stop(self) -> None:
        self.relay.shutdown()
        self.relay.server_close()
        stop_process(self.proc)


def _relay(target: str) -> ThreadingHTTPServer:
    class V2WriteRelay(BaseHTTPRequestHandler):
        def do_POST(self):  # noqa: N802 - http.server naming
            url = urlparse(self.path)
            body = self.rfile.read(int(self.headers.get("Content-Length", "0")))
            if url.path != "/api/v2/write":
                self.send_response(404)
                self.end_headers()
                return
            qs = parse_qs(url.query)
            db, _, rp = qs.get("bucket", [""])[0].partition("/")
            params = {"db": db, "precision": PRECISION.get(qs.get("precision", ["ns"])[0], "n")}
            if rp:
                params["rp"] = rp
            resp = httpx.post(f"{target}/write", params=params, content=body, timeout=10)
            self.send_response(resp.status_code)
            self.end_headers()
            self.wfile.write(resp.content)

        def log_message(self, *args):
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), V2WriteRelay)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return server


def start_influx(workdir: Path, db: str = "jincun") -> Influx:
    http_port, rpc_port = free_port(), free_port()
    workdir.mkdir(parents=True, exist_ok=True)
    conf = workdir / "influxdb.conf"
    conf.write_text(f"""
reporting-disabled = true
bind-address = "127.0.0.1:{rpc_port}"
[meta]
  dir = "{workdir}/meta"
[data]
  dir = "{workdir}/data"
  wal-dir = "{workdir}/wal"
  query-log-enabled = false
[http]
  enabled = true
  bind-address = "127.0.0.1:{http_port}"
  log-enabled = false
[monitor]
  store-enabled = false
[continuous_queries]
  enabled = false
""")
    log = (workdir / "influxd.log").open("wb")
    proc = subprocess.Popen(["influxd", "-config", str(conf)], stdout=log, stderr=subprocess.STDOUT)
    url = f"http://127.0.0.1:{http_port}"
    wait_port("127.0.0.1", http_port, timeout=30)
    deadline = time.monotonic() + 30
    while True:
        try:
            if httpx.get(f"{url}/ping", timeout=2).status_code == 204:
                break
        except httpx.HTTPError:
            pass
        if time.monotonic() > deadline:
            proc.kill()
            raise RuntimeError("influxd did not answer /ping")
        time.sleep(0.1)
    httpx.post(f"{url}/query", params={"q": f"CREATE DATABASE {db}"}, timeout=10).raise_for_status()
    relay = _relay(url)
    return Influx(url=url, write_url=f"http://127.0.0.1:{relay.server_port}", proc=proc, relay=relay)
