"""Secrets and codes: guessable secrets refused at start-up, codes out of every log, station files private."""

import json
import logging
import os
import stat
import subprocess
import sys
from pathlib import Path

import pytest

from cloud.settings import Settings
from cloud.sms import LogNotifier
from cloud.sms_text import Style
from gateway.config import parse_config
from gateway.errors import ConfigError
from gwkit import SECRET_L1, make_config
from jincun import logmask
from jincun.weaksecret import weakness

REPO = Path(__file__).resolve().parents[2]
VECTORS = REPO / "tests" / "vectors"
STRONG = "5b0e8c1d9a7f4e2b8c6d0a1f3e5b7c9d2a4f6e8b0c1d3e5f7a9b2c4d6e8f0a1b"


def station(tmp_path, **override) -> dict:
    data = json.loads(make_config(tmp_path).model_dump_json())
    data["demo"] = False
    data["lockers"][0]["secret"] = data["lockers"][1]["secret"] = STRONG
    data["mqtt"]["password"] = "Kq7-vR2m-Xw9p"
    data["cloud"]["api_key"] = "st-8fJ2kLq9Zx4mWv7T"
    for path, value in override.items():
        *keys, last = path.split(".")
        node = data
        for k in keys:
            node = node[int(k)] if k.isdigit() else node[k]
        node[last] = value
    return data


def vector_secrets() -> set[str]:
    found = set()

    def walk(x):
        if isinstance(x, dict):
            for k, v in x.items():
                if k == "secret" and isinstance(v, str):
                    found.add(v)
                walk(v)
        elif isinstance(x, list):
            for v in x:
                walk(v)
    for f in VECTORS.glob("*.json"):
        walk(json.loads(f.read_text()))
    return found


def test_every_published_test_secret_is_refused():
    secrets = vector_secrets()
    assert SECRET_L1 in secrets and len(secrets) >= 2
    assert all(weakness(s, min_len=64) for s in secrets)


@pytest.mark.parametrize("path,value,why", [
    ("lockers.0.secret", SECRET_L1, "published"),
    ("lockers.0.secret", "00" * 32, "repeats"),
    ("lockers.1.secret", "ab" * 32, "repeats"),
    ("lockers.0.secret", "".join(f"{i:02x}" for i in range(10, 42)), "consecutive"),
    ("mqtt.password", "gw-pass-12", "shorter"),
    ("lockers.0.mqtt_password", "aaaaaaaaaaaaaaaa", "repeats"),
    ("cloud.api_key", "k" * 24, "repeats"),
])
def test_station_refuses_guessable_secrets_outside_the_demo(tmp_path, path, value, why):
    parse_config(station(tmp_path))  # the strong ones pass
    with pytest.raises(ConfigError) as err:
        parse_config(station(tmp_path, **{path: value}))
    assert why in str(err.value) and value not in str(err.value), "the error names the field, not the value"
    parse_config(station(tmp_path, demo=True, **{path: value}))


def test_gateway_process_will_not_start_with_a_test_secret(tmp_path):
    cfg = tmp_path / "station.json"
    cfg.write_text(json.dumps(station(tmp_path, **{"lockers.0.secret": SECRET_L1})))
    proc = subprocess.run([sys.executable, "-m", "gateway", str(cfg)], cwd=tmp_path, capture_output=True, text=True,
                          timeout=60, env=dict(os.environ, PYTHONPATH=str(REPO)))
    assert proc.returncode != 0 and "lockers.l1.secret is a published test value" in proc.stderr


def test_cloud_process_will_not_start_with_a_guessable_admin_token(tmp_path):
    env = dict(os.environ, PYTHONPATH=str(REPO), JINCUN_ADMIN_TOKEN="0" * 32,
               JINCUN_DATABASE_URL=f"sqlite:///{tmp_path}/c.db")
    env.pop("JINCUN_DEMO", None)
    proc = subprocess.run([sys.executable, "-c", "import cloud; cloud.serve('127.0.0.1', 1)"], cwd=tmp_path,
                          env=env, capture_output=True, text=True, timeout=60)
    assert proc.returncode != 0 and "JINCUN_ADMIN_TOKEN repeats one short pattern" in proc.stderr
    with pytest.raises(ValueError):
        Settings(admin_token="a" * 24)
    assert Settings(admin_token="a" * 24, demo=True).admin_token == "a" * 24


def test_codes_never_reach_a_log(caplog):
    text = Style(signature="进村", public_url="https://jc.example.cn").pickup(
        carrier="顺丰", station="冯家村", locker="l1", c=2, code="482913").text
    # as in a demo process, where no mask is installed (another test here may have installed it already)
    factory = logging.getLogRecordFactory()
    logging.setLogRecordFactory(logging.LogRecord)
    try:
        with caplog.at_level(logging.INFO, logger="jincun.cloud.sms"):
            LogNotifier(demo=False).send("13800000001", text)
            LogNotifier(demo=True).send("13800000001", text)
    finally:
        logging.setLogRecordFactory(factory)
    outside, demo = [r.getMessage() for r in caplog.records][-2:]
    assert "482913" not in outside and "取件码 ******" in outside
    assert "13800000001" not in outside and "138****0001" in outside, "nor the recipient's whole number"
    assert "482913" in demo and "13800000001" in demo, "the demo shows its codes"
    otp = Style(signature="进村", public_url="https://jc.example.cn").otp(code="590311", minutes=5).text
    assert "590311" in otp and "590311" not in logmask.mask_codes(otp), "the phone page's login code is masked too"
    caplog.clear()
    logmask.install()  # as the cloud and the gateway do at start-up outside the demo
    log = logging.getLogger("uvicorn.access")
    with caplog.at_level(logging.INFO, logger="uvicorn.access"):
        log.info('%s - "%s %s HTTP/1.1" %d', "127.0.0.1", "GET", "/api/v1/codes/lookup?station=s&code=482913", 200)
        log.info("body %s", json.dumps({"code": "123456", "phone": "13800000001"}))
    assert "482913" not in caplog.text and "123456" not in caplog.text and "13800000001" in caplog.text


async def test_the_station_database_is_private(gateway):
    db = gateway.cfg.gateway.db
    for f in [db, *db.parent.glob(db.name + "-*")]:
        assert stat.S_IMODE(f.stat().st_mode) & 0o077 == 0, f"{f.name} is readable by others"
