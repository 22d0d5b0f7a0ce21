"""The methods: one module per method, each registering its trainer(s) in dassl's TRAINER_REGISTRY.

``import trainers`` imports nothing else, so ``import trainers.prompt_config`` (numpy only) stays
light. ``register_all()`` (train.py calls it) imports every method module, so a new file registers
itself with no edit here; each module is imported on its own, so one broken file does not hide the
other methods. ``check_registered(name)`` then turns a missing trainer into an error that names the
modules that failed to import and why.
"""
import importlib
import pkgutil
import traceback
import warnings

# Shared pieces and light helpers: they register no trainer, and the methods import what they use.
HELPER_MODULES = ("base", "common", "deep_prompts", "heads", "model", "options", "prompt_config", "search_data",
                  "zeroshot_text")

_failures = {}  # module name -> formatted exception, from the last register_all()


def import_modules(package, path, skip=()):
    """Import every module of ``package`` (alphabetical; not ``_private`` ones nor those in ``skip``),
    each on its own. Returns {module name: formatted exception} of those that failed, and warns."""
    failures = {}
    for name in sorted(info.name for info in pkgutil.iter_modules(path)):
        if name.startswith("_") or name in skip:
            continue
        module = f"{package}.{name}"
        try:
            importlib.import_module(module)
        except Exception as err:
            failures[module] = traceback.format_exc()
            warnings.warn(f"{module} could not be imported ({type(err).__name__}: {err}); what it registers is "
                          f"missing.", stacklevel=2)
    return failures


def missing_error(what, name, registered, failures):
    """The error for an unregistered ``name`` when some modules failed to import (``failures``)."""
    from dassl.errors import RegistrationError  # here: `import trainers` imports nothing

    details = "\n".join(f"--- {module}:\n{error.rstrip()}" for module, error in failures.items())
    return RegistrationError(
        f'{what} "{name}" is not registered (registered: {sorted(registered)}), and {len(failures)} module(s) '
        f"failed to import, so what they define is missing: {', '.join(failures)}. Fix the error below and "
        f"run again.\n{details}"
    )


def register_all():
    """Import every method module so each registers its trainers; returns {module: formatted exception}
    of those that failed (also kept for ``check_registered``). Safe to call again: imported modules
    are cached and failed ones are retried."""
    _failures.clear()
    _failures.update(import_modules(__name__, __path__, skip=HELPER_MODULES))
    return dict(_failures)


def check_registered(name):
    """Raise RegistrationError (an ImportError) when trainer ``name`` is not registered and a method
    module failed to import.

    Does nothing when ``name`` is registered or every module imported: then ``build_trainer``'s
    own error (closest name, every registered name) is the right one.
    """
    if not _failures:
        return
    from dassl.engine import TRAINER_REGISTRY

    if name not in TRAINER_REGISTRY:
        raise missing_error("Trainer", name, TRAINER_REGISTRY.registered_names(), _failures)
