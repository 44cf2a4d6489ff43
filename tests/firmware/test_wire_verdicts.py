"""`jincun wire verdicts`: the firmware (under MicroPython), the gateway and the cloud agree on every payload."""

from __future__ import annotations

import base64
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings

from jincun import wire
from tests.vectors.wirecases import TOPIC, payload_bytes

REPO = Path(__file__).resolve().parents[2]
VECTORS = REPO / "tests" / "vectors"


def _vector_lines() -> tuple[list[str], list[str]]:
    lines, want = [], []
    for name in ("payloads.json", "wire.json"):
        for c in json.loads((VECTORS / name).read_text())["cases"]:
            line = {"topic": TOPIC.format(c["kind"])}
            line.update({k: c[k] for k in ("payload", "payload_b64") if k in c})
            lines.append(json.dumps(line))
            want.append("ok" if c["valid"] else c["error"])
    for c in json.loads((VECTORS / "fwupdate.json").read_text())["payloads"]:
        lines.append(json.dumps({"topic": TOPIC.format(c["kind"]), "payload": c["payload"]}))
        want.append("ok" if c["valid"] else c["error"])
    for c in json.loads((VECTORS / "topics.json").read_text())["cases"]:
        lines.append(json.dumps({"topic": c["topic"], "payload": '{"v":1,"boot":"5f0c3a9e","seq":1}'}))
        want.append(c.get("error") or ("ok" if c["kind"] == "eack" else "bad_field"))
    return lines, want


def _run(stdin: str) -> subprocess.CompletedProcess:
    env = dict(os.environ, PYTHONPATH=str(REPO), PATH=f"{Path(sys.executable).parent}:{os.environ['PATH']}")
    return subprocess.run([sys.executable, "-m", "jincun", "wire", "verdicts"], input=stdin, capture_output=True,
                          text=True, timeout=300, env=env, cwd=REPO, check=False)


def test_every_vector_gets_the_same_verdict_from_every_side():
    lines, want = _vector_lines()
    out = _run("\n".join(lines) + "\n")
    assert out.returncode == 0, out.stderr
    got = [json.loads(x) for x in out.stdout.splitlines()]
    assert len(got) == len(want) > 500
    wrong = [(line, v, w) for line, v, w in zip(lines, got, want)
             if {s for s in v.values() if s != wire.NOT_JUDGED} != {w}]
    assert wrong == []
    assert all(set(v) == {"firmware", "gateway", "cloud"} for v in got)


def test_the_payloads_the_sides_used_to_disagree_on():
    stamp = '"v":1,"boot":"5f0c3a9e","ts":1764355260,"mono":'
    cases = [
        ("evt", "{" + stamp + str(2**41) + ',"seq":1,"type":"door","c":1,"open":true}', "ok"),
        ("tele", "{" + stamp + '1,"heap":-1}', "bad_field"),
        ("birth", "{" + stamp + '1,"fw":"0.1.0","seq":0,"comps":[{"n":1,"size":"S","st":"empty","door":"closed",'
                  '"occ":false}]}', "ok"),
        ("evt", "{" + stamp + '1,"seq":1,"type":"door","c":1,"open":true,"note":"\\ud800"}', "bad_field"),
        ("tele", "{" + stamp + '1,"reset":"\\ud800"}', "bad_field"),
    ]
    out = _run("".join(json.dumps({"topic": TOPIC.format(k), "payload": p}) + "\n" for k, p, _ in cases))
    assert [json.loads(x) for x in out.stdout.splitlines()] == [
        {"firmware": w, "gateway": w, "cloud": w} for _, _, w in cases]


def test_raw_bytes_and_bad_lines():
    raw = [b'{"v":1,"boot":"5f0c3a9e","seq":1}', b'{"v":1,"boot":"\xff","seq":1}']
    lines = [json.dumps({"topic": TOPIC.format("eack"), "payload_b64": base64.b64encode(r).decode()}) for r in raw]
    out = _run("\n".join(lines) + "\n\n" + '{"topic": 5}\n')
    got = [json.loads(x) for x in out.stdout.splitlines()]
    assert got[:2] == [{"firmware": "ok", "gateway": "ok", "cloud": "-"},
                       {"firmware": "not_json", "gateway": "not_json", "cloud": "-"}]
    assert "error" in got[2] and out.returncode == 2


@pytest.fixture(scope="module")
def firmware():
    with wire.Firmware() as fw:
        yield fw


@settings(max_examples=2500, deadline=None, suppress_health_check=[HealthCheck.too_slow,
                                                                   HealthCheck.function_scoped_fixture])
@given(case=payload_bytes())
def test_generated_payloads_get_unanimous_verdicts(firmware, case):
    kind, data = case
    topic = TOPIC.format(kind)
    v = {"firmware": firmware.verdict(topic, data), "gateway": wire.gateway_verdict(topic, data),
         "cloud": wire.cloud_verdict(topic, data)}
    assert wire.unanimous(v), (kind, data, v)
