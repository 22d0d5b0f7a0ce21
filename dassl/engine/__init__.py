"""Trainers: the registry, ``build_trainer`` and the base classes user trainers extend.

The names are imported on first use (PEP 562), so ``python -m dassl.engine.run_record`` (the
launchers' "is this run finished?") does not import torch.
"""

__all__ = ["TRAINER_REGISTRY", "build_trainer", "TrainerBase", "SimpleTrainer", "TrainerX", "TrainerXU",
           "SimpleNet"]

_FROM = {"TRAINER_REGISTRY": "build", "build_trainer": "build", "TrainerBase": "trainer", "SimpleTrainer": "trainer",
         "TrainerX": "trainer", "TrainerXU": "trainer", "SimpleNet": "trainer"}


def __getattr__(name):
    if name not in _FROM:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    import importlib

    value = getattr(importlib.import_module(f"{__name__}.{_FROM[name]}"), name)
    globals()[name] = value
    return value


def __dir__():
    return sorted(list(globals()) + __all__)
