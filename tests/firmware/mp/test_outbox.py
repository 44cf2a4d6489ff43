"""Outbox: ordering, eack deletion, torn tails, bounds and drop counters, restarts, compaction."""

import os
from check import eq, true
from jc.outbox import Outbox

A = "aaaaaaaa"
B = "bbbbbbbb"


def ob(**kw):
    o = Outbox("ob", **kw)
    o.open()
    return o


def evt(boot, seq):
    return ('{"boot":"%s","seq":%d}' % (boot, seq)).encode()


def seqs(o):
    return [(r.boot, r.seq) for r in o.events()]


def test_order_and_cumulative_eack():
    o = ob()
    for s in range(1, 11):
        o.add_evt(A, s, evt(A, s))
    eq(o.ack(A, 5), 5)
    eq(seqs(o), [(A, s) for s in range(6, 11)])
    eq(o.read(o.events()[0]), evt(A, 6))
    p = ob()
    eq(seqs(p), [(A, s) for s in range(6, 11)])
    eq(p.read(p.events()[-1]), evt(A, 10))


def test_previous_boot_events_survive_and_keep_ids():
    o = ob()
    for s in (1, 2, 3):
        o.add_evt(A, s, evt(A, s))
    p = ob()  # reboot
    p.add_evt(B, 1, evt(B, 1))
    eq(seqs(p), [(A, 1), (A, 2), (A, 3), (B, 1)])
    eq(p.ack(B, 1), 1)  # eack is per boot
    eq(seqs(p), [(A, 1), (A, 2), (A, 3)])
    eq(p.ack(A, 3), 3)
    eq(ob().count(), 0)


def _last_segment():
    names = sorted(n for n in os.listdir("ob") if n.endswith(".seg"))
    return "ob/" + names[-1]


def test_torn_tail_is_skipped_and_counted():
    o = ob()
    for s in (1, 2, 3):
        o.add_evt(A, s, evt(A, s))
    seg = _last_segment()
    with open(seg, "rb") as f:
        raw = f.read()
    with open(seg, "wb") as f:
        f.write(raw[:-7])  # power lost in the middle of the third append
    p = ob()
    eq(seqs(p), [(A, 1), (A, 2)])
    eq(p.torn, 1)
    p.add_evt(A, 4, evt(A, 4))
    q = ob()
    eq(seqs(q), [(A, 1), (A, 2), (A, 4)])
    eq(q.read(q.events()[-1]), evt(A, 4))


def test_corrupt_record_fails_crc():
    o = ob()
    o.add_evt(A, 1, evt(A, 1))
    o.add_evt(A, 2, evt(A, 2))
    seg = _last_segment()
    with open(seg, "rb") as f:
        raw = bytearray(f.read())
    raw[-3] ^= 0xFF
    with open(seg, "wb") as f:
        f.write(raw)
    p = ob()
    eq(seqs(p), [(A, 1)])
    eq(p.torn, 1)


def test_bound_drops_telemetry_first_then_oldest_event():
    o = ob(max_records=10)
    for i in range(5):
        o.add_tele(b'{"tele":%d}' % i)
    for s in range(1, 11):
        o.add_evt(A, s, evt(A, s))
    eq(o.count(), 10)
    eq(o.drops_tele, 5)
    eq(o.drops_evt, 0)
    o.add_evt(A, 11, evt(A, 11))
    eq(o.drops_evt, 1)
    eq(seqs(o)[0], (A, 2))
    eq(seqs(ob(max_records=10)), [(A, s) for s in range(2, 12)])


def test_byte_bound():
    o = ob(max_bytes=1000)
    for s in range(1, 200):
        o.add_evt(A, s, evt(A, s) + b" " * 50)
    true(o.live_bytes <= 1000)
    eq(o.drops_evt + o.count(), 199)


def test_tele_removed_after_send():
    o = ob()
    r = o.add_tele(b'{"t":1}')
    o.add_evt(A, 1, evt(A, 1))
    eq(o.read(r), b'{"t":1}')
    o.remove(r)
    eq(ob().count(), 1)


def test_segments_stay_bounded_under_churn():
    o = ob(seg_bytes=256, max_segs=4)
    for s in range(1, 301):
        o.add_evt(A, s, evt(A, s))
        if s % 7 == 0:
            o.ack(A, s - 3)
    true(len(os.listdir("ob")) <= 6, "segment files: %d" % len(os.listdir("ob")))
    want = seqs(o)
    eq(want, [(A, s) for s in range(292, 301)])  # last eack at 294 covered up to 291
    p = ob(seg_bytes=256, max_segs=4)
    eq(seqs(p), want)
    eq(p.read(p.events()[0]), evt(A, 292))


def test_stuck_old_event_forces_compaction():
    o = ob(seg_bytes=128, max_segs=3)
    o.add_evt(B, 1, evt(B, 1))  # never acknowledged
    for s in range(1, 200):
        o.add_evt(A, s, evt(A, s))
        o.ack(A, s)
    true(o.compactions > 0)
    true(len(os.listdir("ob")) <= 5)
    p = ob(seg_bytes=128, max_segs=3)
    eq(seqs(p), [(B, 1)])
    eq(p.read(p.events()[0]), evt(B, 1))


def test_interrupted_compaction_temp_is_ignored():
    o = ob()
    o.add_evt(A, 1, evt(A, 1))
    with open("ob/00000099.seg.tmp", "wb") as f:
        f.write(b"\x01\x02")
    p = ob()
    eq(seqs(p), [(A, 1)])
    true("00000099.seg.tmp" not in os.listdir("ob"))
