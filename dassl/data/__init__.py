"""Data: datasets, transforms, samplers, loaders and the DataManager.

``DataManager``/``DatasetWrapper`` are imported on first use: they pull in torchvision, which
is slow to import, and ``dassl.data.datasets`` (Datum, DatasetBase) must stay cheap to load.
"""

__all__ = ["DataManager", "DatasetWrapper"]


def __getattr__(name):
    if name in __all__:
        from . import data_manager

        return getattr(data_manager, name)
    raise AttributeError("module {!r} has no attribute {!r}".format(__name__, name))
