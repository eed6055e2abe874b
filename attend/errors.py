"""The one exception type users see.

Every problem a user can fix (a bad config key, a corpus with mismatched lines,
a corrupt model folder) is raised as `AttendError` with a one-line message that
names the file, line or key and says what to do next. The command line prints
that line and exits non-zero; anything else is a bug and keeps its traceback.
"""


class AttendError(Exception):
    """A user-facing error with a one-line, actionable message."""
