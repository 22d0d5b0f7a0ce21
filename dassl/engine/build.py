"""``TRAINER_REGISTRY`` and ``build_trainer(cfg)``."""

from dassl.utils import Registry

TRAINER_REGISTRY = Registry("TRAINER")


def build_trainer(cfg):
    """Instantiate the trainer class registered under ``cfg.TRAINER.NAME``."""
    if cfg.VERBOSE:
        print("Loading trainer: {}".format(cfg.TRAINER.NAME))
    return TRAINER_REGISTRY.build(cfg.TRAINER.NAME, "TRAINER.NAME / --trainer", "trainer", "trainers", cfg)
