"""Fixtures for the attacks: the gateway kit's real broker and gateway, the cloud kit's app."""

import sys
from pathlib import Path

_TESTS = Path(__file__).resolve().parents[1]
for _sub in ("gateway", "cloud"):
    if str(_TESTS / _sub) not in sys.path:
        sys.path.insert(0, str(_TESTS / _sub))
_ROOT = str(_TESTS.parent)
if _ROOT not in sys.path[:1]:
    sys.path.insert(0, _ROOT)

from gwkit import gateway, lockers, station  # noqa: E402,F401
