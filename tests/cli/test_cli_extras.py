"""The extras table the command line names agrees with pyproject.toml, and the gateway imports only its own."""

from __future__ import annotations

import ast
import importlib.metadata
import re
import tomllib

from jincun.extras import BRINGS, EXTRA_OF
from tests.conftest import REPO

PROJECT = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]
EXTRAS: dict[str, list[str]] = PROJECT["optional-dependencies"]


def _name(req: str) -> str:
    return re.split(r"[\[<>=!~;\s]", req, maxsplit=1)[0].lower().replace("_", "-")


def _dists(extra: str) -> set[str]:
    return {_name(r) for r in EXTRAS[extra]}


def test_each_mapped_module_is_a_distribution_of_its_extra():
    owners = importlib.metadata.packages_distributions()
    wrong = {}
    for module, extra in EXTRA_OF.items():
        dists = {d.lower().replace("_", "-") for d in owners.get(module, [])}
        if not dists & _dists(extra):
            wrong[module] = (extra, sorted(dists))
    assert wrong == {}


def test_every_tier_requirement_is_mapped():
    owners = importlib.metadata.packages_distributions()
    mapped = {d.lower().replace("_", "-") for m in EXTRA_OF for d in owners.get(m, [])}
    for extra in ("gateway", "cloud", "postgres", "sim", "hardware"):
        missing = {d for d in _dists(extra) if d != "jincun"} - mapped
        assert missing == set(), extra


def test_the_extras_brought_by_others_are_those_pyproject_names():
    for extra, brought in BRINGS.items():
        direct = [r for r in EXTRAS[extra] if _name(r) == "jincun"]
        assert direct, extra
        inner = direct[0].split("[", 1)[1].split("]", 1)[0].split(",")
        closure = set(inner) | {x for i in inner for x in BRINGS.get(i, ())}
        assert closure == set(brought), extra


def test_the_base_install_holds_only_the_command():
    assert PROJECT["dependencies"] == []


def _third_party_imports(package: str) -> dict[str, set[str]]:
    """Top-level modules each file of a package imports (anywhere in it, lazily or not), by file."""
    found: dict[str, set[str]] = {}
    for path in sorted((REPO / package).glob("*.py")):
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Import):
                names = [a.name for a in node.names]
            elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                names = [node.module]
            else:
                continue
            for n in names:
                found.setdefault(n.split(".", 1)[0], set()).add(path.name)
    return found


def test_the_gateway_imports_nothing_outside_its_extra():
    outside = {m: files for m, files in _third_party_imports("gateway").items()
               if m in EXTRA_OF and EXTRA_OF[m] != "gateway" or m in ("cloud", "simulator", "bench", "tests")}
    assert outside == {}
