"""Gateway fixtures (defined in gwkit so test modules can import its helpers by name)."""

import sys
from pathlib import Path

# the repo root must win over this folder's own name ("gateway") when pytest runs without `-m`
_ROOT = str(Path(__file__).resolve().parents[2])
if _ROOT not in sys.path[:1]:
    sys.path.insert(0, _ROOT)

from gwkit import gateway, lockers, station  # noqa: E402,F401
