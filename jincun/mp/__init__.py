"""Scripts the jincun tools run under the MicroPython interpreter, with the firmware on its path."""
