"""Fixtures for the attacks: the gateway kit's real broker and gateway, and the cloud as its own process."""

import sys
from pathlib import Path

_TESTS = Path(__file__).resolve().parents[1]
if str(_TESTS / "gateway") not in sys.path:
    sys.path.insert(0, str(_TESTS / "gateway"))
_ROOT = str(_TESTS.parent)
if _ROOT not in sys.path[:1]:
    sys.path.insert(0, _ROOT)

from gwkit import gateway, lockers, station  # noqa: E402,F401
from seckit import cloud_env, cloud_proc  # noqa: E402,F401
