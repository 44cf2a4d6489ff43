"""Locker controller entry point: config.json in the current directory is the flash."""

import asyncio
import json
import sys


def main():
    try:
        with open("config.json") as f:
            cfg = json.load(f)
    except (OSError, ValueError) as e:
        print("config.json unreadable:", e)
        sys.exit(2)
    from jc.app import App, ConfigError, check_config
    from jc.hal import HalError
    try:
        check_config(cfg)
        if "sim" in cfg:
            from jc.hal_sim import SimHal
            hal = SimHal(cfg, log=print)
        else:
            from jc.hal_esp32 import Esp32Hal
            hal = Esp32Hal(cfg, log=print)
        app = App(cfg, hal)
    except (ConfigError, HalError) as e:
        # locks stay off (boot.py); maintenance reads this on the serial console
        print("cannot start:", e)
        sys.exit(2)
    asyncio.run(app.run())


main()
