"""Firmware update (protocol section 3.7): verify an offer, pull its files in chunks, stage and switch sets.

Sans-IO apart from flash: the app feeds it offers and chunks and asks it what to request next;
the network task sends the requests and retries them.
"""

import binascii
import hashlib
import os
from jc import const as K
from jc import bootstate
from jc.errors import JcError
from jc.digest import hmac_hex, ct_equal

STAGE = "fw.stage"
SPACE_MARGIN = 8192  # leave room for the outbox and vault to keep writing while a set is staged


class UpdateError(JcError):
    """An update step failed; .result is the `fw` event result to report."""

    def __init__(self, result, detail=""):
        super().__init__(result + ": " + detail)
        self.result = result


def manifest_text(files):
    """The lines `path sha256 size`, sorted by path, joined by newlines (what the MAC covers)."""
    rows = sorted(files, key=lambda f: f["path"])
    return "\n".join("%s %s %d" % (f["path"], f["sha256"], f["size"]) for f in rows)


def parse_manifest(text):
    files = []
    for line in text.split("\n"):
        if not line:
            continue
        parts = line.split(" ")
        if len(parts) != 3:
            raise UpdateError("bad_mac", "manifest line")
        try:
            size = int(parts[2])
        except ValueError:
            raise UpdateError("bad_mac", "manifest size")
        files.append({"path": parts[0], "sha256": parts[1], "size": size})
    return files


def offer_mac(secret, ver, manifest):
    return hmac_hex(secret, b"fw:" + ver.encode() + b":" + manifest.encode())


def is_dir(path):
    try:
        return bool(os.stat(path)[0] & 0x4000)
    except OSError:
        return False


def rmtree(path):
    if not is_dir(path):
        try:
            os.remove(path)
        except OSError:
            pass
        return
    for name in os.listdir(path):
        rmtree(path + "/" + name)
    os.rmdir(path)


def makedirs(path):
    cur = ""
    for part in path.split("/"):
        cur = cur + "/" + part if cur else part
        if not is_dir(cur):
            os.mkdir(cur)


def free_bytes(root):
    """Free flash bytes, or None when the port cannot tell."""
    try:
        s = os.statvfs(root or ".")
    except (AttributeError, OSError):
        return None
    return s[0] * s[3]


class Updater:
    """One download at a time; state lives in RAM, the staged files in flash."""

    def __init__(self, root, secret, log=None):
        self.root = root
        self.secret = secret
        self._log = log or (lambda *a: None)
        self.ver = None
        self.mac = None
        self.files = None  # None while the manifest itself is still being fetched
        self.msize = 0
        self.mbuf = None
        self.idx = 0
        self.off = 0
        self.sha = None
        self.stale_chunks = 0
        self.done = False

    @property
    def active(self):
        return self.ver is not None and not self.done

    def _stage(self):
        return self.root + STAGE

    def abort(self, ver=None):
        if self.ver is None or (ver is not None and ver != self.ver):
            return False
        rmtree(self._stage())
        self.ver = None
        self.done = False
        return True

    def offer(self, o):
        """Start a download; raise UpdateError(bad_mac/no_space) if the offer cannot be taken."""
        self.abort()
        rmtree(self._stage())
        self.ver = o["ver"]
        self.mac = o["mac"]
        self.idx = self.off = 0
        self.done = False
        makedirs(self._stage())
        if o.get("files") is not None:
            self._accept_manifest(manifest_text(o["files"]))
        else:
            self.files = None
            self.msize = o["msize"]
            self.mbuf = bytearray()

    def _accept_manifest(self, text):
        ver = self.ver
        if not ct_equal(offer_mac(self.secret, ver, text), self.mac):
            self.abort()
            raise UpdateError("bad_mac", ver)
        files = parse_manifest(text)
        from jc import proto
        for f in files:
            if not proto.is_fw_path(f["path"]) or not proto.is_hash(f["sha256"]) or f["size"] < 0:
                self.abort()
                raise UpdateError("bad_mac", "manifest entry")
        need = sum(f["size"] for f in files) + SPACE_MARGIN
        free = free_bytes(self.root)
        if free is not None and free < need:
            self.abort()
            raise UpdateError("no_space", "%d free, %d needed" % (free, need))
        self.files = files
        self.mbuf = None
        self.idx = self.off = 0
        self.sha = hashlib.sha256()
        self._skip_empty()

    def _skip_empty(self):
        while self.idx < len(self.files) and self.files[self.idx]["size"] == 0:
            self._open_file(self.files[self.idx])  # create it
            self._finish_file()

    def _open_file(self, f):
        p = self._stage() + "/" + f["path"]
        d = p.rsplit("/", 1)[0]
        makedirs(d)
        with open(p, "wb"):
            pass

    def want(self):
        """(file, off, len) to request next, or None when nothing is missing."""
        if not self.active:
            return None
        if self.files is None:
            return (K.FW_MANIFEST, len(self.mbuf), min(K.FW_CHUNK_MAX, self.msize - len(self.mbuf)))
        if self.idx >= len(self.files):
            return None
        f = self.files[self.idx]
        return (f["path"], self.off, min(K.FW_CHUNK_MAX, f["size"] - self.off))

    def chunk(self, o):
        """Take one fw_chunk; return True if it was the one asked for. Raise UpdateError on a bad file."""
        w = self.want()
        if w is None or o["ver"] != self.ver or o["file"] != w[0] or o["off"] != w[1]:
            self.stale_chunks += 1  # a late answer to a repeated request
            return False
        try:
            data = binascii.a2b_base64(o["data"])
        except ValueError:
            self.stale_chunks += 1
            return False
        if len(data) != w[2]:
            self.stale_chunks += 1
            return False
        if self.files is None:
            self.mbuf.extend(data)
            if len(self.mbuf) >= self.msize:
                try:
                    text = bytes(self.mbuf).decode()
                except UnicodeError:
                    self.abort()
                    raise UpdateError("bad_mac", "manifest not text")
                self._accept_manifest(text)
            return True
        f = self.files[self.idx]
        p = self._stage() + "/" + f["path"]
        if self.off == 0:
            self._open_file(f)
        with open(p, "ab") as fh:
            fh.write(data)
        self.sha.update(data)
        self.off += len(data)
        if self.off >= f["size"]:
            self._finish_file()
        return True

    def _finish_file(self):
        f = self.files[self.idx]
        got = binascii.hexlify(self.sha.digest()).decode()
        if not ct_equal(got, f["sha256"]):
            path = f["path"]
            self.abort()
            raise UpdateError("bad_hash", path)
        self.idx += 1
        self.off = 0
        self.sha = hashlib.sha256()
        if self.idx < len(self.files) and self.files[self.idx]["size"] == 0:
            self._open_file(self.files[self.idx])
            self._finish_file()
        elif self.idx >= len(self.files):
            self.done = True

    def install(self, running_ver):
        """Turn the verified stage into a new app set and put it on trial for the next boot."""
        st = bootstate.load(self.root, running_ver)
        n = 1
        while is_dir(self.root + "app%d" % n):
            n += 1
        name = "app%d" % n
        with open(self._stage() + "/MANIFEST", "w") as f:
            f.write(manifest_text(self.files))
        os.rename(self._stage(), self.root + name)
        if st["prev"] and st["prev"] != st["set"]:
            rmtree(self.root + st["prev"])  # only the running set is kept for rollback
        st["prev"], st["prev_ver"] = st["set"], st["ver"]
        st["set"], st["ver"] = name, self.ver
        st["trial"] = True
        st["tries"] = 0
        st["fails"] = 0
        bootstate.save(self.root, st)
        ver = self.ver
        self.ver = None
        self.done = False
        return ver
