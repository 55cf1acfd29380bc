"""Errors that reach the user as one readable line and a non-zero exit."""

EXIT_USAGE = 2  # the exit code of a UserError


class UserError(Exception):
    """Bad input from the user: a wrong config, a missing run folder, an unknown id."""
