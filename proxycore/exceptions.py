"""Errors with messages meant for users (one clear line, no traceback)."""


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
