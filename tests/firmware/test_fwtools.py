"""`jincun firmware check`: every firmware file compiles with mpy-cross and imports only ESP32-port modules."""

from jincun import fwtools


def test_every_firmware_file_compiles(tmp_path):
    res = fwtools.check(out_dir=tmp_path)
    assert res["errors"] == []
    paths = {f["path"] for f in res["files"]}
    for must in ("main.py", "boot.py", "jc/app.py", "jc/proto.py", "jc/mqtt.py", "jc/outbox.py", "jc/vault.py",
                 "jc/hal_esp32.py", "jc/pins.py"):
        assert must in paths
    assert res["mpy_bytes"] == sum(f["mpy_bytes"] for f in res["files"]) > 0
    assert (tmp_path / "jc" / "app.mpy").exists()


def test_compile_error_is_reported(tmp_path):
    root = tmp_path / "fw"
    root.mkdir()
    (root / "ok.py").write_text("x = 1\n")
    (root / "broken.py").write_text("def f(:\n")
    res = fwtools.check(out_dir=tmp_path / "out", root=root)
    assert [e["path"] for e in res["errors"]] == ["broken.py"]
    assert [f["path"] for f in res["files"]] == ["ok.py"]


def test_firmware_imports_only_esp32_modules():
    assert fwtools.check_imports() == []


def test_import_outside_allow_list_is_flagged(tmp_path):
    (tmp_path / "a.py").write_text("import json\nfrom jc import proto\n")
    (tmp_path / "b.py").write_text("def f():\n    import re\n    from collections import deque\n")
    assert fwtools.check_imports(tmp_path) == [{"path": "b.py", "modules": ["collections", "re"]}]
