"""Utilities re-exported as in Dassl: ``from dassl.utils import setup_logger, ...``.

The user errors live in ``dassl/errors.py`` (no imports, so torch-free modules can raise them)
and are re-exported here: ``from dassl.utils import ConfigError``.
"""

from ..errors import *  # noqa: F401,F403
from .dist import *  # noqa: F401,F403
from .logger import *  # noqa: F401,F403
from .meters import *  # noqa: F401,F403
from .registry import *  # noqa: F401,F403
from .tools import *  # noqa: F401,F403
from .torchtools import *  # noqa: F401,F403
