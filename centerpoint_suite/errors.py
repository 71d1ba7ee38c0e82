"""User-facing errors: the CLI prints their message (which names the file/line/option) without a traceback."""


class UserError(Exception):
    """Bad input from the user: a missing file, a malformed annotation, an unknown option value."""


class DataError(UserError):
    """A dataset file is missing or malformed; the message names the file (and line when known)."""


class TrainingError(UserError):
    """Training cannot go on (e.g. a non-finite loss): the message says what to change."""
