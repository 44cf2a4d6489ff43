"""Updater: offer check, chunk acceptance, hash check and staging into a new app set (flash only, no network)."""

import binascii
import hashlib
import os
from check import eq, true, raises
from jc import bootstate
from jc.update import Updater, UpdateError, manifest_text, offer_mac, is_dir

KEY = b"k" * 32
FILES = {"jc/app.py": b"print('v2')\n" * 100, "jc/empty.py": b"", "jc/const.py": b'FW = "0.2.0"\n'}


def listing():
    return [{"path": p, "size": len(d), "sha256": binascii.hexlify(hashlib.sha256(d).digest()).decode()}
            for p, d in FILES.items()]


def offer(key=KEY, files=None):
    fs = files or listing()
    return {"ver": "0.2.0", "files": fs, "mac": offer_mac(key, "0.2.0", manifest_text(fs))}


def chunk(path, off, data, ver="0.2.0"):
    return {"ver": ver, "file": path, "off": off, "data": binascii.b2a_base64(data).decode().strip()}


def feed_all(u, source=FILES):
    n = 0
    while u.want() is not None:
        path, off, ln = u.want()
        true(u.chunk(chunk(path, off, source[path][off:off + ln], u.ver)))
        n += 1
    return n


def test_inline_offer_downloads_and_installs_a_trial_set():
    u = Updater("", KEY)
    u.offer(offer())
    eq(u.want(), ("jc/app.py", 0, 512))
    n = feed_all(u)
    eq(n, 4)  # app.py (1200 bytes) in three chunks, the empty file in none, const.py in one
    true(u.done)
    eq(u.install("0.1.0"), "0.2.0")
    true(is_dir("app1") and not is_dir("fw.stage"))
    for p, d in FILES.items():
        with open("app1/" + p, "rb") as f:
            eq(f.read(), d)
    st = bootstate.load("", "0.1.0")
    eq((st["set"], st["ver"], st["prev"], st["prev_ver"], st["trial"]), ("app1", "0.2.0", "", "0.1.0", True))


def test_wrong_key_is_bad_mac_before_any_request():
    u = Updater("", KEY)
    e = raises(UpdateError, u.offer, offer(key=b"x" * 32))
    eq(e.result, "bad_mac")
    eq(u.want(), None)
    true(not is_dir("fw.stage"))


def test_stale_or_wrong_chunks_are_ignored_and_a_bad_file_fails_its_hash():
    u = Updater("", KEY)
    u.offer(offer())
    d = FILES["jc/app.py"]
    eq(u.chunk(chunk("jc/app.py", 512, d[512:1024])), False)  # not the one asked for
    eq(u.chunk(chunk("jc/app.py", 0, d[:100])), False)  # wrong length
    eq(u.chunk(chunk("jc/app.py", 0, d[:512], ver="9.9")), False)
    eq(u.want(), ("jc/app.py", 0, 512))
    bad = dict(FILES)
    bad["jc/app.py"] = b"x" * len(d)
    e = raises(UpdateError, feed_all, u, bad)
    eq(e.result, "bad_hash")
    eq(u.want(), None)
    true(not is_dir("fw.stage"))


def test_manifest_fetched_when_not_inline():
    fs = listing()
    text = manifest_text(fs).encode()
    u = Updater("", KEY)
    u.offer({"ver": "0.2.0", "msize": len(text), "mac": offer_mac(KEY, "0.2.0", text.decode())})
    eq(u.want(), ("@manifest", 0, len(text)))
    true(u.chunk(chunk("@manifest", 0, text)))
    eq(u.want(), ("jc/app.py", 0, 512))
    feed_all(u)
    true(u.done)


def test_second_install_keeps_only_the_running_set():
    for ver in ("0.2.0", "0.3.0"):
        u = Updater("", KEY)
        fs = listing()
        u.offer({"ver": ver, "files": fs, "mac": offer_mac(KEY, ver, manifest_text(fs))})
        feed_all(u)
        u.install("0.1.0")
        st = bootstate.load("", "0.1.0")
        st["trial"] = False  # passed its self-test
        bootstate.save("", st)
    st = bootstate.load("", "0.1.0")
    eq((st["set"], st["prev"]), ("app2", "app1"))
    u = Updater("", KEY)
    fs = listing()
    u.offer({"ver": "0.4.0", "files": fs, "mac": offer_mac(KEY, "0.4.0", manifest_text(fs))})
    feed_all(u)
    u.install("0.3.0")
    st = bootstate.load("", "0.1.0")
    eq((st["set"], st["prev"]), ("app3", "app2"))  # the set before the running one is gone
    eq(sorted(n for n in os.listdir() if n.startswith("app")), ["app2", "app3"])
