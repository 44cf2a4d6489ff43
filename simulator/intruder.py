"""A bad actor who tries to pass as a locker on a station broker (blocking; run it in a thread).

Two tries: connect as a locker with a guessed password (the broker must refuse), and connect with a
cloned board's real credentials to publish a forged event on a neighbour's topic (the ACL must drop it;
the ledger then shows nothing unexpected in the cloud).
"""

from __future__ import annotations

import json
import os
import socket
import struct

CONNECT, CONNACK, PUBLISH = 0x10, 0x20, 0x30


def _s(b: bytes) -> bytes:
    return struct.pack("!H", len(b)) + b


def _remaining(n: int) -> bytes:
    out = bytearray()
    while True:
        d, n = n % 128, n // 128
        out.append(d | (0x80 if n else 0))
        if not n:
            return bytes(out)


def enc_connect(client_id: str, user: str, password: str, keepalive: int = 30) -> bytes:
    """MQTT 3.1.1 CONNECT with username and password, clean session."""
    var = _s(b"MQTT") + bytes([4, 0xC2]) + struct.pack("!H", keepalive)
    body = var + _s(client_id.encode()) + _s(user.encode()) + _s(password.encode())
    return bytes([CONNECT]) + _remaining(len(body)) + body


def enc_publish(topic: str, payload: bytes) -> bytes:
    body = _s(topic.encode()) + payload
    return bytes([PUBLISH]) + _remaining(len(body)) + body


def connack_code(data: bytes) -> int | None:
    """The CONNACK return code, or None when the broker sent no CONNACK (closed the connection)."""
    if len(data) >= 4 and data[0] == CONNACK and data[1] == 2:
        return data[3]
    return None


def try_connect(host: str, port: int, client_id: str, user: str, password: str,
                publish: tuple[str, bytes] | None = None, timeout: float = 5.0) -> int | None:
    """Connect (and publish QoS 0 if accepted); returns the CONNACK code (0 = accepted)."""
    with socket.create_connection((host, port), timeout=timeout) as s:
        s.sendall(enc_connect(client_id, user, password))
        try:
            data = s.recv(4)
        except OSError:
            return None
        rc = connack_code(data)
        if rc == 0 and publish is not None:
            s.sendall(enc_publish(*publish))
            s.sendall(b"\xe0\x00")  # DISCONNECT
        return rc


def attack(host: str, port: int, station: str, victim: str, clone: tuple[str, str]) -> dict:
    """Both tries against one station; returns what the broker did."""
    guessed = try_connect(host, port, f"{station}-{victim}", victim, os.urandom(6).hex())
    boot = os.urandom(4).hex()
    forged = json.dumps({"v": 1, "boot": boot, "seq": 1, "ts": 0, "mono": 1, "type": "pickup", "c": 1,
                         "ref": "p-forged"}).encode()
    cloned = try_connect(host, port, f"{station}-{clone[0]}-x", clone[0], clone[1],
                         publish=(f"jc/v1/{station}/{victim}/evt", forged))
    return {"guessed_password_refused": guessed != 0, "clone_connected": cloned == 0, "forged_boot": boot}
