"""User-facing errors.

Every problem caused by the user's input (an option file, a data folder, a checkpoint) is
raised as a subclass of :class:`DGFusionError` with a one-line message that names the file,
key or value and what was expected. The entry points catch these and print ``error: <msg>``
instead of a traceback.
"""


class DGFusionError(Exception):
    """Base class of the errors meant to be shown to a user as one line."""


class ConfigError(DGFusionError):
    """An option file or command-line override is invalid."""


class RegistryError(ConfigError):
    """A ``type:`` name is unknown, or a name was registered twice."""


class DataError(DGFusionError):
    """A dataset folder or image file is missing, unreadable or inconsistent."""


class CheckpointError(DGFusionError):
    """A checkpoint file is unreadable or does not match the network."""


def one_line(exc: BaseException) -> str:
    """The user-facing text of ``exc``.

    An error raised in a DataLoader worker comes back wrapped in a message that holds the
    worker's whole traceback; only its last line (the original message) is kept.
    """
    text = str(exc).strip()
    if 'Original Traceback' in text:
        last = text.splitlines()[-1]
        text = last.split(': ', 1)[1] if ': ' in last and last.split(': ', 1)[0].endswith('Error') else last
    return text


def first_line(exc: BaseException, limit: int = 300) -> str:
    """The first line of ``exc``'s message (at most ``limit`` characters), or its type name
    when the message is empty: the one-line reason of an unexpected exception."""
    text = str(exc).strip()
    return text.splitlines()[0][:limit] if text else type(exc).__name__


class OutputError(DGFusionError):
    """An output location (folder or file) cannot be created or written."""


# One exit-code rule for every entry point (train.py, test.py, scripts/*).
EXIT_OK = 0           # done
EXIT_ITEMS_FAILED = 1  # some items failed; each is named in the output
EXIT_SETUP = 2        # bad arguments, options or setup (one ``error: ...`` line)
EXIT_INTERRUPTED = 130  # interrupted (Ctrl-C / SIGTERM), after saving what could be saved


class RunLockError(DGFusionError):
    """Another live run holds the experiment folder."""


def brief(value: object, limit: int = 200) -> str:
    """``repr(value)`` cut to about ``limit`` characters, for error messages.

    Nested containers are abbreviated level by level (``reprlib``), so even a huge or deeply
    shared structure is summarised without being walked in full.
    """
    import reprlib
    short = reprlib.Repr()
    short.maxlevel, short.maxlist, short.maxtuple, short.maxdict = 3, 8, 8, 8
    short.maxstring = short.maxother = short.maxlong = limit
    text = short.repr(value)
    if len(text) > limit:
        text = text[:limit - 3] + '...'
    return text


class Interrupted(Exception):
    """Ctrl-C after partial results were kept; the message says what was kept and where."""
