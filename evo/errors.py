"""Errors that reach the user as one readable line and a non-zero exit."""

EXIT_USAGE = 2  # the exit code of a UserError
EXIT_HOST = 74  # the exit code of a HostError (sysexits' EX_IOERR)


class UserError(Exception):
    """Bad input from the user: a wrong config, a missing run folder, an unknown id."""


class HostError(Exception):
    """The machine, not the input and not a candidate, stopped the work: the run folder's
    filesystem is full or read-only, the sandbox's temporary folder cannot be used. What
    was committed is kept, and the run resumes once the cause is gone."""
