"""Runs the real locker firmware under the MicroPython unix port against simulated hardware."""
