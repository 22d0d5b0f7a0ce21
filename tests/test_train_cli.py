"""train.py as a program: package auto-registration and command-line errors."""

import os
import subprocess
import sys

REPO_ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def test_packages_register_every_module():
    import datasets
    import trainers
    from dassl.data.datasets import DATASET_REGISTRY

    for package in (datasets, trainers):
        folder = os.path.dirname(package.__file__)
        for name in os.listdir(folder):
            if name.endswith(".py") and not name.startswith("_"):
                assert package.__name__ + "." + name[:-3] in sys.modules, name
    assert "Toy" in DATASET_REGISTRY.registered_names()


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
