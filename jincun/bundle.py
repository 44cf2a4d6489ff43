"""`jincun gateway bundle`: a wheelhouse that installs the station gateway on a Pi with no package index.

The project's own wheel and every distribution `jincun[gateway]` needs, pinned to the versions pip resolves
here, downloaded as wheels for each Pi's CPU (Raspberry Pi OS bookworm: 64-bit `aarch64`, 32-bit `armv7l`;
CPython 3.11, glibc 2.36). A distribution with no wheel for a CPU is built from its sdist when it is pure
Python; one that needs a compiler is named in the bundle's manifest, and that CPU's install needs it from
elsewhere (docs/deploy.md). gateway/deploy/install.sh installs from `wheelhouse/$(uname -m)`.
"""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import sys
import tarfile
import tempfile
import zipfile
import tomllib
from dataclasses import dataclass, field
from pathlib import Path

PYTHON_VERSION = "3.11"  # Raspberry Pi OS bookworm's python3
GLIBC_MINOR = (17, 36)  # manylinux_2_17 (manylinux2014) up to bookworm's glibc 2.36
MACHINES = ("aarch64", "armv7l")
EXTRA = "gateway"


class BundleError(Exception):
    """The bundle cannot be built (not a source checkout, an unknown CPU, pip refused)."""


def platform_tags(machine: str) -> list[str]:
    """The wheel platform tags a Pi of this CPU installs, most specific first."""
    if machine not in MACHINES:
        raise BundleError(f"unknown CPU {machine!r}: choose from {', '.join(MACHINES)}")
    lo, hi = GLIBC_MINOR
    return ([f"manylinux_2_{v}_{machine}" for v in range(hi, lo - 1, -1)]
            + [f"manylinux2014_{machine}", f"linux_{machine}"])


def source_root() -> Path:
    """The checkout holding pyproject.toml: the bundle is built from source, not from an installed copy."""
    root = Path(__file__).resolve().parent.parent
    if not (root / "pyproject.toml").is_file():
        raise BundleError(f"no pyproject.toml beside {root / 'jincun'}: run the bundle from a source checkout")
    return root


def requirements(root: Path) -> list[str]:
    """The [gateway] extra's requirements, as pyproject.toml lists them."""
    project = tomllib.loads((root / "pyproject.toml").read_text(encoding="utf-8"))["project"]
    return list(project["optional-dependencies"][EXTRA])


@dataclass
class Plan:
    root: Path
    out: Path
    machines: list[str]
    requires: list[str]
    steps: list[list[str]] = field(default_factory=list)

    def as_dict(self) -> dict:
        return {"source": str(self.root), "out": str(self.out), "python": PYTHON_VERSION, "extra": EXTRA,
                "requires": self.requires, "platforms": {m: platform_tags(m) for m in self.machines},
                "steps": [" ".join(s) for s in self.steps]}


def _pip(*args: str) -> list[str]:
    return [sys.executable, "-m", "pip", *args]


def _download_args(machine: str) -> list[str]:
    args = ["download", "--no-deps", "--only-binary=:all:", "--python-version", PYTHON_VERSION,
            "--implementation", "cp"]
    for tag in platform_tags(machine):
        args += ["--platform", tag]
    return args


def plan(out: Path, machines: list[str] | None = None) -> Plan:
    """What the bundle does, step by step (printed by --dry-run; nothing is fetched)."""
    root = source_root()
    chosen = list(machines or MACHINES)
    for m in chosen:
        platform_tags(m)
    p = Plan(root, out, chosen, requirements(root))
    p.steps.append(_pip("wheel", "--no-deps", "-w", "TMPDIR", str(root)))
    p.steps.append(_pip("install", "--dry-run", "--ignore-installed", "--quiet", "--report", "-",
                        f"{root}[{EXTRA}]"))
    for m in chosen:
        p.steps.append(_pip(*_download_args(m), "-d", str(out / m), "NAME==VERSION ..."))
    p.steps.append("for a pin with no wheel: pip download --no-binary=:all: NAME==VERSION, then pip wheel it "
                   "when it is pure Python".split())
    return p


def _run(cmd: list[str], **kw) -> subprocess.CompletedProcess:
    return subprocess.run(cmd, capture_output=True, text=True, timeout=900, **kw)


def resolve(root: Path) -> list[str]:
    """NAME==VERSION of every distribution `jincun[gateway]` needs (resolved here, for CPython 3.11 on Linux)."""
    res = _run(_pip("install", "--dry-run", "--ignore-installed", "--quiet", "--report", "-", f"{root}[{EXTRA}]"))
    if res.returncode != 0:
        raise BundleError(f"pip could not resolve jincun[{EXTRA}]: {res.stderr.strip().splitlines()[-1:]}")
    report = json.loads(res.stdout)
    pins = []
    for item in report["install"]:
        meta = item["metadata"]
        if meta["name"].lower() != "jincun":
            pins.append(f"{meta['name']}=={meta['version']}")
    return sorted(pins, key=str.lower)


_NO_MATCH = re.compile(r"No matching distribution found for ([A-Za-z0-9_.\-]+)==")


def _fetch_wheels(machine: str, pins: list[str], dest: Path) -> list[str]:
    """Download each pin's wheel for this CPU into dest; return the pins that have none."""
    left = list(pins)
    missing: list[str] = []
    while left:
        res = _run(_pip(*_download_args(machine), "-d", str(dest), *left))
        if res.returncode == 0:
            break
        found = _NO_MATCH.search(res.stderr)
        if not found:
            raise BundleError(f"pip download for {machine} failed: {res.stderr.strip().splitlines()[-1:]}")
        name = found.group(1).lower().replace("_", "-")
        gone = [p for p in left if p.split("==")[0].lower().replace("_", "-") == name]
        if not gone:
            raise BundleError(f"pip download for {machine}: no wheel for {found.group(1)}, not a pin")
        missing += gone
        left = [p for p in left if p not in gone]
    return missing


COMPILED = (".c", ".cc", ".cpp", ".pyx", ".rs", ".f90", ".go")


def _compiled(sdist: Path) -> bool:
    """True when an sdist holds sources for a compiler: its wheel would be for this machine, not the Pi's."""
    if sdist.name.endswith(".zip"):
        with zipfile.ZipFile(sdist) as z:
            names = z.namelist()
    else:
        with tarfile.open(sdist) as t:
            names = t.getnames()
    return any(n.endswith(COMPILED) for n in names)


def _pure_wheel(pin: str, dest: Path, work: Path) -> bool:
    """Build a pure-Python wheel from the pin's sdist into dest; False when it needs a compiler."""
    sdists = work / "sdist"
    built = work / "built"
    built.mkdir(parents=True, exist_ok=True)
    if _run(_pip("download", "--no-deps", "--no-binary=:all:", "-d", str(sdists), pin)).returncode != 0:
        return False
    name = pin.split("==")[0].lower().replace("-", "_")
    sdist = next((s for s in sdists.iterdir() if s.name.lower().replace("-", "_").startswith(name)), None)
    if sdist is None or _compiled(sdist):
        return False
    if _run(_pip("wheel", "--no-deps", "-w", str(built), str(sdist))).returncode != 0:
        return False
    for whl in built.glob("*.whl"):
        if whl.name.lower().replace("-", "_").startswith(name):
            if whl.name.endswith("-none-any.whl"):
                shutil.copy2(whl, dest / whl.name)
                return True
    return False


def _clean_copy(root: Path, dest: Path) -> Path:
    """The files the wheel is made of, copied fresh: setuptools' in-tree build/ may hold deleted modules."""
    dest.mkdir(parents=True)
    for name in ("pyproject.toml", "README.md"):
        shutil.copy2(root / name, dest / name)
    find = tomllib.loads((root / "pyproject.toml").read_text(encoding="utf-8"))["tool"]["setuptools"]["packages"]
    skip = shutil.ignore_patterns("__pycache__", "*.pyc", "*.mpy")
    for pattern in find["find"]["include"]:
        top = pattern.rstrip("*")
        if (root / top).is_dir():  # jc is a link to firmware/jc: copied as a folder
            shutil.copytree(root / top, dest / top, symlinks=False, ignore=skip)
    return dest


def build(out: Path, machines: list[str] | None = None) -> dict:
    """Build the wheelhouse under out/<machine>/ and write out/manifest.json; return the manifest."""
    p = plan(out, machines)
    out.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix="jincun-bundle-") as tmp:
        work = Path(tmp)
        res = _run(_pip("wheel", "--no-deps", "-w", str(work / "project"), str(_clean_copy(p.root, work / "src"))))
        if res.returncode != 0:
            raise BundleError(f"the project's wheel did not build: {res.stderr.strip().splitlines()[-1:]}")
        project_wheel = next((work / "project").glob("jincun-*.whl"))
        pins = resolve(p.root)
        manifest: dict = {"python": PYTHON_VERSION, "extra": EXTRA, "project_wheel": project_wheel.name,
                          "pins": pins, "platforms": {}}
        for machine in p.machines:
            dest = out / machine
            if dest.exists():
                shutil.rmtree(dest)
            dest.mkdir()
            shutil.copy2(project_wheel, dest / project_wheel.name)
            no_binary = _fetch_wheels(machine, pins, dest)
            from_sdist = [pin for pin in no_binary if _pure_wheel(pin, dest, work / machine)]
            manifest["platforms"][machine] = {
                "wheels": sorted(w.name for w in dest.glob("*.whl")),
                "built_from_sdist": from_sdist,
                "no_wheel": [pin for pin in no_binary if pin not in from_sdist],
            }
    (out / "manifest.json").write_text(json.dumps(manifest, indent=1, ensure_ascii=False) + "\n", encoding="utf-8")
    return manifest
