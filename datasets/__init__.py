"""Importing this package registers every dataset defined in it.

Each module of the package is imported once, in alphabetical order, so a new file registers
itself with no edit here. Each is imported on its own: a reader that fails to import is recorded
in ``IMPORT_FAILURES`` ({module: formatted exception}) with a warning, and does not hide the
others; ``check_registered(name)`` names those failures when a requested dataset is missing.
The loop mirrors ``trainers.import_modules``, which this package cannot import (a layer above).
"""

import importlib
import pkgutil
import traceback
import warnings

from dassl.errors import RegistrationError

IMPORT_FAILURES = {}

for _module in sorted(info.name for info in pkgutil.iter_modules(__path__)):
    if not _module.startswith("_"):
        try:
            importlib.import_module(__name__ + "." + _module)
        except Exception as _err:
            IMPORT_FAILURES[__name__ + "." + _module] = traceback.format_exc()
            warnings.warn(f"{__name__}.{_module} could not be imported ({type(_err).__name__}: {_err}); "
                          f"its datasets are not registered.")


def check_registered(name):
    """Raise RegistrationError (an ImportError) when a dataset of ``name`` ("A" or "A,B") is not
    registered and a reader failed to import. Does nothing otherwise: then ``build_dataset``'s own
    error is the right one."""
    if not IMPORT_FAILURES:
        return
    from dassl.data.datasets import DATASET_REGISTRY

    registered = DATASET_REGISTRY.registered_names()
    lower = {n.lower() for n in registered}  # names are matched ignoring case, as build_dataset does
    missing = [n.strip() for n in name.split(",") if n.strip() and n.strip().lower() not in lower]
    if missing:
        details = "\n".join(f"--- {module}:\n{error.rstrip()}" for module, error in IMPORT_FAILURES.items())
        raise RegistrationError(
            f"Dataset {', '.join(missing)} is not registered (registered: {sorted(registered)}), and "
            f"{len(IMPORT_FAILURES)} module(s) failed to import, so their datasets are missing: "
            f"{', '.join(IMPORT_FAILURES)}. Fix the error below and run again.\n{details}"
        )
