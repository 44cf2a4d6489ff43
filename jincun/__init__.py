"""jincun (进村): parcel lockers for village stations -- command-line entry, shared tooling and the rules gateway and cloud share."""

__version__ = "0.1.0"
