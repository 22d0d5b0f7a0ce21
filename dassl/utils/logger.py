"""``setup_logger``: copy everything printed to stdout into <output>/log.txt."""

import os
import os.path as osp
import sys
import time

from .dist import is_main_process
from .tools import mkdir_if_missing

__all__ = ["Logger", "setup_logger"]


class Logger:
    """A stdout tee: writes go to the console and, when ``fpath`` is given, to a file."""

    def __init__(self, fpath=None, console=None):
        self.console = console if console is not None else sys.stdout
        self.file = None
        if fpath is not None:
            parent = osp.dirname(fpath)
            if parent:
                mkdir_if_missing(parent)
            self.file = open(fpath, "w")

    def write(self, msg):
        self.console.write(msg)
        if self.file is not None:
            self.file.write(msg)

    def flush(self):
        self.console.flush()
        if self.file is not None:
            self.file.flush()
            os.fsync(self.file.fileno())

    def close(self):
        # Only our file: closing the console would break every later print.
        if self.file is not None and not self.file.closed:
            self.file.close()

    def isatty(self):
        return False  # the tee is not a terminal: keep progress bars plain

    def fileno(self):
        return self.console.fileno()

    @property
    def encoding(self):
        return getattr(self.console, "encoding", "utf-8")

    def __enter__(self):
        return self

    def __exit__(self, *args):
        self.close()


def setup_logger(output=None):
    """Tee stdout into ``<output>/log.txt`` (or ``output`` itself if it ends in .txt/.log).

    An existing log is never overwritten: the new one gets a ``-%Y-%m-%d-%H-%M-%S`` suffix.
    Under torch.distributed only rank 0 writes a file.
    """
    if output is None:
        return
    if output.endswith(".txt") or output.endswith(".log"):
        fpath = output
    else:
        fpath = osp.join(output, "log.txt")
    if osp.exists(fpath):
        fpath += time.strftime("-%Y-%m-%d-%H-%M-%S")
    console = sys.stdout
    if isinstance(console, Logger):
        console.close()
        console = console.console
    sys.stdout = Logger(fpath if is_main_process() else None, console=console)
