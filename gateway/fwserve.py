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
import re
from dataclasses import dataclass
from pathlib import Path

from .errors import GatewayError

FWREQ = "fwreq"  # jc/v1/{station}/{locker}/fwreq, locker -> gateway, QoS 0
FWREQ_MAX_BYTES = 512
CMD_MAX_BYTES = 1024
CHUNK_MAX = 512
PATH_MAX = 64
FILES_MAX = 40
MANIFEST_FILE = "@manifest"
# never part of a set: the loader (kept across updates) and per-device files
EXCLUDED = frozenset({"main.py", "boot.py", "config.json"})
_PATH_RE = re.compile(r"^[A-Za-z0-9_\-][A-Za-z0-9_\-./]{0,63}$")
_VER_RE = re.compile(r"^[A-Za-z0-9_\-.]{1,24}$")
_ID_RE = re.compile(r"^[A-Za-z0-9_\-]{1,24}$")


class FwServeError(GatewayError):
    """A firmware set cannot be served, or a fwreq was refused; `code` says why."""

    def __init__(self, code: str, detail: str = "") -> None:
        super().__init__(f"{code}: {detail}" if detail else code)
        self.code = code
        self.detail = detail


def valid_path(p: str) -> bool:
    return bool(_PATH_RE.match(p)) and ".." not in p and "//" not in p


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
        if not _VER_RE.match(ver):
            raise FwServeError("bad_version", f"version {ver!r}")
        if not 1 <= len(files) <= FILES_MAX:
            raise FwServeError("bad_set", f"{len(files)} files; a set has 1 to {FILES_MAX}")
        for p in files:
            if not valid_path(p):
                raise FwServeError("bad_set", f"path {p!r}")
        self.ver = ver
        self.files = {p: FwFile(p, bytes(d)) for p, d in sorted(files.items())}

    @classmethod
    def load(cls, folder: str | Path, ver: str) -> "FirmwareSet":
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
        if not _ID_RE.match(cmd_id):
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
        """Validate a fwreq payload in the contract's order; raise FwServeError with the vector category."""
        if isinstance(payload, str):
            payload = payload.encode()
        if len(payload) > FWREQ_MAX_BYTES:
            raise FwServeError("too_large", f"{len(payload)} bytes")
        try:
            o = json.loads(payload.decode())
        except (UnicodeDecodeError, ValueError) as e:
            raise FwServeError("not_json", str(e)) from e
        if not isinstance(o, dict):
            raise FwServeError("not_object")
        if o.get("v") != 1 or type(o.get("v")) is not int:
            raise FwServeError("bad_version")
        ver, file, off, n = o.get("ver"), o.get("file"), o.get("off"), o.get("len")
        if not isinstance(ver, str) or not _VER_RE.match(ver):
            raise FwServeError("bad_field", "ver")
        if not isinstance(file, str) or not (file == MANIFEST_FILE or valid_path(file)):
            raise FwServeError("bad_field", "file")
        if type(off) is not int or off < 0:
            raise FwServeError("bad_field", "off")
        if type(n) is not int or not 1 <= n <= CHUNK_MAX:
            raise FwServeError("bad_field", "len")
        return o

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
