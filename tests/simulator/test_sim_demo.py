"""`jincun demo --headless`: the whole station on embedded defaults, run the way a new user runs it."""

from __future__ import annotations

import json
import os
import queue
import re
import subprocess
import sys
import threading
import time
from pathlib import Path

import httpx

from simulator.net import free_port

REPO = Path(__file__).resolve().parents[2]


def test_headless_demo_from_another_folder_counts_every_event(tmp_path):
    # run from a folder of its own, so the default workdir (var/ under the current folder) is relative:
    # the firmware and the gateway run in folders of their own and must still find their files
    env = dict(os.environ, PYTHONPATH=str(REPO))
    # a port of its own: the documented 8000 may be in use on a developer's machine
    out = subprocess.run([sys.executable, "-m", "jincun.cli", "demo", "--headless", "--duration", "12",
                          "--port", str(free_port())],
                         cwd=tmp_path, env=env, capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stdout[-2000:] + out.stderr[-2000:]
    result = json.loads(out.stdout.strip().splitlines()[-1])
    assert result["deposited"] > 0 and result["picked_up"] == result["deposited"]
    assert result["events_sent"] > 0, "the lockers' ledger was not read"
    assert result["events_in_cloud"] == result["events_sent"]
    assert result["lost"] == 0 and result["duplicates"] == 0
    assert result["tls"] is True, "every locker reached the broker over TLS"
    # every journey the day played ended as its rule says, judged from what the people then saw
    assert {"code_scope", "door_to_door", "cancelled", "returns", "never_delivered"} <= set(result["journeys"])
    assert all(result["journeys"].values()) and result["journeys_ok"] is True, result["journeys"]
    assert (result["returns"], result["door_to_door"], result["cancelled"]) == (1, 1, 1)
    assert result["never_delivered_flagged"] == 1
    # the scripted day plays the carrier journeys: a charge reported on /m and one at the terminal
    assert result["charges_reported"] == 2
    assert result["journeys"]["carrier_identity"] is True and result["journeys"]["extra_charge"] is True
    assert result["journeys"]["outbound"] is True
    assert (tmp_path / "var").is_dir()


class DemoSession:
    """`jincun demo` run as a person runs it, talking to it through its stdin and stdout."""

    def __init__(self, cwd: Path) -> None:
        env = dict(os.environ, PYTHONPATH=str(REPO), PYTHONUNBUFFERED="1")
        self.p = subprocess.Popen([sys.executable, "-m", "jincun.cli", "demo", "--port", "0"], cwd=cwd, env=env,
                                  stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
        self.lines: queue.Queue[str] = queue.Queue()
        self.seen: list[str] = []
        threading.Thread(target=self._pump, daemon=True).start()

    def _pump(self) -> None:
        for line in self.p.stdout:
            self.lines.put(line)
        self.lines.put("")  # the demo ended

    def read_until(self, pattern: str, timeout: float = 120) -> re.Match:
        """Lines printed until one matches pattern; fails with what was printed."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            try:
                line = self.lines.get(timeout=max(0.1, deadline - time.monotonic()))
            except queue.Empty:
                break
            if not line:
                self.lines.put("")
                break
            self.seen.append(line)
            if m := re.search(pattern, line):
                return m
        raise AssertionError(f"demo never printed {pattern!r}:\n" + "".join(self.seen[-40:]))

    def say(self, command: str) -> None:
        self.p.stdin.write(command + "\n")
        self.p.stdin.flush()

    def close(self) -> int:
        if self.p.poll() is None:
            try:
                self.say("quit")
                return self.p.wait(60)
            except (BrokenPipeError, subprocess.TimeoutExpired):
                self.p.kill()
        return self.p.wait(10)


def test_every_login_the_demo_prints_opens_its_page(tmp_path):
    demo = DemoSession(tmp_path)
    try:
        demo.read_until(r"jincun demo is running", timeout=180)
        demo.read_until(r"commands:", timeout=10)
        text = "".join(demo.seen)
        cloud = re.search(r"county overview\s+(http://127\.0\.0\.1:\d+)/", text).group(1)
        logins = dict(re.findall(r"login: (\S+) / ([^\s)]+)", text))
        pages = {u: url for url, u in re.findall(r"(https?://\S+)\s+login: (\S+) /", text)}
        terminal = re.search(r"(http://127\.0\.0\.1:\d+)/terminal\s", text).group(1)
        pins = dict(re.findall(r"/terminal\s+.*?\(([a-z0-9-]+)\) PIN: (\d+)", text))
        # one account per role: county office, maintenance, station agent, a courier of each of two carriers
        assert {"county", "maint", "agent", "courier-ems", "courier-sf"} <= set(logins), text
        assert len(pins) == 3 and all(len(p) >= 6 for p in pins.values()), pins
        assert f"{cloud}/m" in text and f"{cloud}/stats" in text and f"{cloud}/ops" in text

        with httpx.Client(timeout=30) as http:  # without a login the staff pages ask for one
            for page in ("/ops", "/stats"):
                r = http.get(f"{cloud}{page}", follow_redirects=False)
                assert r.status_code == 303 and r.headers["location"].startswith("/login"), (page, r.status_code)
        for user, password in logins.items():
            with httpx.Client(timeout=30) as http:  # a browser of its own per person
                r = http.post(f"{cloud}/login", data={"username": user, "password": password},
                              follow_redirects=False)
                assert r.status_code == 303, (user, r.status_code, r.text[:300])
                me = http.get(f"{cloud}/api/v1/auth/me")
                assert me.status_code == 200 and me.json()["name"] == user, me.text
                if user in pages:
                    # the page printed beside the login opens for it, not the login form
                    page = http.get(pages[user], follow_redirects=False)
                    assert page.status_code == 200 and 'name="password"' not in page.text, (user, page.status_code)
        with httpx.Client(timeout=30) as http:
            assert http.get(f"{cloud}/").status_code == 200
            roles = {}
            for user, pin in pins.items():
                r = http.post(f"{terminal}/api/v1/terminal/login", json={"user": user, "pin": pin})
                assert r.status_code == 200, (pin, r.text)
                roles[r.json()["user"]] = (r.json()["role"], r.json()["carrier"])
            assert roles == {"agent": ("agent", ""), "courier-ems": ("courier", "EMS"),
                             "courier-sf": ("courier", "SF")}
            assert http.get(f"{terminal}/terminal").status_code == 200

        # a courier deposits at the terminal; the door opens, and the person puts the parcel in and shuts it
        courier_pin = pins["courier-ems"]
        demo.say(f"terminal {courier_pin} 13800002222 S")
        c = demo.read_until(r"door open: locker \S+ compartment (\d+)", timeout=60).group(1)
        demo.say(f"shut {c}")
        demo.read_until(rf"存件完成 compartment {c} holds the parcel", timeout=30)
        agent_pin = pins["agent"]
        demo.say(f"agent {agent_pin}")
        demo.read_until(r"JCTERM\d+", timeout=30)
        code = None
        deadline = time.monotonic() + 90
        while code is None:  # the SMS goes out once the deposit reached the cloud: look again, as a person would
            demo.say("sms 13800002222")
            try:
                code = demo.read_until(r"13800002222: .*?取件码\s*(\d{6})", timeout=3).group(1)
            except AssertionError:
                assert time.monotonic() < deadline, "".join(demo.seen[-40:])
        demo.say(f"keys {code}#")
        assert demo.read_until(r"已开门 open: \[(\d+)\]", timeout=30).group(1) == c
        demo.say(f"take {c}")
        demo.read_until(rf"取件完成 compartment {c}", timeout=30)
        # maintenance opens a compartment from the cloud with the printed login, giving a reason
        demo.say("remote 12 门卡住了")
        assert re.fullmatch(r"k-[0-9a-f]{16}", demo.read_until(r"remote open (\S+): compartment 12 is open",
                                                               timeout=60).group(1))
        demo.say("take 12")
        demo.read_until(r"取件完成 compartment 12", timeout=30)
    finally:
        rc = demo.close()
    assert rc == 0, "".join(demo.seen[-40:])
