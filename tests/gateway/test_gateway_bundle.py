"""`jincun gateway bundle`: the wheelhouse a Pi with no package index installs the gateway from."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import tomllib

from jincun.bundle import platform_tags
from tests.conftest import REPO


def _jincun(*args: str, cwd=REPO) -> subprocess.CompletedProcess:
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    return subprocess.run([sys.executable, "-m", "jincun", *args], capture_output=True, text=True, env=env,
                          cwd=cwd, timeout=300)


def test_the_dry_run_lists_the_gateway_extra_for_each_pi_cpu(tmp_path):
    out = _jincun("gateway", "bundle", "--dry-run", "--out", str(tmp_path / "wh"))
    assert out.returncode == 0, out.stderr
    p = json.loads(out.stdout.strip().splitlines()[-1])
    want = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]["optional-dependencies"]["gateway"]
    assert p["requires"] == want and p["python"] == "3.11"
    assert set(p["platforms"]) == {"aarch64", "armv7l"}
    for cpu, tags in p["platforms"].items():
        assert "manylinux2014_" + cpu in tags and "manylinux_2_36_" + cpu in tags and "linux_" + cpu in tags
        assert all(t.endswith(cpu) for t in tags)  # never a wheel for the machine that builds the bundle
        [download] = [s for s in p["steps"] if f" -d {tmp_path / 'wh' / cpu} " in s]
        assert "--only-binary=:all:" in download and "--python-version 3.11" in download
    assert not (tmp_path / "wh").exists()  # a plan fetches and writes nothing


def test_an_unknown_cpu_is_refused_in_one_line(tmp_path):
    out = _jincun("gateway", "bundle", "--cpu", "x86_64", "--out", str(tmp_path / "wh"))
    assert out.returncode == 2 and "Traceback" not in out.stderr
    assert "invalid choice" in out.stderr


def test_an_aarch64_bundle_installs_with_no_index(tmp_path):
    """A real bundle for the 64-bit Pi (about 40 s here: the wheels come from PyPI), then pip resolves
    `jincun[gateway]` for that Pi from the wheelhouse alone, as install.sh does."""
    wh = tmp_path / "wh"
    out = _jincun("gateway", "bundle", "--cpu", "aarch64", "--out", str(wh))
    assert out.returncode == 0, out.stderr
    manifest = json.loads((wh / "manifest.json").read_text())
    got = manifest["platforms"]["aarch64"]
    assert got["no_wheel"] == []
    wheels = got["wheels"]
    assert manifest["project_wheel"] in wheels
    names = {re.split(r"-", w, maxsplit=1)[0].lower() for w in wheels}
    for pin in manifest["pins"]:
        assert pin.split("==")[0].lower().replace("-", "_").replace(".", "_") in names, pin
    for w in wheels:
        tag = w[:-4].rsplit("-", 1)[1]
        assert tag == "any" or tag.endswith("aarch64"), w
    target = tmp_path / "target"
    plat = [a for t in platform_tags("aarch64") for a in ("--platform", t)]
    res = subprocess.run([sys.executable, "-m", "pip", "install", "--dry-run", "--no-index", "--find-links",
                          str(wh / "aarch64"), "--only-binary=:all:", "--python-version", "3.11",
                          "--implementation", "cp", *plat, "--target", str(target), "--report", "-", "--quiet",
                          "jincun[gateway]"], capture_output=True, text=True, timeout=120,
                         env={**os.environ, "PIP_FIND_LINKS": "", "PIP_CONFIG_FILE": os.devnull})
    assert res.returncode == 0, res.stderr
    installed = {i["metadata"]["name"].lower() for i in json.loads(res.stdout)["install"]}
    assert {"jincun", "fastapi", "uvicorn", "paho-mqtt", "pyserial", "orjson"} <= installed
    assert not installed & {"sqlalchemy", "alembic", "matplotlib", "influxdb-client", "playwright"}


def test_an_sdist_with_sources_for_a_compiler_is_not_built_for_the_pi(tmp_path):
    """A wheel built here from C (or Rust, Cython) sources would be for this machine, not the Pi: such a
    distribution is listed as having no wheel instead."""
    import io
    import tarfile
    import zipfile

    from jincun.bundle import _compiled

    def sdist(name: str, files: dict[str, bytes]):
        path = tmp_path / name
        if name.endswith(".zip"):
            with zipfile.ZipFile(path, "w") as z:
                for n, data in files.items():
                    z.writestr(n, data)
        else:
            with tarfile.open(path, "w:gz") as t:
                for n, data in files.items():
                    info = tarfile.TarInfo(n)
                    info.size = len(data)
                    t.addfile(info, io.BytesIO(data))
        return path

    pure = {"pkg-1.0/setup.py": b"", "pkg-1.0/pkg/__init__.py": b""}
    assert not _compiled(sdist("pure-1.0.tar.gz", pure))
    assert not _compiled(sdist("pure-1.0.zip", pure))
    assert _compiled(sdist("cext-1.0.tar.gz", {**pure, "pkg-1.0/src/_speed.c": b"int x;"}))
    assert _compiled(sdist("rust-1.0.tar.gz", {**pure, "pkg-1.0/src/lib.rs": b"fn f() {}"}))
