"""Durable event outbox in flash: append-only segment files of CRC32-checked records.

A record is header <kind u8, len u16, rid u32, crc u32> + body. Events stay until the
gateway's eack; telemetry is stored only while offline and goes first when space runs out.
Deletions are DEL records, so a segment is never rewritten in place; a torn tail
(power loss mid-append) fails its CRC and is skipped on recovery.
"""

import os
import struct
import binascii

K_EVT = 1
K_TELE = 2
K_DEL = 3

_HDR = "<BHII"
_HDR_LEN = 11
_EVT_PRE = "<8sI"  # boot id, seq
_EVT_PRE_LEN = 12

MAX_RECORDS = 256
MAX_LIVE_BYTES = 48 * 1024
SEG_BYTES = 4096
MAX_SEGS = 12


def _crc(kind, n, rid, body):
    c = binascii.crc32(struct.pack("<BHI", kind, n, rid))
    return binascii.crc32(body, c) & 0xFFFFFFFF


class Rec:
    """One live record; data is kept in RAM only when flash could not take it."""

    __slots__ = ("rid", "kind", "boot", "seq", "seg", "off", "n", "data", "sent")

    def __init__(self, rid, kind, boot, seq, seg, off, n, data=None):
        self.rid = rid
        self.kind = kind
        self.boot = boot
        self.seq = seq
        self.seg = seg
        self.off = off
        self.n = n
        self.data = data
        self.sent = False


class Outbox:
    def __init__(self, path, max_records=MAX_RECORDS, max_bytes=MAX_LIVE_BYTES,
                 seg_bytes=SEG_BYTES, max_segs=MAX_SEGS, log=None):
        self.path = path
        self.max_records = max_records
        self.max_bytes = max_bytes
        self.seg_bytes = seg_bytes
        self.max_segs = max_segs
        self._log = log or (lambda *a: None)
        self.recs = []
        self.segs = []  # segment numbers present on flash, oldest first
        self.cur = 0
        self.cur_size = 0
        self.next_rid = 1
        self.live_bytes = 0
        self.drops_tele = 0
        self.drops_evt = 0
        self.torn = 0
        self.write_errors = 0
        self.compactions = 0

    # ---- files ----
    def _seg_path(self, n):
        return "%s/%08d.seg" % (self.path, n)

    def open(self):
        """Recover from flash; appends always go to a fresh segment."""
        try:
            os.mkdir(self.path)
        except OSError:
            pass
        names = []
        for name in os.listdir(self.path):
            if name.endswith(".seg.tmp"):
                os.remove(self.path + "/" + name)  # interrupted compaction: the originals are intact
            elif name.endswith(".seg"):
                try:
                    names.append(int(name[:-4]))
                except ValueError:
                    self._log("outbox", "stray file", name)
        names.sort()
        live = {}
        order = []
        dead = set()
        max_rid = 0
        for seg in names:
            recs, dels = self._scan(seg)
            for rid, kind, boot, seq, off, n in recs:
                if rid > max_rid:
                    max_rid = rid
                if kind == K_DEL:
                    continue
                if rid in dead or rid in live:
                    continue
                live[rid] = Rec(rid, kind, boot, seq, seg, off, n)
                order.append(rid)
            for rid in dels:
                if rid > max_rid:
                    max_rid = rid
                dead.add(rid)
                live.pop(rid, None)
        self.recs = [live[r] for r in order if r in live]
        self.recs.sort(key=lambda r: r.rid)
        self.live_bytes = sum(r.n for r in self.recs)
        self.segs = names
        self.next_rid = max_rid + 1
        self._new_segment()
        self._gc()

    def _scan(self, seg):
        """Return ([(rid, kind, boot, seq, body_off, body_len)], [rids deleted by DEL records])."""
        dels = []
        out = []
        try:
            f = open(self._seg_path(seg), "rb")
        except OSError:
            return out, dels
        with f:
            off = 0
            while True:
                hdr = f.read(_HDR_LEN)
                if not hdr:
                    break
                if len(hdr) < _HDR_LEN:
                    self.torn += 1
                    break
                kind, n, rid, crc = struct.unpack(_HDR, hdr)
                body = f.read(n)
                if len(body) < n or _crc(kind, n, rid, body) != crc or kind not in (K_EVT, K_TELE, K_DEL):
                    self.torn += 1
                    self._log("outbox", "torn record in segment", seg, "at", off)
                    break
                boff = off + _HDR_LEN
                if kind == K_DEL:
                    for i in range(0, n - 3, 4):
                        dels.append(struct.unpack_from("<I", body, i)[0])
                    out.append((rid, kind, None, 0, boff, n))
                elif kind == K_EVT:
                    boot, seq = struct.unpack_from(_EVT_PRE, body, 0)
                    out.append((rid, kind, boot.decode(), seq, boff, n))
                else:
                    out.append((rid, kind, None, 0, boff, n))
                off = boff + n
        return out, dels

    def _new_segment(self):
        self.cur = (self.segs[-1] + 1) if self.segs else 1
        self.segs.append(self.cur)
        self.cur_size = 0
        with open(self._seg_path(self.cur), "wb"):
            pass

    def _append_raw(self, kind, rid, body):
        """Append one record to the current segment; return the body offset."""
        if self.cur_size >= self.seg_bytes:
            self._new_segment()
            if len(self.segs) > self.max_segs:
                self.compact()
        hdr = struct.pack(_HDR, kind, len(body), rid, _crc(kind, len(body), rid, body))
        off = self.cur_size
        with open(self._seg_path(self.cur), "ab") as f:
            f.write(hdr + body)
        self.cur_size += _HDR_LEN + len(body)
        return off + _HDR_LEN

    def read(self, rec):
        """The stored payload bytes of a record."""
        if rec.data is not None:
            return rec.data
        with open(self._seg_path(rec.seg), "rb") as f:
            f.seek(rec.off)
            body = f.read(rec.n)
        if rec.kind == K_EVT:
            return body[_EVT_PRE_LEN:]
        return body

    def writable(self):
        """The outbox folder takes a small write now (a probe file, removed again)."""
        probe = self.path + "/probe"
        try:
            with open(probe, "wb") as f:
                f.write(b"ok")
            os.remove(probe)
            return True
        except OSError as e:
            self._log("outbox", "flash not writable:", e)
            return False

    # ---- appends ----
    def _make_room(self, n):
        while self.recs and (len(self.recs) >= self.max_records or self.live_bytes + n > self.max_bytes):
            victim = None
            for r in self.recs:
                if r.kind == K_TELE:
                    victim = r
                    break
            if victim is None:
                victim = self.recs[0]
                self.drops_evt += 1
                self._log("outbox", "full: dropping event", victim.boot, victim.seq)
            else:
                self.drops_tele += 1
            self._delete([victim])

    def _add(self, kind, boot, seq, body):
        self._make_room(len(body))
        rid = self.next_rid
        self.next_rid += 1
        try:
            off = self._append_raw(kind, rid, body)
            rec = Rec(rid, kind, boot, seq, self.cur, off, len(body))
        except OSError as e:
            # flash refused: keep it in RAM so it is still delivered this boot
            self.write_errors += 1
            self._log("outbox", "flash write failed, keeping in RAM:", e)
            rec = Rec(rid, kind, boot, seq, None, 0, len(body), body if kind != K_EVT else body[_EVT_PRE_LEN:])
        self.recs.append(rec)
        self.live_bytes += rec.n
        return rec

    def add_evt(self, boot, seq, payload):
        return self._add(K_EVT, boot, seq, struct.pack(_EVT_PRE, boot.encode(), seq) + payload)

    def add_tele(self, payload):
        return self._add(K_TELE, None, 0, payload)

    # ---- deletes ----
    def _delete(self, recs):
        if not recs:
            return
        gone = set(r.rid for r in recs)
        self.recs = [r for r in self.recs if r.rid not in gone]
        for r in recs:
            self.live_bytes -= r.n
        on_flash = [r.rid for r in recs if r.seg is not None]
        if on_flash:
            body = b"".join(struct.pack("<I", rid) for rid in on_flash)
            try:
                self._append_raw(K_DEL, self.next_rid, body)
                self.next_rid += 1
            except OSError as e:
                self.write_errors += 1
                self._log("outbox", "delete marker not written:", e)
        self._gc()

    def ack(self, boot, seq):
        """Cumulative eack: delete events of `boot` with seq <= seq; return how many."""
        hit = [r for r in self.recs if r.kind == K_EVT and r.boot == boot and r.seq <= seq]
        self._delete(hit)
        return len(hit)

    def remove(self, rec):
        self._delete([rec])

    def _gc(self):
        """Delete leading segments that hold no live record (older ones first, so DEL markers stay valid)."""
        used = set(r.seg for r in self.recs)
        while len(self.segs) > 1 and self.segs[0] not in used:
            seg = self.segs.pop(0)
            try:
                os.remove(self._seg_path(seg))
            except OSError as e:
                self._log("outbox", "cannot remove segment", seg, e)

    def compact(self):
        """Copy live records into one new segment, then drop the old segments."""
        self.compactions += 1
        n = self.segs[-1] + 1
        tmp = self._seg_path(n) + ".tmp"
        moved = []
        off = 0
        with open(tmp, "wb") as f:
            for r in self.recs:
                if r.seg is None:
                    continue
                with open(self._seg_path(r.seg), "rb") as src:
                    src.seek(r.off)
                    body = src.read(r.n)
                hdr = struct.pack(_HDR, r.kind, r.n, r.rid, _crc(r.kind, r.n, r.rid, body))
                f.write(hdr + body)
                moved.append((r, off + _HDR_LEN))
                off += _HDR_LEN + r.n
        os.rename(tmp, self._seg_path(n))
        old = self.segs
        for r, boff in moved:
            r.seg = n
            r.off = boff
        for seg in old:
            try:
                os.remove(self._seg_path(seg))
            except OSError as e:
                self._log("outbox", "cannot remove segment", seg, e)
        self.segs = [n]
        self._new_segment()

    # ---- views ----
    def count(self):
        return len(self.recs)

    def events(self):
        return [r for r in self.recs if r.kind == K_EVT]

    def drops(self):
        return self.drops_tele + self.drops_evt
