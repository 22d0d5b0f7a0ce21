"""The README's main command, end to end (offline, CPU): scripts/demo.sh."""
import json
import os
import re
import subprocess
import sys

import numpy as np
import pytest

REPO_ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


@pytest.mark.slow
def test_demo_runs_search_then_training_and_reports_both_accuracies(tmp_path):
    env = dict(os.environ, PYTHON=sys.executable)
    env.pop("DATA", None)
    env.pop("CLIP_WEIGHTS", None)
    done = subprocess.run(
        ["bash", os.path.join(REPO_ROOT, "scripts", "demo.sh"), "--output", str(tmp_path / "out"),
         "--cache", str(tmp_path / "cache")],
        capture_output=True, text=True, env=env, timeout=900,
    )
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    zero_shot = float(re.search(r"zero-shot CLIP accuracy: ([0-9.]+)%", done.stdout).group(1))
    trained = float(re.search(r"DPL \(searched subnet\): +([0-9.]+)%", done.stdout).group(1))
    assert trained > zero_shot

    assert (tmp_path / "cache" / "tiny_clip_vit.pt").is_file()
    assert (tmp_path / "cache" / "data" / "toy").is_dir()
    search = tmp_path / "out" / "search"
    config = json.loads((search / "searched_config.json").read_text())
    assert "Searched configuration (epoch 3)" in done.stdout
    assert str(config["image"]["prompt_lengths"]) in done.stdout
    for epoch in range(4):
        assert np.load(search / f"alpha_e{epoch}_img.npy").shape == (2, 5)  # tiny CLIP: 2 blocks, options 0..4
        assert (search / f"alpha_e{epoch}.png").is_file()
    assert (search / "convergence.png").is_file()
    assert (tmp_path / "out" / "train" / "MultiModalPromptLearner" / "model.pth.tar-10").is_file()
