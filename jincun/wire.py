"""`jincun wire verdicts`: what the firmware, the gateway and the cloud each say about the same payloads.

The firmware's verdict comes from the real MicroPython interpreter (one process for the whole stream), the
gateway's from gateway.protocol and the cloud's from cloud.protocol, each with its own fast paths.
"""

from __future__ import annotations

import base64
import binascii
import json
import os
import subprocess
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Self

from jc import const as K
from jincun import fwtools

REPO = Path(__file__).resolve().parent.parent
FIRMWARE = REPO / "firmware"
MP_SCRIPT = Path(__file__).resolve().parent / "mp" / "verdicts.py"
NOT_JUDGED = "-"  # the cloud never receives this kind (ack, cmd, eack, fwreq) or topic
SIDES = ("firmware", "gateway", "cloud")


class WireError(Exception):
    """An input line is not one payload, or the MicroPython interpreter cannot be run."""


def read_case(line: str) -> tuple[str, bytes]:
    """One input line: {"topic", "payload"} (UTF-8 text) or {"topic", "payload_b64"} (raw bytes)."""
    try:
        obj = json.loads(line)
    except ValueError as exc:
        raise WireError(f"not a JSON line: {exc}") from None
    if not isinstance(obj, dict) or not isinstance(obj.get("topic"), str):
        raise WireError('each line is an object with "topic" and "payload" or "payload_b64"')
    if isinstance(obj.get("payload"), str):
        return obj["topic"], obj["payload"].encode("utf-8", "surrogatepass")
    if isinstance(obj.get("payload_b64"), str):
        try:
            return obj["topic"], base64.b64decode(obj["payload_b64"], validate=True)
        except binascii.Error as exc:
            raise WireError(f"payload_b64 is not base64: {exc}") from None
    raise WireError('each line needs "payload" (text) or "payload_b64" (base64 bytes)')


def gateway_verdict(topic: str, payload: bytes) -> str:
    from gateway import protocol
    from gateway.errors import ProtocolError

    try:
        protocol.decode(protocol.parse_topic(topic).kind, payload)
    except ProtocolError as exc:
        return exc.code
    return "ok"


def cloud_verdict(topic: str, payload: bytes) -> str:
    """The cloud's raw-bytes check, then the same body as an ingest item (so its fast path is used)."""
    from cloud import protocol
    from cloud.constants import LOCKER_KINDS
    from cloud.errors import ItemRejected
    from jc import wire

    try:
        kind = wire.parse_topic(topic)[2]
    except wire.ProtoError:
        return NOT_JUDGED
    if kind not in LOCKER_KINDS:
        return NOT_JUDGED
    try:
        body = protocol.decode_locker_payload(kind, payload)
        evt = kind == K.EVT
        protocol.parse_item({"src": "l1", "boot": body["boot"] if evt else "a1b2c3d4",
                             "seq": body["seq"] if evt else 1, "kind": kind, "rx": 1.0, "body": body})
    except ItemRejected as exc:
        return exc.code
    return "ok"


def micropython() -> str:
    from simulator.locker import SimError, _find_micropython

    try:
        return _find_micropython()
    except SimError as exc:
        raise WireError(str(exc)) from None


class Firmware:
    """One MicroPython process judging payloads with the firmware's own modules, a line at a time."""

    def __init__(self) -> None:
        env = {"MICROPYPATH": fwtools.micropypath(), "PATH": os.environ.get("PATH", "/usr/bin:/bin")}
        self.proc = subprocess.Popen([micropython(), str(MP_SCRIPT)], stdin=subprocess.PIPE,
                                     stdout=subprocess.PIPE, env=env, text=True, bufsize=1)

    def verdict(self, topic: str, payload: bytes) -> str:
        assert self.proc.stdin is not None and self.proc.stdout is not None
        # a topic with a space or newline cannot be one of ours; the firmware would refuse it as well
        if any(c in topic for c in " \r\n"):
            topic = "bad topic"
        self.proc.stdin.write(f"{topic} {base64.b64encode(payload).decode()}\n")
        self.proc.stdin.flush()
        out = self.proc.stdout.readline().strip()
        if not out:
            raise WireError(f"MicroPython stopped (exit {self.proc.poll()})")
        return out

    def close(self) -> None:
        if self.proc.stdin is not None:
            self.proc.stdin.close()
        try:
            self.proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def verdicts(cases: Iterable[tuple[str, bytes]]) -> Iterator[dict[str, str]]:
    """The verdict of every side for each (topic, payload), in order."""
    with Firmware() as fw:
        for topic, payload in cases:
            yield {"firmware": fw.verdict(topic, payload), "gateway": gateway_verdict(topic, payload),
                   "cloud": cloud_verdict(topic, payload)}


def unanimous(v: dict[str, str]) -> bool:
    """Every side that judges the payload gives the same verdict."""
    return len({x for x in v.values() if x != NOT_JUDGED}) == 1


def run(lines: Iterable[str], out) -> int:
    """Read JSON lines, print one verdict line each; exit code 0 when all were read, 2 on a bad line."""
    def cases() -> Iterator[tuple[str, bytes]]:
        for line in lines:
            if line.strip():
                yield read_case(line)

    try:
        for v in verdicts(cases()):
            out.write(json.dumps(v) + "\n")
            out.flush()
    except WireError as exc:
        out.write(json.dumps({"error": str(exc)}) + "\n")
        return 2
    return 0
