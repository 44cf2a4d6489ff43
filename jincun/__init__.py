"""jincun (进村): parcel lockers for village stations -- command-line entry and shared tooling."""

__version__ = "0.1.0"
