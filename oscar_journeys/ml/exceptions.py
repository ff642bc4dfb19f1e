"""Errors the core raises (no Django)."""


class InsufficientDataError(ValueError):
    """The data cannot support this fit (too few customers, no repeat buyers, a single
    class...). The message says what is missing; the nightly chain leaves the model out and
    records the reason."""
