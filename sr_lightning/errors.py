"""The errors sr_lightning raises for input a user can fix.

The entry points print a :class:`UserError` (and a ``FileNotFoundError``) as one line,
``error: ...``, exit status 2; every other exception, from our code or from torch,
Lightning and Hydra, keeps its traceback: it is a bug to fix, not an option to change.
"""


class UserError(ValueError):
    """Bad input: a config option, a file or an argument; the message names it and the fix."""


class WeightFormatError(UserError):
    """A weights file is not of the expected format; the message says what was found."""
