"""Loopback helpers shared by the simulator and the tests."""

from __future__ import annotations

import socket
import time


def free_port() -> int:
    """Ask the kernel for a free TCP port on loopback."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_port(host: str, port: int, timeout: float = 10.0) -> None:
    """Block until something accepts TCP connections on host:port."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            with socket.create_connection((host, port), timeout=0.5):
                return
        except OSError:
            time.sleep(0.05)
    raise TimeoutError(f"nothing listening on {host}:{port} after {timeout}s")


class PortPool:
    """Listening ports handed out below the kernel's ephemeral range, so that none of the thousands of
    outgoing connections of a county run can take a port before its server binds it."""

    LOW, HIGH = 10000, 32000

    def __init__(self, seed: int | None = None) -> None:
        import random
        self.next = random.Random(seed).randrange(self.LOW, self.HIGH - 5000)

    def take(self) -> int:
        while self.next < self.HIGH:
            port, self.next = self.next, self.next + 1
            with socket.socket() as s:
                try:
                    s.bind(("127.0.0.1", port))
                except OSError:
                    continue
            return port
        raise OSError("no free listening port left below the ephemeral range")
