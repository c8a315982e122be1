"""Errors a user can act on. The CLI prints them as one line and exits 2; nothing else escapes as a traceback."""


class ReplicatorError(Exception):
    """A problem with input, configuration or connectivity, explained in one line."""

    exit_code = 2


class GuardViolation(ReplicatorError):
    """A statement that is not provably read-only was about to be sent to the master."""


class ConfigError(ReplicatorError):
    pass


class ConnectError(ReplicatorError):
    pass
