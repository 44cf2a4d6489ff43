"""Locker controller entry point and app-set loader: config.json in the current directory is the flash.

Before the app is imported, the boot record picks the app file set (the factory files, or a set an update
installed), rolls back a set that failed its trial, counts failed boots and decides on safe mode.
This file and boot.py are never replaced by an update.
"""

import asyncio
import json
import sys

REBOOT_EXIT = 75  # the simulator restarts the process on this exit status


def _reboot():
    try:
        import machine
    except ImportError:
        machine = None
    reset = getattr(machine, "reset", None)  # the unix port's machine module has no reset
    if reset is not None:
        reset()
    sys.exit(REBOOT_EXIT)


def _select_set():
    from jc import bootstate
    from jc.const import FW
    st, safe = bootstate.on_boot("", FW)
    path = bootstate.app_path("", st)
    # forget the factory modules so the chosen set's jc package is imported afresh
    for name in list(sys.modules):
        if name == "jc" or name.startswith("jc."):
            del sys.modules[name]
    if path:
        sys.path.insert(0, path)
    return st, safe


def main():
    try:
        with open("config.json") as f:
            cfg = json.load(f)
    except (OSError, ValueError) as e:
        print("config.json unreadable:", e)
        sys.exit(2)
    st, safe = _select_set()
    try:
        from jc.app import App, ConfigError, check_config
        from jc.hal import HalError
    except Exception as e:  # a broken app set must not brick the board: reboot so the loader rolls it back
        print("app set", st["set"] or "factory", "does not load:", repr(e))
        if st["trial"]:
            _reboot()
        raise
    try:
        check_config(cfg)
        from jc.log import log, setup
        setup(cfg.get("log", "info"))
        if "sim" in cfg:
            from jc.hal_sim import SimHal
            hal = SimHal(cfg, log=log)
        else:
            from jc.hal_esp32 import Esp32Hal
            hal = Esp32Hal(cfg, log=log)
        app = App(cfg, hal, boot=st, safe=safe)
    except (ConfigError, HalError) as e:
        # locks stay off (boot.py); maintenance reads this on the serial console
        print("cannot start:", e)
        sys.exit(2)
    try:
        asyncio.run(app.run())
    except Exception as e:  # a crash of a set on trial counts as a failed self-test
        print("app stopped:", repr(e))
        if st["trial"]:
            _reboot()
        raise


main()
