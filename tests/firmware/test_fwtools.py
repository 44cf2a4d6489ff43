"""`jincun firmware check`: every firmware file compiles with mpy-cross and imports only ESP32-port modules."""

from pathlib import Path

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


def test_firmware_imports_only_esp32_modules_and_the_vendored_libraries():
    assert fwtools.check_imports() == []
    assert set(fwtools.vendored()) == {"hmac", "logging", "ssd1306", "aiorepl"}


def test_import_outside_allow_list_is_flagged(tmp_path):
    (tmp_path / "a.py").write_text("import json\nfrom jc import proto\n")
    (tmp_path / "b.py").write_text("def f():\n    import re\n    from collections import deque\n    import umqtt\n")
    assert fwtools.check_imports(tmp_path) == [{"path": "b.py", "modules": ["collections", "umqtt"]}]


def test_only_the_packages_the_manifest_requires_are_allowed(tmp_path):
    """ntptime is in upstream micropython-lib but not required by the manifest: importing it is flagged."""
    (tmp_path / "x.py").write_text("import ntptime\nimport hmac\nimport logging\nimport ssd1306\n")
    assert fwtools.check_imports(tmp_path, libs=fwtools.vendored()) == [{"path": "x.py", "modules": ["ntptime"]}]


def test_manifest_freezes_the_app_and_requires_the_vendored_packages():
    m = fwtools.read_manifest()
    app = {p.relative_to(fwtools.FIRMWARE).as_posix() for p in m.app}
    assert {"jc/app.py", "jc/display.py", "jc/digest.py", "jc/console.py", "jc/wire.py"} <= app
    assert all(a.startswith("jc/") for a in app)  # boot.py and main.py stay files on the flash
    assert m.versions == {"hmac": "3.4.4", "logging": "0.6.2", "ssd1306": "0.1.0", "aiorepl": "0.2.4"}
    assert fwtools.check_manifest() == []
    lib = fwtools.LIB / "micropython-lib"
    assert "MIT" in (lib / "LICENSE").read_text()
    assert "ee4bb8ff139e24c42b739935fbd8ec7c4d061e02" in (lib / "UPSTREAM.md").read_text()


def test_manifest_names_a_package_that_is_not_vendored(tmp_path):
    import pytest
    (tmp_path / "manifest.py").write_text('add_library("v", "lib")\nrequire("umqtt.simple", library="v")\n')
    (tmp_path / "lib").mkdir()
    with pytest.raises(fwtools.FwToolsError, match="umqtt.simple"):
        fwtools.read_manifest(tmp_path / "manifest.py")


def _device_config(tmp_path, **over):
    import json
    cfg = {"station": "s1", "locker": "l1", "secret": "ab" * 32,
           "mqtt": {"host": "10.0.0.2", "port": 8883, "user": "l1", "password": "pw-Zq8x", "client_id": "s1-l1",
                    "tls": True, "ca": "MIIBdzCCAR2gAwIBAgIU", "server_hostname": "10.0.0.2"},
           "comps": [{"n": 1, "size": "S"}], "wifi": {"ssid": "station", "password": "w"}}
    cfg.update(over)
    p = tmp_path / "config.json"
    p.write_text(json.dumps(cfg))
    return p


def test_deploy_copies_mpy_loader_and_config_with_mpremote(tmp_path):
    """mpremote needs a board on a serial port; a recording stand-in takes its place at the same CLI."""
    log = tmp_path / "calls.txt"
    fake = tmp_path / "mpremote"
    fake.write_text("#!/bin/sh\n{ echo \"$@\"; find . -type f | sort; echo ---; } >> " + str(log) + "\n")
    fake.chmod(0o755)
    cfg = _device_config(tmp_path)
    assert fwtools.deploy("/dev/ttyUSB0", cfg, mpremote=str(fake)) == 0
    calls = log.read_text().split("---\n")
    assert calls[0].startswith("connect /dev/ttyUSB0 exec import os")
    assert "boot.json" in calls[0] and "'lib'" in calls[0]  # an earlier over-the-air set and old libraries go
    copy = calls[1].splitlines()
    assert copy[0] == "connect /dev/ttyUSB0 fs cp -r jc lib boot.py main.py glyphs.bin config.json :"
    files = set(copy[1:])
    assert {"./boot.py", "./main.py", "./config.json", "./jc/app.mpy", "./jc/vault.mpy", "./glyphs.bin"} <= files
    # micropython-lib's modules go to /lib, compiled, as `mpremote mip install` would put them
    assert {"./lib/hmac.mpy", "./lib/logging.mpy", "./lib/ssd1306.mpy", "./lib/aiorepl.mpy"} <= files
    assert not any(f.startswith("./lib/") and not f.endswith(".mpy") for f in files)
    assert {"./jc/wire.mpy", "./jc/const.mpy"} <= files  # the wire core the gateway and cloud share
    assert not any(f.startswith("./jc/") and f.endswith(".py") for f in files)
    assert calls[2].splitlines()[0] == "connect /dev/ttyUSB0 reset"


def test_deploy_refuses_unprovisioned_or_simulator_config(tmp_path):
    import pytest
    for bad in ({"secret": ""}, {"mqtt": {"host": "h", "port": 1, "client_id": "c"}}, {"sim": {"port": 1}},
                {"wifi": {}}):
        with pytest.raises(fwtools.FwToolsError):
            fwtools.deploy("/dev/ttyUSB0", _device_config(tmp_path, **bad), mpremote="/bin/false")


def test_deploy_refuses_plain_mqtt_outside_the_demo(tmp_path):
    import pytest
    plain = {"host": "10.0.0.2", "port": 1883, "user": "l1", "password": "pw-Zq8x", "client_id": "s1-l1"}
    for bad in ({"mqtt": plain}, {"mqtt": plain, "demo": "yes"}, {"mqtt": dict(plain, tls=True)}):
        with pytest.raises(fwtools.FwToolsError, match="TLS|mqtt.ca") as err:
            fwtools.deploy("/dev/ttyUSB0", _device_config(tmp_path, **bad), mpremote="/bin/false")
        assert "provision it again" in str(err.value)
    # the one way out: a config marked as a demo one, as provision writes for a demo station
    assert fwtools.check_device_config(_device_config(tmp_path, mqtt=plain, demo=True))["mqtt"]["port"] == 1883


def test_provision_writes_unique_private_configs_the_firmware_accepts(tmp_path):
    import json
    import stat
    import subprocess
    from jincun import provision
    from simulator.locker import FIRMWARE, _find_micropython

    a = provision.provision_device(station="s1", locker="l1", mqtt_host="10.0.0.2", mqtt_port=1883, comps="6S,4M,2L",
                                   out=tmp_path / "a.json", wifi_ssid="station", wifi_password="w", demo=True)
    b = provision.provision_device(station="s1", locker="l2", mqtt_host="10.0.0.2", mqtt_port=1883, comps="12M,12L",
                                   out=tmp_path / "b.json", lock_board="kr-cu16", wifi_ssid="station", demo=True)
    ca, cb = json.loads(a.read_text()), json.loads(b.read_text())
    assert ca["demo"] is True and "tls" not in ca["mqtt"]  # no station.json: a plain demo config, marked so
    assert ca["secret"] != cb["secret"] and ca["mqtt"]["password"] != cb["mqtt"]["password"]
    assert stat.S_IMODE(a.stat().st_mode) == 0o600
    assert "locks" not in ca and cb["locks"] == {"bus": "rs485", "model": "kr-cu16", "addr": 0}
    assert len(cb["comps"]) == 24
    for p in (a, b):
        assert fwtools.check_device_config(p)["wifi"]["ssid"] == "station"
        prog = f"import json\nfrom jc.app import check_config\ncheck_config(json.load(open({str(p)!r})))\nprint('ok')\n"
        out = subprocess.run([_find_micropython(), "-c", prog], capture_output=True, text=True, timeout=30,
                             env={"MICROPYPATH": fwtools.micropypath()})
        assert out.stdout.strip() == "ok", out.stdout + out.stderr
    import pytest
    with pytest.raises(provision.ProvisionError):
        provision.provision_device(station="s1", locker="l3", mqtt_host="h", mqtt_port=1, comps="24M",
                                   out=tmp_path / "c.json", demo=True)


def test_provision_without_a_station_json_is_refused_outside_the_demo(tmp_path):
    import pytest
    from jincun import provision

    for station_config in (None, tmp_path / "missing.json"):
        with pytest.raises(provision.ProvisionError, match="station's CA and TLS port.*gateway enroll"):
            provision.provision_device(station="s1", locker="l1", mqtt_host="10.0.0.2", mqtt_port=1883, comps=None,
                                       out=tmp_path / "a.json", station_config=station_config)
    assert not (tmp_path / "a.json").exists()
