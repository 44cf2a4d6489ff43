"""jincun (进村): village parcel lockers -- command-line entry, tooling, and rules gateway and cloud share."""

__version__ = "0.1.0"
