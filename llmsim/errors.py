"""User-facing errors: one line, naming the field, file or op at fault.

The CLI prints ``str(error)`` of any :class:`LlmsimError` and exits non-zero
without a traceback; anything else is a bug and keeps its traceback.
"""


class LlmsimError(Exception):
    """Base of every error caused by the user's input rather than by llmsim."""


class ConfigError(LlmsimError):
    """A YAML file, a preset name or a ``--set`` override is invalid."""


class UnsupportedOpError(LlmsimError):
    """A device was asked to run an op it cannot execute."""


class CapacityError(LlmsimError):
    """A model, KV cache or tile does not fit the memory that must hold it."""
