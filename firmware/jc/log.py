"""The controller's log: micropython-lib's `logging`, one named logger per part ('app', 'vault', 'mqtt', ...).

Every part takes a `log(part, *words)` callable, so a test or the simulator can capture what it says; `log`
here is the default and sends the words, joined by spaces, to the part's logger at INFO. A line reads
`part words...` on the serial console, as before. The `log` config key sets the level (default "info").
"""

import logging
import sys

LEVELS = {"debug": logging.DEBUG, "info": logging.INFO, "warning": logging.WARNING, "error": logging.ERROR}
FORMAT = "%(name)s %(message)s"


def setup(level="info"):
    """(Re)configure the root logger: one handler on the console at `level`."""
    logging.basicConfig(level=LEVELS[level], format=FORMAT, stream=sys.stdout, force=True)


def log(part, *words):
    logging.getLogger(part).info(" ".join([str(w) for w in words]))


if sys.implementation.name == "micropython":
    setup()  # on CPython (the gateway imports some jc modules) the host process owns its logging
