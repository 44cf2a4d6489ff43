"""Security test kit: the cloud as a real process, and a raw HTTP poster that stops when answered."""

import os
import select
import socket
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import pytest

from simulator.net import free_port, wait_port
from simulator.procs import stop_process

_ROOT = str(Path(__file__).resolve().parents[2])

CLOUD_ADMIN = "admin-token-security-0123456789abcdef"


@dataclass
class CloudProc:
    """The cloud as its own uvicorn process (`cloud.serve`), on SQLite, with its log file."""

    url: str
    port: int
    proc: subprocess.Popen
    log: Path

    def admin(self) -> dict:
        return {"Authorization": f"Bearer {CLOUD_ADMIN}"}


@pytest.fixture
def cloud_env() -> dict:
    """Extra JINCUN_* settings for the cloud process; a test module overrides this fixture to change them."""
    return {}


@pytest.fixture
def cloud_proc(tmp_path, cloud_env):
    port = free_port()
    env = dict(os.environ, JINCUN_ADMIN_TOKEN=CLOUD_ADMIN, JINCUN_DATABASE_URL=f"sqlite:///{tmp_path}/cloud.db",
               PYTHONPATH=_ROOT, **cloud_env)
    env.pop("JINCUN_DEMO", None)
    log = tmp_path / "cloud.log"
    proc = subprocess.Popen([sys.executable, "-c", f"import cloud; cloud.serve('127.0.0.1', {port})"],
                            cwd=tmp_path, env=env, stdout=log.open("wb"), stderr=subprocess.STDOUT)
    try:
        wait_port("127.0.0.1", port, timeout=60)
        yield CloudProc(f"http://127.0.0.1:{port}", port, proc, log)
    finally:
        stop_process(proc, 15)


def raw_post(port: int, path: str, *, declared: int | None, chunks, ctype: str = "application/json",
             timeout: float = 20.0) -> tuple[int, bytes]:
    """POST over a plain socket, sending chunks until the server answers; returns (status, response body).

    declared: the Content-Length to claim, or None for chunked transfer. The server may answer (and close)
    long before the body is sent, which is the point.
    """
    head = f"POST {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: {ctype}\r\nConnection: close\r\n"
    head += f"Content-Length: {declared}\r\n" if declared is not None else "Transfer-Encoding: chunked\r\n"
    with socket.create_connection(("127.0.0.1", port), timeout=timeout) as s:
        s.sendall((head + "\r\n").encode())
        for chunk in chunks:
            if select.select([s], [], [], 0)[0]:
                break  # answered already
            data = chunk if declared is not None else b"%x\r\n%s\r\n" % (len(chunk), chunk)
            try:
                s.sendall(data)
            except OSError:
                break
        else:
            if declared is None:
                try:
                    s.sendall(b"0\r\n\r\n")
                except OSError:
                    pass
        got = b""
        while True:
            try:
                part = s.recv(65536)
            except (ConnectionResetError, TimeoutError):
                break
            if not part:
                break
            got += part
    status = int(got.split(b" ", 2)[1]) if got.startswith(b"HTTP/") else 0
    return status, got.partition(b"\r\n\r\n")[2]
