"""gateway/fwserve.py: firmware sets, offers with a per-device MAC, and fwreq answers (sans-IO)."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json

import pytest

from gateway.fwserve import FirmwareSet, FwServe, FwServeError

SECRET = "9fd687cc5e1918da74cb849b2370293069abc311a49d4f4b7772006b898ad859"


@pytest.fixture
def fwset(tmp_path):
    root = tmp_path / "fw"
    (root / "jc").mkdir(parents=True)
    (root / "jc" / "app.py").write_bytes(b"x = 1\n" * 300)  # 1800 bytes: four chunks
    (root / "jc" / "const.py").write_bytes(b'FW = "0.2.0"\n')
    (root / "jc" / "__pycache__").mkdir()
    (root / "jc" / "__pycache__" / "app.cpython-311.pyc").write_bytes(b"junk")
    (root / "main.py").write_text("loader\n")
    (root / "config.json").write_text("{}")
    return FirmwareSet.load(root, "0.2.0")


def test_set_holds_app_files_only_with_manifest(fwset):
    assert sorted(fwset.files) == ["jc/app.py", "jc/const.py"]
    sha = hashlib.sha256(b"x = 1\n" * 300).hexdigest()
    assert fwset.manifest().split("\n")[0] == f"jc/app.py {sha} 1800"
    want = hmac.new(bytes.fromhex(SECRET), b"fw:0.2.0:" + fwset.manifest().encode(), hashlib.sha256).hexdigest()
    assert fwset.mac(SECRET) == want
    assert fwset.mac("00" * 32) != want  # per-device key


def test_small_offer_is_inline(fwset):
    o = json.loads(FwServe(fwset).offer("u-1", SECRET))
    assert o["op"] == "fw_offer" and o["ver"] == "0.2.0" and o["mac"] == fwset.mac(SECRET)
    assert [f["path"] for f in o["files"]] == ["jc/app.py", "jc/const.py"]
    assert o["files"][0]["size"] == 1800


def test_large_offer_points_to_the_manifest(tmp_path):
    files = {f"jc/mod{i:02d}.py": b"pass\n" for i in range(20)}
    srv = FwServe(FirmwareSet("1.0.0", files))
    raw = srv.offer("u-1", SECRET)
    o = json.loads(raw)
    assert len(raw) <= 1024 and "files" not in o and o["msize"] == len(srv.set.manifest())
    got = b""
    while len(got) < o["msize"]:
        req = {"v": 1, "ver": "1.0.0", "file": "@manifest", "off": len(got), "len": 512}
        got += base64.b64decode(json.loads(srv.answer(json.dumps(req)))["data"])
    assert got.decode() == srv.set.manifest()


def test_chunks_rebuild_the_file(fwset):
    srv = FwServe(fwset)
    data, off = b"", 0
    while off < 1800:
        n = min(512, 1800 - off)
        c = json.loads(srv.answer(json.dumps({"v": 1, "ver": "0.2.0", "file": "jc/app.py", "off": off, "len": n})))
        assert c["op"] == "fw_chunk" and c["file"] == "jc/app.py" and c["off"] == off
        part = base64.b64decode(c["data"])
        assert len(part) == n and len(json.dumps(c)) <= 1024
        data += part
        off += n
    assert data == fwset.files["jc/app.py"].data
    assert srv.served_chunks == 4 and srv.served_bytes == 1800
    ids = {json.loads(srv.answer(json.dumps({"v": 1, "ver": "0.2.0", "file": "jc/app.py", "off": 0, "len": 1})))["id"]
           for _ in range(3)}
    assert len(ids) == 3  # every answer is a fresh command id


@pytest.mark.parametrize("payload,code", [
    ("x" * 600, "too_large"),
    ("{nope", "not_json"),
    ("[1]", "not_object"),
    ('{"v":2,"ver":"0.2.0","file":"jc/app.py","off":0,"len":1}', "bad_version"),
    ('{"v":1,"ver":"0.2.0","file":"../etc/passwd","off":0,"len":1}', "bad_field"),
    ('{"v":1,"ver":"0.2.0","file":"jc/app.py","off":0,"len":513}', "bad_field"),
    ('{"v":1,"ver":"0.9.9","file":"jc/app.py","off":0,"len":1}', "unknown_version"),
    ('{"v":1,"ver":"0.2.0","file":"jc/nope.py","off":0,"len":1}', "unknown_file"),
    ('{"v":1,"ver":"0.2.0","file":"jc/app.py","off":1800,"len":1}', "bad_range"),
])
def test_bad_requests_are_refused_and_counted(fwset, payload, code):
    srv = FwServe(fwset)
    with pytest.raises(FwServeError) as e:
        srv.answer(payload)
    assert e.value.code == code and srv.refused == 1


def test_bad_sets_are_refused(tmp_path):
    with pytest.raises(FwServeError):
        FirmwareSet("0.2.0", {"/abs.py": b""})
    with pytest.raises(FwServeError):
        FirmwareSet("bad version!", {"a.py": b""})
    with pytest.raises(FwServeError):
        FirmwareSet.load(tmp_path / "missing", "0.2.0")


def test_fwupdate_vectors():
    """The normative fwreq cases of tests/vectors/fwupdate.json (validation order and categories)."""
    from pathlib import Path
    vec = json.loads((Path(__file__).resolve().parents[1] / "vectors" / "fwupdate.json").read_text())
    srv = FwServe(FirmwareSet("0.2.0", {"jc/app.py": b"x" * 600, "a.py": b"y"}))
    for c in vec["payloads"]:
        if c["kind"] != "fwreq":
            continue
        if c["valid"]:
            srv.parse_request(c["payload"])
        else:
            with pytest.raises(FwServeError) as e:
                srv.parse_request(c["payload"])
            assert e.value.code == c["error"], c["name"]


def test_real_files_mac_matches_vector_rule(tmp_path):
    (tmp_path / "jc").mkdir()
    (tmp_path / "jc" / "vault.py").write_bytes(b"hello")
    (tmp_path / "jc" / "app.py").write_bytes(b"")
    (tmp_path / "jc" / "const.py").write_bytes(b'FW = "0.2.0"\n')
    from pathlib import Path
    vec = json.loads((Path(__file__).resolve().parents[1] / "vectors" / "fwupdate.json").read_text())
    c = vec["macs"][0]
    fwset = FirmwareSet.load(tmp_path, c["ver"])
    assert fwset.manifest() == c["manifest"] and fwset.mac(c["secret"]) == c["mac"]
