"""dassl.errors: user errors are their builtin types too, and keep a clean message across a DataLoader worker."""

import pytest
from torch._utils import ExceptionWrapper

from dassl.errors import (
    CheckpointError,
    ConfigError,
    DownloadError,
    MissingFileError,
    RegistrationError,
    UnknownNameError,
    UnreadableImageError,
    UserError,
    user_message,
)

BUILTINS = {ConfigError: (ValueError,), UnknownNameError: (KeyError, ValueError),
            MissingFileError: (FileNotFoundError,), DownloadError: (RuntimeError,), CheckpointError: (RuntimeError,),
            UnreadableImageError: (OSError,), RegistrationError: (ImportError,)}


@pytest.mark.parametrize("cls", list(BUILTINS))
def test_each_kind_is_a_user_error_and_its_builtin_type(cls):
    error = cls("what was expected, what was found, what to do")
    assert isinstance(error, UserError) and all(isinstance(error, builtin) for builtin in BUILTINS[cls])
    assert str(error) == "what was expected, what was found, what to do"  # KeyError would quote it


def reraised_from_worker(error):
    """``error`` as torch's DataLoader re-raises it in the main process."""
    try:
        raise error
    except type(error):
        wrapper = ExceptionWrapper(where="in DataLoader worker process 1")
    with pytest.raises(type(error)) as caught:
        wrapper.reraise()
    return caught.value


def test_user_message_drops_the_worker_traceback():
    message = 'Cannot read image "/data/toy/images/0_red_circle/003.png" (UnidentifiedImageError: ...).\nReplace it.'
    error = reraised_from_worker(UnreadableImageError(message))
    assert "Traceback" in str(error) and "worker process 1" in str(error)
    assert user_message(error) == message
    assert user_message(UnreadableImageError(message)) == message  # raised in this process: unchanged
