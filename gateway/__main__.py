"""python -m gateway station.json [--write-broker DIR]"""

import argparse
import sys

from .app import run_gateway
from .broker import write_broker_config
from .config import load_config
from .errors import ConfigError, GatewayError


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m gateway", description="jincun station gateway")
    ap.add_argument("config", help="station.json")
    ap.add_argument("--write-broker", metavar="DIR", help="write the station's Mosquitto config into DIR and exit")
    args = ap.parse_args(argv)
    try:
        if args.write_broker:
            print(write_broker_config(load_config(args.config), args.write_broker))
            return 0
        run_gateway(args.config)
    except ConfigError as exc:
        print(exc, file=sys.stderr)
        return 2
    except GatewayError as exc:
        print(f"gateway stopped: {exc}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
