"""The yacs default tree (``get_cfg_default``) and ``clean_cfg``."""

from .defaults import _C as cfg_default


def get_cfg_default():
    """A fresh, mutable copy of the default config tree."""
    return cfg_default.clone()


def clean_cfg(cfg, trainer):
    """Remove every ``cfg.TRAINER`` child except ``NAME`` and ``trainer.upper()`` (in place)."""
    keep = {"NAME", trainer.upper()}
    for key in list(cfg.TRAINER.keys()):
        if key not in keep:
            cfg.TRAINER.pop(key)


__all__ = ["get_cfg_default", "clean_cfg", "cfg_default"]
