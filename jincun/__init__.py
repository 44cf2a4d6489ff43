"""jincun (进村): parcel lockers for village stations -- command-line entry, tooling, and rules gateway and cloud share."""

__version__ = "0.1.0"
