"""The `jincun` command: one entry point for every component."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path


def _print_json(obj: dict) -> None:
    """Print a result so that its last line is one JSON object."""
    print(json.dumps(obj, ensure_ascii=False, sort_keys=False))


def cmd_demo(args: argparse.Namespace) -> int:
    """Run the whole system on embedded defaults."""
    from simulator.demo import run_demo

    return run_demo(headless=args.headless, duration=args.duration, port=args.port, workdir=args.workdir)


def cmd_cloud_serve(args: argparse.Namespace) -> int:
    """Serve the cloud API and pages."""
    from cloud import serve

    serve(args.host, args.port)
    return 0


def cmd_gateway_run(args: argparse.Namespace) -> int:
    """Run a station gateway from its station.json."""
    from gateway.app import run_gateway

    run_gateway(args.config)
    return 0


def cmd_gateway_init(args: argparse.Namespace) -> int:
    """Write the station's Mosquitto config (listener, passwords, ACL, persistence)."""
    from gateway.broker import write_broker_config
    from gateway.config import load_config

    path = write_broker_config(load_config(args.config), Path(args.out))
    _print_json({"mosquitto_conf": str(path)})
    return 0


def cmd_sim_run(args: argparse.Namespace) -> int:
    """Run a simulator scenario; its own options follow the scenario file."""
    from simulator.runner import main as run_scenario_main

    return int(run_scenario_main(args.rest) or 0)


def cmd_firmware_check(args: argparse.Namespace) -> int:
    """Compile every firmware file with mpy-cross and report sizes."""
    from jincun import fwtools

    result = fwtools.check()
    for f in result.get("files", []):
        print(f"{f['mpy_bytes']:>7} B  {f['path']}")
    _print_json({"files": len(result.get("files", [])), "mpy_bytes": result["mpy_bytes"], "errors": result["errors"]})
    return 1 if result["errors"] else 0


def cmd_firmware_provision(args: argparse.Namespace) -> int:
    """Write a per-device firmware config with unique credentials and secret."""
    from jincun import provision

    path = provision.provision_device(
        station=args.station, locker=args.locker, mqtt_host=args.mqtt_host, mqtt_port=args.mqtt_port,
        comps=args.comps, out=Path(args.out), station_config=Path(args.station_config) if args.station_config else None,
        wifi_ssid=args.wifi_ssid, wifi_password=args.wifi_password, lock_board=args.lock_board,
    )
    _print_json({"config": str(path)})
    return 0


def cmd_firmware_deploy(args: argparse.Namespace) -> int:
    """Copy the firmware and a provisioned config to a board with mpremote."""
    from jincun import fwtools

    return fwtools.deploy(port=args.port, config=Path(args.config))


def cmd_hw_check(args: argparse.Namespace) -> int:
    """Regenerate the controller board outputs and check them against the firmware pin map."""
    from jincun import hwtools

    result = hwtools.check()
    _print_json(result)
    keys = ("erc_errors", "pin_mismatches", "strapping_violations", "design_problems")
    bad = any(result.get(k, 1) for k in keys)
    return 1 if bad else 0


def cmd_wire_verdicts(args: argparse.Namespace) -> int:
    """Print the firmware's, gateway's and cloud's verdict on each payload read from stdin (JSON lines)."""
    from jincun import wire

    return wire.run(sys.stdin, sys.stdout)


BENCHES = ("firmware", "gateway", "cloud", "sim")


def cmd_bench(args: argparse.Namespace) -> int:
    """Run one benchmark; its own arguments follow the name."""
    import importlib

    module = importlib.import_module(f"bench.{args.name}")
    return int(module.main(args.rest) or 0)


def build_parser() -> argparse.ArgumentParser:
    """Build the argument parser for every sub-command."""
    p = argparse.ArgumentParser(prog="jincun", description="jincun (进村): village parcel lockers")
    sub = p.add_subparsers(dest="cmd", required=True)

    d = sub.add_parser("demo", help="run the whole system on embedded defaults")
    d.add_argument("--headless", action="store_true", help="run a scripted day without waiting for a person")
    d.add_argument("--duration", type=float, default=60.0, help="seconds the scripted day lasts (headless)")
    d.add_argument("--port", type=int, default=8000, help="port of the cloud's pages")
    d.add_argument("--workdir", default=None, help="folder for the demo's state (default: a fresh one under var/)")
    d.set_defaults(fn=cmd_demo)

    c = sub.add_parser("cloud", help="the county cloud service").add_subparsers(dest="sub", required=True)
    cs = c.add_parser("serve", help="serve the API and pages")
    cs.add_argument("--host", default="127.0.0.1")
    cs.add_argument("--port", type=int, default=8000)
    cs.set_defaults(fn=cmd_cloud_serve)

    g = sub.add_parser("gateway", help="the station gateway").add_subparsers(dest="sub", required=True)
    gr = g.add_parser("run", help="run the gateway")
    gr.add_argument("--config", default="station.json")
    gr.set_defaults(fn=cmd_gateway_run)
    gi = g.add_parser("init", help="write the station's Mosquitto config")
    gi.add_argument("--config", default="station.json")
    gi.add_argument("--out", default="mosquitto")
    gi.set_defaults(fn=cmd_gateway_init)

    s = sub.add_parser("sim", help="the simulator").add_subparsers(dest="sub", required=True)
    sr = s.add_parser("run", help="run a scenario: SCENARIO.yaml [--duration S --runtime micropython|cpython ...]",
                      add_help=False)
    sr.add_argument("rest", nargs="*")
    sr.set_defaults(fn=cmd_sim_run)

    f = sub.add_parser("firmware", help="the locker controller firmware").add_subparsers(dest="sub", required=True)
    f.add_parser("check", help="compile every file with mpy-cross").set_defaults(fn=cmd_firmware_check)
    fp = f.add_parser("provision", help="write a per-device config with unique credentials")
    fp.add_argument("--station", required=True)
    fp.add_argument("--locker", required=True)
    fp.add_argument("--mqtt-host", required=True)
    fp.add_argument("--mqtt-port", type=int, default=1883)
    fp.add_argument("--comps", default="6S,4M,2L", help="compartments per size, e.g. 6S,4M,2L")
    fp.add_argument("--station-config", default=None, help="station.json to add the locker to")
    fp.add_argument("--wifi-ssid", default=None)
    fp.add_argument("--wifi-password", default=None)
    fp.add_argument("--lock-board", default=None, help="RS-485 lock board model (e.g. kr-cu16), needed above 12 compartments")
    fp.add_argument("--out", default="firmware/config.json")
    fp.set_defaults(fn=cmd_firmware_provision)
    fd = f.add_parser("deploy", help="copy firmware and config to a board")
    fd.add_argument("--port", required=True)
    fd.add_argument("--config", default="firmware/config.json")
    fd.set_defaults(fn=cmd_firmware_deploy)

    b = sub.add_parser("bench", help="benchmarks, run by hand; the last line printed is one JSON object")
    b.add_argument("name", choices=BENCHES)
    b.add_argument("rest", nargs=argparse.REMAINDER, help="the benchmark's own options")
    b.set_defaults(fn=cmd_bench)

    w = sub.add_parser("wire", help="the wire contract").add_subparsers(dest="sub", required=True)
    w.add_parser("verdicts", help='each side\'s verdict on JSON lines {"topic", "payload" or "payload_b64"} '
                 "from stdin").set_defaults(fn=cmd_wire_verdicts)

    h = sub.add_parser("hw", help="the controller board").add_subparsers(dest="sub", required=True)
    h.add_parser("check", help="regenerate schematic outputs and check them").set_defaults(fn=cmd_hw_check)
    return p


def main(argv: list[str] | None = None) -> int:
    """Run the command line."""
    argv = sys.argv[1:] if argv is None else list(argv)
    # `sim run` and `bench NAME` hand everything after them, as typed, to their own parsers.
    if argv[:2] == ["sim", "run"]:
        return cmd_sim_run(argparse.Namespace(rest=argv[2:]))
    if argv[:1] == ["bench"] and len(argv) > 1 and argv[1] in BENCHES:
        return cmd_bench(argparse.Namespace(name=argv[1], rest=argv[2:]))
    args = build_parser().parse_args(argv)
    return int(args.fn(args) or 0)


if __name__ == "__main__":
    sys.exit(main())
