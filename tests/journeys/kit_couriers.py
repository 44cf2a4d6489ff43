"""What the courier journeys share: the county admin's `jincun cloud` commands, and a courier at the station
terminal (login, deposit through the page's own calls, the parcel put in and the door closed)."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import httpx

from simulator.stack import Stack, StackError, _door


def jincun_cloud(database_url: str, *args: str, stdin: str = "") -> tuple[int, dict | None, str]:
    """Run `jincun cloud ARGS` as the county admin would, on the cloud's database: (status, last JSON line, stderr)."""
    env = dict(os.environ, JINCUN_DATABASE_URL=database_url, USER="county-admin")
    done = subprocess.run([sys.executable, "-m", "jincun", "cloud", *args], input=stdin, capture_output=True,
                          text=True, env=env, timeout=120)
    lines = done.stdout.strip().splitlines()
    return done.returncode, json.loads(lines[-1]) if lines and done.returncode == 0 else None, done.stderr


def terminal_users(stack: Stack) -> dict[str, dict]:
    """The names the terminal page offers at login, by terminal id."""
    info = stack.http.get(f"{stack.gateway_url}/api/v1/terminal/info").json()
    return {u["id"]: u for u in info["users"]}


def terminal_login(stack: Stack, user: str, pin: str) -> httpx.Response:
    """The terminal page's login call."""
    return stack.http.post(f"{stack.gateway_url}/api/v1/terminal/login", json={"user": user, "pin": pin})


def terminal_deposit(stack: Stack, token: str, *, waybill: str, phone: str, size: str = "S") -> httpx.Response:
    """The terminal page's deposit call for a logged-in courier (the recipient agreed on the phone)."""
    return stack.http.post(f"{stack.gateway_url}/api/v1/terminal/deposit", headers={"Authorization": f"Bearer {token}"},
                           json={"waybill": waybill, "phone": phone, "size": size, "consent_asked": True})


def keypad_booking(stack: Stack, token: str, parcels: list[dict]) -> httpx.Response:
    """The terminal page's call that books compartments for the locker's keypad and shows the PIN once."""
    return stack.http.post(f"{stack.gateway_url}/api/v1/terminal/keypad", headers={"Authorization": f"Bearer {token}"},
                           json={"parcels": [{**p, "consent_asked": True} for p in parcels]})


def put_parcel_in(stack: Stack, d: dict, *, locker: str | None = None, timeout: float = 15) -> None:
    """The courier puts the parcel into the compartment that opened and closes its door; the gateway confirms."""
    sim = stack.sims[locker or d["locker"]]
    c = d["c"]
    sim.wait_for(lambda s: _door(s, c), timeout)
    sim.set_occupied(c, True)
    sim.close_door(c)
    stack.wait(lambda: _state(stack, d["ref"]) == "deposited", timeout, f"deposit {d['ref']} confirmed")


def _state(stack: Stack, ref: str) -> str | None:
    try:
        return stack._get(f"{stack.gateway_url}/api/v1/deposits/{ref}").get("state")
    except StackError:
        return None
