"""Importing this package registers every dataset defined in it.

Each module of the package is imported once, in alphabetical order, so a new file
registers itself with no edit here. A module that fails to import fails loudly.
"""

import importlib
import pkgutil

for _module in sorted(info.name for info in pkgutil.iter_modules(__path__)):
    if not _module.startswith("_"):
        importlib.import_module(__name__ + "." + _module)
