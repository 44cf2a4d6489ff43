"""The firmware's error tree: every error a module raises on purpose derives from JcError."""


class JcError(Exception):
    """Base of all firmware errors."""
