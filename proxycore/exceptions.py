"""Errors with messages meant for users (one clear line, no traceback).

The names mitmproxy scripts catch (``MitmproxyException``, ``FlowReadException``...) are
the same classes under mitmproxy's names.
"""


class ProxycoreError(Exception):
    """Base class of proxycore's own errors."""


class OptionsError(ProxycoreError):
    """An option name or value is wrong."""


class CommandError(ProxycoreError):
    """A command is unknown or was called with wrong arguments."""


class AddonHalt(ProxycoreError):
    """Raised by an addon to stop a hook from reaching the addons after it."""


class ScriptError(ProxycoreError):
    """A user script could not be loaded."""


class FlowReadException(ProxycoreError):
    """A flow file could not be read.

    ``offset`` is the byte position in the file where the record that could
    not be read starts (every flow before it was delivered), or None when the
    problem is not tied to a position (e.g. the file cannot be opened).
    """

    def __init__(self, message: str, offset: int | None = None) -> None:
        super().__init__(message)
        self.offset = offset


class ControlException(ProxycoreError):
    """A flow was told to do something its state does not allow (mitmproxy's name)."""


class AddonManagerError(ProxycoreError):
    """An addon could not be added (e.g. a duplicate name)."""


class TypeError(ProxycoreError):  # noqa: A001 - mitmproxy's name for a command type error
    """A command argument has the wrong type."""


#: mitmproxy's base class name for the same errors.
MitmproxyException = ProxycoreError
