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
    setting = tmp_path / "out" / "toy" / "shots_8" / "seed1" / "tiny_clip_vit"  # one folder per setting
    search = setting / "search"
    config = json.loads((search / "searched_config.json").read_text())
    assert "Searched configuration (epoch 3)" in done.stdout
    assert str(config["image"]["prompt_lengths"]) in done.stdout
    for epoch in range(4):
        assert np.load(search / f"alpha_e{epoch}_img.npy").shape == (2, 5)  # tiny CLIP: 2 blocks, options 0..4
        assert (search / f"alpha_e{epoch}.png").is_file()
    assert (search / "convergence.png").is_file()
    assert (setting / "train" / "MultiModalPromptLearner" / "model.pth.tar-10").is_file()


def fake_train_py(calls):
    """A stand-in for demo.run: records the stage, writes its log (accuracy = 10 x shots + seed) and,
    for the search, a searched configuration."""
    def run(argv, log_hint):
        argv = [str(a) for a in argv]
        out = argv[argv.index("--output-dir") + 1]
        shots, seed = int(argv[argv.index("DATASET.NUM_SHOTS") + 1]), int(argv[argv.index("--seed") + 1])
        calls.append(out)
        os.makedirs(out, exist_ok=True)
        with open(os.path.join(out, "log.txt"), "w") as f:
            f.write(f"* accuracy: {10 * shots + seed + (1 if 'train' in out else 0)}.0%\n")
        if argv[argv.index("--trainer") + 1] == "TrainerSupernet":
            branch = {"prompt_lengths": [1, 2], "confidence": [0.5, 0.5]}
            with open(os.path.join(out, "searched_config.json"), "w") as f:
                json.dump({"epoch": 3, "image": branch, "text": branch}, f)
        return ""
    return run


def test_demo_gives_each_setting_its_own_folder_and_reports_its_own_accuracy(tmp_path, monkeypatch, capsys):
    sys.path.insert(0, os.path.join(REPO_ROOT, "scripts"))
    import demo

    calls = []
    monkeypatch.setattr(demo, "run", fake_train_py(calls))
    weights = tmp_path / "cache" / "tiny_clip_vit.pt"
    weights.parent.mkdir()
    weights.write_bytes(b"")  # the demo writes its tiny CLIP only when missing
    base = ["--output", str(tmp_path / "out"), "--cache", str(tmp_path / "cache")]
    assert demo.main(base) == (81.0, 82.0)  # the quick start: Toy, 8 shots, seed 1
    assert demo.main(base + ["--shots", "4", "--seed", "2"]) == (42.0, 43.0)
    assert demo.main(base + ["--dataset", "TOY"]) == (81.0, 82.0)  # a registered name: the same setting
    printed = capsys.readouterr().out
    assert "4 shots, seed 2" in printed and "zero-shot CLIP accuracy: 42.0%" in printed

    first = str(tmp_path / "out" / "toy" / "shots_8" / "seed1" / "tiny_clip_vit")
    second = str(tmp_path / "out" / "toy" / "shots_4" / "seed2" / "tiny_clip_vit")
    assert calls[:6] == [os.path.join(first, s) for s in ("zeroshot", "search", "train")] + \
        [os.path.join(second, s) for s in ("zeroshot", "search", "train")]
    assert calls[6:] == calls[:3]

    other_backbone = tmp_path / "ViT-B-16.pt"
    other_backbone.write_bytes(b"")
    demo.main(base + ["--weights", str(other_backbone)])
    assert calls[-1] == str(tmp_path / "out" / "toy" / "shots_8" / "seed1" / "ViT-B-16" / "train")
