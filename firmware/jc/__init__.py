"""jincun locker controller firmware."""
