"""`jincun demo --headless`: the whole station on embedded defaults, run the way a new user runs it."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]


def test_headless_demo_from_another_folder_counts_every_event(tmp_path):
    # run from a folder of its own, so the default workdir (var/ under the current folder) is relative:
    # the firmware and the gateway run in folders of their own and must still find their files
    env = dict(os.environ, PYTHONPATH=str(REPO))
    out = subprocess.run([sys.executable, "-m", "jincun.cli", "demo", "--headless", "--duration", "12"],
                         cwd=tmp_path, env=env, capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stdout[-2000:] + out.stderr[-2000:]
    result = json.loads(out.stdout.strip().splitlines()[-1])
    assert result["deposited"] > 0 and result["picked_up"] == result["deposited"]
    assert result["events_sent"] > 0, "the lockers' ledger was not read"
    assert result["events_in_cloud"] == result["events_sent"]
    assert result["lost"] == 0 and result["duplicates"] == 0
    assert (tmp_path / "var").is_dir()
