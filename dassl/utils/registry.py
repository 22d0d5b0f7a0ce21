"""Name -> object registries filled by decorators (trainers, datasets, evaluators)."""

from ..errors import UnknownNameError

__all__ = ["Registry"]


class Registry:
    """Example::

        TRAINER_REGISTRY = Registry("TRAINER")

        @TRAINER_REGISTRY.register()
        class CoOp(TrainerX): ...
    """

    def __init__(self, name):
        self._name = name
        self._obj_map = dict()

    def _do_register(self, name, obj, force=False):
        if name in self._obj_map and not force:
            raise KeyError(
                'An object named "{}" was already registered in "{}" registry'.format(name, self._name)
            )
        self._obj_map[name] = obj

    def register(self, obj=None, force=False):
        if obj is None:
            def wrapper(fn_or_class):
                self._do_register(fn_or_class.__name__, fn_or_class, force=force)
                return fn_or_class

            return wrapper
        self._do_register(obj.__name__, obj, force=force)
        return obj

    def get(self, name):
        if name not in self._obj_map:
            raise UnknownNameError(
                'Object name "{}" does not exist in "{}" registry (registered: {})'.format(
                    name, self._name, self.registered_names()
                )
            )
        return self._obj_map[name]

    def build(self, name, config_key, what, package, *args, **kwargs):
        """Instantiate ``name``; an unknown name is an error naming the closest one and all of them.

        config_key / what / package only word the message, e.g. "TRAINER.NAME", "trainer",
        "trainers" (the package whose import registers them).
        """
        from .tools import get_most_similar_str_to_a_from_b

        names = self.registered_names()
        if name not in names:
            closest = get_most_similar_str_to_a_from_b(name, names) if names else None
            raise UnknownNameError(
                'Unknown {what} "{name}" ({key}; do you mean [{closest}]?). Registered {what}s: {names}. '
                "A {what} is registered when its module is imported (train.py does `import {package}`).".format(
                    what=what, name=name, key=config_key, closest=closest, names=names, package=package
                )
            )
        return self._obj_map[name](*args, **kwargs)

    def registered_names(self):
        return list(self._obj_map.keys())

    def __contains__(self, name):
        return name in self._obj_map
