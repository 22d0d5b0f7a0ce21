"""train.py as a program: package registration (robust to a broken module) and command-line errors."""

import importlib
import os
import subprocess
import sys

import pytest

REPO_ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def test_packages_register_every_module():
    import datasets
    import trainers
    from dassl.data.datasets import DATASET_REGISTRY
    from dassl.engine import TRAINER_REGISTRY

    assert trainers.register_all() == {} and datasets.IMPORT_FAILURES == {}
    for package, skip in ((datasets, ()), (trainers, trainers.HELPER_MODULES)):
        folder = os.path.dirname(package.__file__)
        for name in os.listdir(folder):
            if name.endswith(".py") and not name.startswith("_") and name[:-3] not in skip:
                assert package.__name__ + "." + name[:-3] in sys.modules, name
    assert "Toy" in DATASET_REGISTRY.registered_names()
    assert {"CoOp", "TrainerSupernet", "TrainerSubnet"} <= set(TRAINER_REGISTRY.registered_names())


def test_importing_trainers_or_its_file_format_module_needs_no_torch():
    # dassl/errors.py (which prompt_config raises) is the one piece of dassl it may import
    code = ("import sys; import trainers, trainers.prompt_config; "
            "print(sorted(m for m in ('torch', 'matplotlib', 'dassl.utils', 'trainers.common') if m in sys.modules))")
    done = subprocess.run([sys.executable, "-c", code], cwd=REPO_ROOT, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "[]"


def write_package(folder, name, modules, init=""):
    """A package ``name`` under ``folder``: {module name: source}; returns its path."""
    package = folder / name
    package.mkdir()
    (package / "__init__.py").write_text(init)
    for module, source in modules.items():
        (package / f"{module}.py").write_text(source)
    return package


BROKEN = {"a_method": "VALUE = 1\n", "b_broken": "raise RuntimeError('boom in b_broken')\n",
          "c_method": "VALUE = 3\n", "_private": "raise RuntimeError('never imported')\n",
          "helper": "raise RuntimeError('never imported')\n"}


def test_a_broken_module_is_recorded_and_the_others_still_import(tmp_path, monkeypatch):
    import trainers

    path = write_package(tmp_path, "fake_methods", BROKEN)
    monkeypatch.syspath_prepend(str(tmp_path))
    try:
        with pytest.warns(UserWarning, match=r"fake_methods.b_broken could not be imported \(RuntimeError: boom"):
            failures = trainers.import_modules("fake_methods", [str(path)], skip=("helper",))
        assert list(failures) == ["fake_methods.b_broken"]
        error = failures["fake_methods.b_broken"]
        assert "Traceback" in error and "boom in b_broken" in error
        assert sys.modules["fake_methods.a_method"].VALUE == 1 and sys.modules["fake_methods.c_method"].VALUE == 3
        assert "fake_methods._private" not in sys.modules and "fake_methods.helper" not in sys.modules
    finally:
        for name in [m for m in sys.modules if m.startswith("fake_methods")]:
            del sys.modules[name]


def test_a_missing_trainer_names_the_modules_that_failed_to_import(tmp_path, monkeypatch):
    """register_all on the real package plus a folder with one broken method file (nothing is written
    into trainers/): the other trainers register, and the error for a missing one shows why."""
    import trainers

    (tmp_path / "zz_broken_method.py").write_text("import numpy\nraise ValueError('typo in zz_broken_method')\n")
    monkeypatch.setattr(trainers, "__path__", list(trainers.__path__) + [str(tmp_path)])
    monkeypatch.setattr(trainers, "_failures", {})
    with pytest.warns(UserWarning, match="trainers.zz_broken_method could not be imported"):
        failures = trainers.register_all()
    assert list(failures) == ["trainers.zz_broken_method"]
    trainers.check_registered("CoOp")  # registered: nothing to say
    with pytest.raises(ImportError) as error:
        trainers.check_registered("ZzBroken")
    message = str(error.value)
    assert 'Trainer "ZzBroken" is not registered' in message and "'CoOp'" in message
    assert "trainers.zz_broken_method" in message and "ValueError: typo in zz_broken_method" in message
    monkeypatch.setattr(trainers, "_failures", {})
    trainers.check_registered("ZzBroken")  # nothing failed: build_trainer's own error will say it


def test_datasets_import_each_reader_on_its_own(tmp_path, monkeypatch):
    """The package's own __init__ over a folder with a broken reader."""
    import datasets  # noqa: F401  (registers Toy)

    init = open(os.path.join(REPO_ROOT, "datasets", "__init__.py")).read()
    modules = {k: v for k, v in BROKEN.items() if k != "helper"}
    write_package(tmp_path, "fake_readers", modules, init=init)
    monkeypatch.syspath_prepend(str(tmp_path))
    with pytest.warns(UserWarning, match="fake_readers.b_broken could not be imported"):
        fake = importlib.import_module("fake_readers")
    try:
        assert list(fake.IMPORT_FAILURES) == ["fake_readers.b_broken"]
        assert sys.modules["fake_readers.c_method"].VALUE == 3
        fake.check_registered("Toy")
        with pytest.raises(ImportError, match=r"(?s)Dataset Nope is not registered.*fake_readers.b_broken.*boom"):
            fake.check_registered("Toy,Nope")
    finally:
        for name in [m for m in sys.modules if m.startswith("fake_readers")]:
            del sys.modules[name]


def test_help_lists_coop_options():
    import train

    text = train.get_parser().format_help()
    for option in ("--root", "--output-dir", "--resume", "--seed", "--source-domains", "--target-domains",
                   "--transforms", "--trainer", "--backbone", "--head", "--config-file", "--dataset-config-file",
                   "--eval-only", "--model-dir", "--load-epoch", "--no-train"):
        assert option in text, option


def test_unknown_override_key_fails_naming_it(tmp_path):
    result = subprocess.run(
        [sys.executable, "train.py", "--root", str(tmp_path), "--output-dir", str(tmp_path / "out"),
         "--trainer", "CoOp", "--dataset-config-file", "configs/datasets/toy.yaml", "OPTIM.LRR", "0.1"],
        cwd=REPO_ROOT, capture_output=True, text=True, timeout=300,
    )
    assert result.returncode != 0
    assert 'Unknown config key "OPTIM.LRR"' in result.stderr and '"OPTIM.LR"' in result.stderr
    assert not (tmp_path / "out").exists()  # failed before any output
