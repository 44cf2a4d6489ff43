"""Child processes of the simulator, the benchmarks and the tests: each one stopped for sure."""

from __future__ import annotations

import signal
import subprocess


def stop_process(proc: subprocess.Popen | None, timeout: float = 15.0, sig: int = signal.SIGTERM) -> None:
    """Send `sig` (SIGTERM: a clean stop) and wait `timeout` s; SIGKILL if it is still running. Always reaped."""
    if proc is None or proc.poll() is not None:
        return
    proc.send_signal(sig)
    try:
        proc.wait(timeout)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()
