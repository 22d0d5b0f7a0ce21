"""Options are declared beside the code that reads them; the docs are generated or checked from them."""
import glob
import os
import re
import types

import pytest
import yaml

import train
from dassl.config import get_cfg_default
from tools import options_doc
from trainers import options

REPO_ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def test_every_key_the_project_adds_is_declared_with_a_description():
    engine = set(train.all_keys(get_cfg_default()))
    cfg = get_cfg_default()
    train.extend_cfg(cfg)
    added = set(train.all_keys(cfg)) - engine
    declared = options.flat(train.declared_options())
    assert added == {key for key, *_ in declared}
    assert all(description.strip() for _, _, description, _ in declared)
    # each method declares its own section (first declared there; KgCoOp adds its release's W and ALPHA to
    # TRAINER.COOP, where the release reads them)
    modules = {}
    for key, _, _, module in declared:
        modules.setdefault(key.rsplit(".", 1)[0], module)
    assert modules["TRAINER.COOP"] == "trainers.coop"
    assert modules["TRAINER.TRAINERSUBNET"] == "trainers.trainersubnet"


def test_a_key_without_description_or_declared_twice_is_refused():
    bad = types.ModuleType("trainers.bad")
    bad.OPTIONS = {"TRAINER.BAD": {"X": (1, "  ")}}
    with pytest.raises(ValueError, match="TRAINER.BAD.X must be declared as"):
        options.collect([bad])
    bad.OPTIONS = {"TRAINER.BAD": {"X": 1}}
    with pytest.raises(ValueError, match="TRAINER.BAD.X"):
        options.collect([bad])
    twice = types.ModuleType("trainers.twice")
    twice.OPTIONS = {"TRAINER.COOP": {"N_CTX": (4, "again")}}
    with pytest.raises(ValueError, match="declared twice"):
        options.collect(options.project_modules() + [twice])


def test_list_defaults_are_not_shared_between_configs():
    first, second = get_cfg_default(), get_cfg_default()
    train.extend_cfg(first)
    train.extend_cfg(second)
    first.DATASET.IMAGE_FOLDER.CLASSNAMES.append("a:b")
    assert second.DATASET.IMAGE_FOLDER.CLASSNAMES == []


def test_docs_options_page_is_generated_from_the_declarations(capsys):
    assert options_doc.main(["--check"]) == 0, "run python -m tools.options_doc"
    page = open(options_doc.PAGE).read()
    for key, default, description, _ in options.flat(train.declared_options()):
        assert f"| `{key}` | `{default!r}` | {description.replace('|', '/')} |" in page


def test_option_tables_elsewhere_in_docs_agree_with_the_declarations():
    declared = {key: default for key, default, _, _ in options.flat(train.declared_options())}
    row = re.compile(r"^\| `([A-Z][A-Z0-9_.]+)` \| `([^`]*)` \|", re.M)
    checked = 0
    for path in glob.glob(os.path.join(REPO_ROOT, "docs", "*.md")):
        if path == options_doc.PAGE:
            continue
        for key, default in row.findall(open(path).read()):
            if key in declared:
                assert yaml.safe_load(default) == declared[key], f"{os.path.basename(path)}: {key}"
                checked += 1
    assert checked >= 8  # docs/baselines.md's table at least
