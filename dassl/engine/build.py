"""``TRAINER_REGISTRY`` and ``build_trainer(cfg)``."""

from dassl.utils import Registry, get_most_similar_str_to_a_from_b

TRAINER_REGISTRY = Registry("TRAINER")


def build_trainer(cfg):
    """Instantiate the trainer class registered under ``cfg.TRAINER.NAME``."""
    avai_trainers = TRAINER_REGISTRY.registered_names()
    if cfg.TRAINER.NAME not in avai_trainers:
        closest = get_most_similar_str_to_a_from_b(cfg.TRAINER.NAME, avai_trainers) if avai_trainers else None
        raise ValueError(
            'Unknown trainer "{}" (TRAINER.NAME / --trainer; do you mean [{}]?). Registered trainers: {}. '
            "A trainer is registered when its module is imported (train.py does `import trainers`).".format(
                cfg.TRAINER.NAME, closest, avai_trainers
            )
        )
    if cfg.VERBOSE:
        print("Loading trainer: {}".format(cfg.TRAINER.NAME))
    return TRAINER_REGISTRY.get(cfg.TRAINER.NAME)(cfg)
