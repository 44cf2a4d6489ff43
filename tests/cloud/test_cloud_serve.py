"""`cloud.serve` runs a real uvicorn server configured from JINCUN_* variables."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import httpx
from cloudkit import ADMIN

from simulator.net import free_port, wait_port

REPO = Path(__file__).resolve().parents[2]


def test_serve_from_environment(tmp_path):
    port = free_port()
    env = dict(os.environ, JINCUN_ADMIN_TOKEN=ADMIN, JINCUN_DATABASE_URL=f"sqlite:///{tmp_path}/served.db",
               PYTHONPATH=str(REPO))
    proc = subprocess.Popen([sys.executable, "-c", f"import cloud; cloud.serve('127.0.0.1', {port})"],
                            cwd=tmp_path, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    try:
        wait_port("127.0.0.1", port, timeout=30)
        health = httpx.get(f"http://127.0.0.1:{port}/api/v1/health", timeout=10).json()
        assert health["db"] == "ok" and health["status"] == "ok"
        page = httpx.get(f"http://127.0.0.1:{port}/", timeout=10, headers={"Authorization": f"Bearer {ADMIN}"})
        assert page.status_code == 200 and "站点总览" in page.text
        assert (tmp_path / "served.db").exists()
    finally:
        proc.terminate()
        out, _ = proc.communicate(timeout=15)
    # uvicorn re-raises SIGTERM after its graceful shutdown
    assert proc.returncode in (0, -15), out.decode(errors="replace")
    assert b"Application shutdown complete" in out


def test_serve_refuses_missing_admin_token(tmp_path):
    env = {k: v for k, v in os.environ.items() if not k.startswith("JINCUN_")}
    env["PYTHONPATH"] = str(REPO)
    proc = subprocess.run([sys.executable, "-c", "import cloud; cloud.serve('127.0.0.1', 1)"], cwd=tmp_path,
                          env=env, capture_output=True, text=True, timeout=60)
    assert proc.returncode != 0 and "JINCUN_ADMIN_TOKEN is required" in proc.stderr
