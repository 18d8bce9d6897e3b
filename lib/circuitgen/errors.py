"""Errors of the entry points (the command line and the benchmark), below both so neither imports
the other for them."""


class InputError(Exception):
    """A problem with what the user gave; becomes one ``circuitgen: error:`` line and exit 2."""


__all__ = ["InputError"]
