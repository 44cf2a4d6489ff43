"""Gateway side of the firmware update (docs/protocol.md section 3.7), sans-IO.

A FirmwareSet is the app file set of one version, read from a folder. FwServe builds the `fw_offer`
command for one locker (the MAC is keyed with that locker's device secret) and answers each `fwreq`
the locker publishes with one `fw_chunk` command payload. The caller owns MQTT: it publishes the
offer and the chunks on the locker's `cmd` topic (QoS 1) and hands every payload from the locker's
`fwreq` topic to `answer()`.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
from dataclasses import dataclass
from pathlib import Path

from jc import const as K
from jc import wire

from .errors import GatewayError, ProtocolError
from .protocol import decode

FWREQ = K.FWREQ  # jc/v1/{station}/{locker}/fwreq, locker -> gateway, QoS 0
FWREQ_MAX_BYTES = K.MAX_BYTES[K.FWREQ]
CMD_MAX_BYTES = K.MAX_BYTES[K.CMD]
CHUNK_MAX = K.FW_CHUNK_MAX
PATH_MAX = K.FW_PATH_MAX
FILES_MAX = K.FW_FILES_MAX
MANIFEST_FILE = K.FW_MANIFEST
# never part of a set: the loader (kept across updates) and per-device files
EXCLUDED = frozenset({"main.py", "boot.py", "config.json"})


class FwServeError(GatewayError):
    """A firmware set cannot be served, or a fwreq was refused; `code` says why."""

    def __init__(self, code: str, detail: str = "") -> None:
        super().__init__(f"{code}: {detail}" if detail else code)
        self.code = code
        self.detail = detail


def valid_path(p: str) -> bool:
    return wire.is_fw_path(p)


@dataclass(frozen=True)
class FwFile:
    path: str
    data: bytes

    @property
    def size(self) -> int:
        return len(self.data)

    @property
    def sha256(self) -> str:
        return hashlib.sha256(self.data).hexdigest()


class FirmwareSet:
    """The files of one firmware version, by path relative to the app root."""

    def __init__(self, ver: str, files: dict[str, bytes]) -> None:
        if not wire.is_form(ver, "ver"):
            raise FwServeError("bad_version", f"version {ver!r}")
        if not 1 <= len(files) <= FILES_MAX:
            raise FwServeError("bad_set", f"{len(files)} files; a set has 1 to {FILES_MAX}")
        for p in files:
            if not valid_path(p):
                raise FwServeError("bad_set", f"path {p!r}")
        self.ver = ver
        self.files = {p: FwFile(p, bytes(d)) for p, d in sorted(files.items())}

    @classmethod
    def load(cls, folder: str | Path, ver: str) -> FirmwareSet:
        """Every file under folder except the loader, device config and caches."""
        root = Path(folder)
        if not root.is_dir():
            raise FwServeError("bad_set", f"no folder {root}")
        files = {}
        for p in sorted(root.rglob("*")):
            rel = p.relative_to(root).as_posix()
            if not p.is_file() or "__pycache__" in p.parts or p.suffix == ".pyc" or rel in EXCLUDED:
                continue
            files[rel] = p.read_bytes()
        return cls(ver, files)

    def manifest(self) -> str:
        """`path sha256 size` lines sorted by path, joined by newlines: what the MAC covers."""
        return "\n".join(f"{f.path} {f.sha256} {f.size}" for f in self.files.values())

    def mac(self, secret_hex: str) -> str:
        """hex HMAC-SHA256(device secret, "fw:" + ver + ":" + manifest)."""
        key = bytes.fromhex(secret_hex)
        return hmac.new(key, f"fw:{self.ver}:{self.manifest()}".encode(), hashlib.sha256).hexdigest()

    def total_bytes(self) -> int:
        return sum(f.size for f in self.files.values())


class FwServe:
    """Offers one firmware set and answers chunk requests for it (any number of lockers at once)."""

    def __init__(self, fwset: FirmwareSet) -> None:
        self.set = fwset
        self._manifest = fwset.manifest().encode()
        self._n = 0
        self.served_chunks = 0
        self.served_bytes = 0
        self.refused = 0

    def _cmd_id(self) -> str:
        self._n += 1
        return f"fw-{self._n}"

    def offer(self, cmd_id: str, secret_hex: str) -> bytes:
        """The `fw_offer` command payload; the file list is inline when it fits, else fetched as a manifest."""
        if not wire.is_form(cmd_id, "cmd_id"):
            raise FwServeError("bad_field", f"command id {cmd_id!r}")
        o = {"v": 1, "id": cmd_id, "op": "fw_offer", "ver": self.set.ver, "mac": self.set.mac(secret_hex),
             "files": [{"path": f.path, "size": f.size, "sha256": f.sha256} for f in self.set.files.values()]}
        raw = json.dumps(o, separators=(",", ":")).encode()
        if len(raw) <= CMD_MAX_BYTES:
            return raw
        del o["files"]
        o["msize"] = len(self._manifest)
        return json.dumps(o, separators=(",", ":")).encode()

    def abort(self, cmd_id: str) -> bytes:
        return json.dumps({"v": 1, "id": cmd_id, "op": "fw_abort", "ver": self.set.ver},
                          separators=(",", ":")).encode()

    def parse_request(self, payload: bytes | str) -> dict:
        """Validate a fwreq payload (the wire core's checks); raise FwServeError with the vector category."""
        if isinstance(payload, str):
            payload = payload.encode()
        try:
            return decode(K.FWREQ, payload)
        except ProtocolError as e:
            raise FwServeError(e.code, e.detail) from None

    def answer(self, payload: bytes | str, cmd_id: str | None = None) -> bytes:
        """The `fw_chunk` command payload answering one fwreq; FwServeError if it cannot be answered."""
        try:
            o = self.parse_request(payload)
            if o["ver"] != self.set.ver:
                raise FwServeError("unknown_version", o["ver"])
            if o["file"] == MANIFEST_FILE:
                data = self._manifest
            else:
                f = self.set.files.get(o["file"])
                if f is None:
                    raise FwServeError("unknown_file", o["file"])
                data = f.data
            off, n = o["off"], o["len"]
            if off >= len(data) and not (off == 0 and not data):
                raise FwServeError("bad_range", f"offset {off} of {o['file']} ({len(data)} bytes)")
        except FwServeError:
            self.refused += 1
            raise
        part = data[off:off + n]
        self.served_chunks += 1
        self.served_bytes += len(part)
        return json.dumps({"v": 1, "id": cmd_id or self._cmd_id(), "op": "fw_chunk", "ver": self.set.ver,
                           "file": o["file"], "off": off, "data": base64.b64encode(part).decode()},
                          separators=(",", ":")).encode()
