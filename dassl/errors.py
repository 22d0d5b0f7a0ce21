"""Errors a person can fix by changing the input; train.py prints only their message.

``UserError`` marks a mistake in the input (the command line, a config, a file it names):
train.py prints ``error: <message>`` and exits with status 2, without a traceback, unless
``--debug`` or ``DPL_DEBUG=1``. Every other exception is a bug and keeps its traceback.

Each subclass also inherits the builtin type such code raised before, so ``except ValueError``
(or ``pytest.raises(FileNotFoundError)``) still catches it:

========================  ==================  =================================================
class                     also a              raised for
========================  ==================  =================================================
ConfigError               ValueError          a config value that is not allowed; a file it names
                                              whose content is unusable or does not fit the model
UnknownNameError          KeyError,           an unknown trainer, dataset, backbone or config key
                          ValueError
MissingFileError          FileNotFoundError   a missing dataset folder, split file, weights file,
                                              alpha file, prompt configuration or checkpoint
DownloadError             RuntimeError        CLIP weights that could not be downloaded or verified
CheckpointError           RuntimeError        a checkpoint that cannot be read or does not fit
UnreadableImageError      OSError             an image file that cannot be opened (path named)
RegistrationError         ImportError         a trainer/dataset missing because its module failed
                                              to import
========================  ==================  =================================================

No imports: ``trainers/prompt_config.py`` (numpy only) and ``clip/`` raise these too.
"""

__all__ = [
    "UserError",
    "ConfigError",
    "UnknownNameError",
    "MissingFileError",
    "DownloadError",
    "CheckpointError",
    "UnreadableImageError",
    "RegistrationError",
    "user_message",
]


class UserError(Exception):
    """A mistake in the input that the person can fix; train.py prints only its message."""


class ConfigError(UserError, ValueError):
    """A config value that is not allowed, or a file it names that cannot be used as it is."""


class UnknownNameError(UserError, KeyError, ValueError):
    """A name that is not known: trainer, dataset, backbone, config key."""

    def __str__(self):
        return Exception.__str__(self)  # KeyError's own would put the message in quotes


class MissingFileError(UserError, FileNotFoundError):
    """An input file or folder that does not exist."""


class DownloadError(UserError, RuntimeError):
    """A file that could not be downloaded, or whose checksum is wrong."""


class CheckpointError(UserError, RuntimeError):
    """A checkpoint that cannot be read or does not fit the model."""


class UnreadableImageError(UserError, OSError):
    """An image file that cannot be opened or decoded."""


class RegistrationError(UserError, ImportError):
    """A requested trainer or dataset is missing because the module defining it failed to import."""


# torch's DataLoader re-raises a worker's exception with its type but with this text as the message:
# "Caught <Name> in DataLoader worker process <n>.\nOriginal Traceback (most recent call last):\n..."
_WORKER_MARK = "Original Traceback (most recent call last):"


def user_message(error):
    """The message of ``error`` for a person: for an exception re-raised from a DataLoader worker,
    the original message without the worker's traceback."""
    text = str(error)
    if not (text.startswith("Caught ") and _WORKER_MARK in text):
        return text
    cls = type(error)
    # the traceback ends with "<module>.<class>: <message>"
    name = cls.__qualname__ if cls.__module__ in ("builtins", "__main__") else f"{cls.__module__}.{cls.__qualname__}"
    head, found, message = text.rpartition(f"\n{name}: ")
    return message.strip() if found else text
