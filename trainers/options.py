"""Config sections declared next to the code that reads them (nanoGPT's config-beside-model).

A trainer (or dataset) module declares the keys it adds to the config tree, each with its
default and a one-line description:

    OPTIONS = {
        "TRAINER.COOP": {
            "N_CTX": (16, "number of learned context vectors"),
            ...
        },
    }

``train.py: extend_cfg`` collects every declaration (``collect``) and adds it to the config
(``add_options``); ``docs/options.md`` is generated from the same declarations
(``python -m tools.options_doc``), and a test fails when a key has no description or the page is
stale. Engine keys (``dassl/config/defaults.py``) are not declared here. Light: yacs only.
"""
import copy
import sys

from yacs.config import CfgNode as CN


def _node(cfg, dotted):
    node = cfg
    for part in (dotted.split(".") if dotted else []):  # "": the root of the tree
        if part not in node:
            node[part] = CN()
        node = node[part]
        if not isinstance(node, CN):
            raise ValueError(f"config key {dotted!r}: {part!r} is already a value, not a section")
    return node


def check_options(options, origin):
    """Every declaration is {section: {KEY: (default, description)}} with a real description."""
    for section, keys in options.items():
        for key, entry in keys.items():
            if not (isinstance(entry, tuple) and len(entry) == 2 and isinstance(entry[1], str)
                    and entry[1].strip()):
                raise ValueError(
                    f"{origin}: option {section}.{key} must be declared as (default, \"one-line description\"), "
                    f"got {entry!r}"
                )


def collect(modules):
    """[(module name, OPTIONS)] of the modules that declare options, checked, no key twice."""
    seen, declared = {}, []
    for module in modules:
        options = getattr(module, "OPTIONS", None)
        if options is None:
            continue
        check_options(options, module.__name__)
        for section, keys in options.items():
            for key in keys:
                name = f"{section}.{key}" if section else key
                if name in seen:
                    raise ValueError(f"config key {name} is declared twice: in {seen[name]} and {module.__name__}")
                seen[name] = module.__name__
        declared.append((module.__name__, options))
    return declared


def project_modules(packages=("trainers", "datasets")):
    """The imported modules of ``packages`` (imported by registration), in name order."""
    return [module for name, module in sorted(sys.modules.items())
            if module is not None and name.split(".")[0] in packages and "." in name]


def add_options(cfg, options):
    for section, keys in options.items():
        node = _node(cfg, section)
        for key, (default, _) in keys.items():
            node[key] = copy.deepcopy(default)  # no list shared between config trees


def flat(declared):
    """[(dotted key, default, description, module)] of ``collect``'s result."""
    return [(f"{section}.{key}" if section else key, default, description, module)
            for module, options in declared
            for section, keys in options.items()
            for key, (default, description) in keys.items()]
