"""What a scenario run shows while it plays and at its end: the live table (or a log line when no terminal),
and the summary printed after the run (`Progress`, mixed into the runner's Play; `summary`).
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING

from rich.console import Console
from rich.live import Live
from rich.table import Table

from simulator.cluster import Cluster, ClusterError
from simulator.ledger import Ledger, LedgerError

if TYPE_CHECKING:
    from simulator.runner import Tally
    from simulator.scenario import Scenario

log = logging.getLogger("jincun.sim")
LOG_EVERY_S = 15.0


class Progress:
    """The live progress of a run; expects the runner's Play attributes (sc, cl, t, ledger, ...)."""

    # what Play (simulator/runner.py) sets in its __init__ and defines, named here for the type checker
    sc: Scenario
    cl: Cluster
    t: Tally
    console: Console
    live: bool
    ledger: Ledger
    ledger_files: dict[str, tuple[str, Path]]
    active: dict[str, int]
    phase: str
    depth: int
    peak_depth: int
    uplinks_down: int

    now_h: Callable[[], float]

    async def _monitor(self) -> None:
        live = Live(self._table(), console=self.console, refresh_per_second=2, transient=False) if self.live else None
        if live:
            live.start()
        last = logged = 0.0
        try:
            while True:
                if time.monotonic() - last > 2:
                    last = time.monotonic()
                    try:
                        gws = await self.cl.gateways_summary()
                        self.depth = sum(g["depth"] for g in gws.values())
                        self.peak_depth = max(self.peak_depth, self.depth)
                        self.uplinks_down = sum(1 for g in gws.values() if not g["link_up"])
                        self.ledger.read_producers(self.ledger_files)
                        await asyncio.to_thread(self.ledger.poll_cloud)
                    except (ClusterError, LedgerError, OSError) as exc:
                        log.warning("progress sample failed: %s", exc)
                if live:
                    live.update(self._table())
                elif time.monotonic() - logged > LOG_EVERY_S:
                    logged = time.monotonic()
                    self.console.log(self._line())
                await asyncio.sleep(0.5)
        finally:
            if live:
                live.update(self._table())
                live.stop()

    def _line(self) -> str:
        h = self.now_h() if hasattr(self, "t0") else self.sc.start_h
        n = self.t.n
        return (f"{int(h % 24):02d}:{int(h * 60 % 60):02d} deposited {n.get('deposits_ok', 0)} collected "
                f"{n.get('pickups_ok', 0)} events {len(self.ledger.produced)}/{len(self.ledger.seen)} in cloud, "
                f"outboxes {self.depth}, uplinks down {self.uplinks_down}, "
                f"faults {','.join(k for k, v in self.active.items() if v) or '-'}")

    def _table(self) -> Table:
        h = self.now_h() if hasattr(self, "t0") else self.sc.start_h
        tb = Table(title=f"{self.sc.name}: day {int(h // 24) + 1} {int(h % 24):02d}:{int(h * 60 % 60):02d}"
                   f"  ({self.phase})", show_header=False)
        n = self.t.n
        alarms = sum(1 for v in self.ledger.produced.values() if v[1] == "alarm")
        rows = [
            ("stations / controllers", f"{len(self.cl.stations)} / {self.cl.n_controllers} ({self.cl.runtime})"),
            ("deposited / collected / door-to-door",
             f"{n.get('deposits_ok', 0)} / {n.get('pickups_ok', 0)} / {n.get('door_to_door', 0)}"),
            ("no room / typos / guesses", f"{n.get('deposits_no_room', 0)} / {n.get('typos', 0)} / "
                                          f"{n.get('codes_guessed', 0)}"),
            ("events produced / in cloud", f"{len(self.ledger.produced)} / {len(self.ledger.seen)}"),
            ("alarms", str(alarms)),
            ("gateway outboxes (peak)", f"{self.depth} ({self.peak_depth})"),
            ("uplinks down", str(self.uplinks_down)),
            ("faults active", ", ".join(k for k, v in self.active.items() if v) or "-"),
        ]
        for k, v in rows:
            tb.add_row(k, v)
        return tb


def summary(res: dict, console: Console) -> None:
    tb = Table(title=f"{res['scenario']}: {'CLEAN' if res['clean'] else 'NOT CLEAN'}")
    tb.add_column("what")
    tb.add_column("count", justify="right")
    for k in ("stations", "controllers", "deposited", "picked_up", "door_to_door", "never_collected", "no_room",
              "outbound", "typos", "codes_guessed", "impersonations_refused", "events_sent", "events_in_cloud",
              "lost", "duplicates", "late", "delayed_by_faults", "unexpected", "stranded_parcels",
              "phantom_parcels", "parcels_inside", "kills", "peak_gateway_outbox",
              "real_seconds"):
        tb.add_row(k, str(res.get(k)))
    console.print(tb)
    for c in res.get("catch_up", []):
        if c["events_held"]:
            console.print(f"catch-up after a {c['outage_s']} s outage at {c['stations']}: {c['events_held']} "
                          f"events held, {c['arrived']} in the cloud, the last {c['catch_up_s']} s after the "
                          f"link returned")
    for p in res.get("stranded", [])[:20]:
        console.print(f"stranded: {p['waybill']} in {p['locker']}/{p['c']}: {p['why']}")
    for p in res.get("phantom", [])[:20]:
        console.print(f"phantom: {p['waybill']} held {p['status']} at {p['locker']}/{p['c']}, physically at "
                      f"{', '.join(p['physically_at']) or 'nowhere'}")
