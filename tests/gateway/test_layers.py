"""The gateway's layering: no import cycle, and the HTTP layer gets narrow services, never the `Gateway`."""

from __future__ import annotations

import dataclasses
import re
from pathlib import Path

import pytest

import gateway
from gateway.services import HttpServices
from gwkit import make_config
from importgraph import cycles, import_graph

GATEWAY = Path(gateway.__file__).resolve().parent


def test_the_cycle_finder_finds_a_type_checking_cycle(tmp_path):
    pkg = tmp_path / "pkg"
    pkg.mkdir()
    (pkg / "a.py").write_text("from typing import TYPE_CHECKING\nif TYPE_CHECKING:\n    from .b import B\n")
    (pkg / "b.py").write_text("def f():\n    from . import a\n")
    (pkg / "c.py").write_text("from .a import x\n")
    assert cycles(import_graph(pkg)) == [["a", "b"]]


def test_no_import_cycle_in_the_gateway():
    assert cycles(import_graph(GATEWAY)) == []


def test_the_http_layer_does_not_import_the_wiring():
    graph = import_graph(GATEWAY)
    for http in ("api", "terminal", "terminal_outbound"):
        assert "app" not in graph[http], f"{http}.py imports app.py"


def _held(fn) -> list:
    """What a route's endpoint holds in its closure, followed through the closures it holds."""
    seen, out, todo = set(), [], [fn]
    while todo:
        f = todo.pop()
        if id(f) in seen:
            continue
        seen.add(id(f))
        for cell in getattr(f, "__closure__", None) or ():
            try:
                value = cell.cell_contents
            except ValueError:
                continue
            out.append(value)
            if callable(value) and hasattr(value, "__closure__"):
                todo.append(value)
    return out


def test_the_handlers_hold_the_services_not_the_gateway(tmp_path):
    """Every HTTP handler reaches the gateway's parts through a frozen HttpServices, never the Gateway."""
    from gateway.app import Gateway

    gw = Gateway(make_config(tmp_path))
    endpoints, todo = [], list(gw.app.routes)
    while todo:
        route = todo.pop()
        if hasattr(route, "endpoint"):
            endpoints.append(route.endpoint)
        # an included router (its routes kept apart by newer FastAPI releases)
        todo += getattr(getattr(route, "original_router", None), "routes", [])
    assert len(endpoints) > 10
    held = [v for fn in endpoints for v in _held(fn)]
    assert not [v for v in held if isinstance(v, Gateway)]
    services = [v for v in held if isinstance(v, HttpServices)]
    assert services and all(s.deposits is gw.deposits and s.outbox is gw.outbox for s in services)
    with pytest.raises(dataclasses.FrozenInstanceError):
        services[0].deposits = None  # type: ignore[misc]


def test_the_http_layer_runs_no_sql():
    """The deposits' SQL lives in deposits.py; the HTTP modules call it."""
    sql = re.compile(r"\b(SELECT|UPDATE|INSERT|DELETE)\b.*\b(FROM|SET|INTO|WHERE)\b|\.execute\(")
    found = [f"{name}:{n}" for name in ("api.py", "terminal.py", "terminal_outbound.py")
             for n, line in enumerate((GATEWAY / name).read_text(encoding="utf-8").splitlines(), 1) if sql.search(line)]
    assert found == []
