"""Errors that wxemu reports to users: each message names the file (or entry) and the problem."""


class WxemuError(Exception):
    """A user-facing error: bad input, bad configuration, unusable store."""


class ConfigError(WxemuError):
    """A configuration file or catalog entry failed validation."""


class InputDataError(WxemuError):
    """An input file is corrupt, incomplete or cannot be mapped onto the canonical convention."""


class IncompleteStoreError(WxemuError):
    """A store was opened that an interrupted (or running) job has not finished writing."""
