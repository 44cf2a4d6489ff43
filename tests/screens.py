"""Where browser tests keep their screenshots for a reviewer: var/screenshots/ (or $JINCUN_SCREENSHOTS).
The run prints the folder at the end (tests/conftest.py) when a test saved pictures in it."""

from __future__ import annotations

import os
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
SCREENSHOTS = Path(os.environ.get("JINCUN_SCREENSHOTS") or REPO / "var" / "screenshots").resolve()
# a viewport per width the pages are looked at on: a phone and a desktop
PHONE = {"width": 390, "height": 844}
DESKTOP = {"width": 1280, "height": 800}
FITS = "() => [document.documentElement.scrollWidth, window.innerWidth]"


def screenshot_path(name: str) -> Path:
    """The file for one picture (the folder is made on first use)."""
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    return SCREENSHOTS / f"{name}.png"
