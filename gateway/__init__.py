"""Station gateway: locker link over MQTT, durable outbox, uplink to the county cloud."""

import sys
from pathlib import Path

# The firmware's own modules (package `jc`) drive the RS-485 lock boards wired to the station: the framing
# codec, the compartment state machine and the code vault run once, in the firmware. In a source checkout
# the firmware folder sits beside this package; an installed gateway has `jc` installed beside it
# (pyproject.toml maps it from firmware/jc).
_FIRMWARE = Path(__file__).resolve().parent.parent / "firmware"
if (_FIRMWARE / "jc").is_dir() and str(_FIRMWARE) not in sys.path:
    sys.path.append(str(_FIRMWARE))
