"""Firmware tests: the files under mp/ run inside MicroPython (via test_units.py), not under pytest."""

collect_ignore_glob = ["mp/*"]
