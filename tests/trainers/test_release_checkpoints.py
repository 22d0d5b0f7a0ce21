"""Checkpoints in the official DPL release's layout load with --eval-only and give its predictions.

The release saves the WHOLE CustomCLIP under ``MultiModalPromptLearner/model.pth.tar-<epoch>``:
the prompt learner's tensors as ``prompt_learner.*`` beside the frozen CLIP (``image_encoder.*``,
``text_encoder.*``, ``logit_scale``); its supernet holds no alphas (plain tensors there).
"""
import json
import os

import pytest
import torch

from dpl_helpers import randomise, run_train, search_argv, subnet_argv


def predictions(trainer):
    trainer.set_model_mode("eval")
    with torch.no_grad():
        return torch.cat([trainer.model_inference(trainer.parse_batch_test(b)[0]) for b in trainer.test_loader])


def write_release_checkpoint(trainer, directory, epoch, drop=(), frozen_noise=0.0):
    """The model as the release's Dassl save_model writes it (plus a class buffer it also saved)."""
    whole = {}
    for key, value in trainer.model.state_dict().items():
        if key.startswith("prompt_learner.") and key[len("prompt_learner."):] in drop:
            continue
        whole[key] = value.clone() + (frozen_noise if not key.startswith("prompt_learner.") else 0.0)
    whole["prompt_learner.token_prefix"] = torch.zeros(4, 1, 128)  # class-dependent: skipped
    folder = os.path.join(directory, "MultiModalPromptLearner")
    os.makedirs(folder, exist_ok=True)
    state = {"state_dict": whole, "epoch": epoch, "optimizer": {}, "scheduler": {}}
    torch.save(state, os.path.join(folder, f"model.pth.tar-{epoch}"))


@pytest.fixture
def config(tmp_path):
    path = tmp_path / "config.json"
    path.write_text(json.dumps({"image": {"prompt_lengths": [2, 0]}, "text": {"prompt_lengths": [1, 3, 0]}}))
    return str(path)


def test_subnet_release_checkpoint_gives_the_release_predictions(dpl_data_root, dpl_clip, tmp_path, config):
    opts = ("TRAINER.TRAINERSUBNET.PROMPT_CONFIG", config)
    source = run_train(["--no-train"] + subnet_argv(dpl_data_root, dpl_clip, tmp_path / "source", *opts))
    randomise(source.model.prompt_learner, seed=5)
    expected = predictions(source)
    release_dir = tmp_path / "release"
    write_release_checkpoint(source, release_dir, epoch=7)
    assert any(k.startswith("image_encoder.") for k in torch.load(
        release_dir / "MultiModalPromptLearner" / "model.pth.tar-7", weights_only=True)["state_dict"])

    loaded = run_train(["--eval-only", "--model-dir", str(release_dir), "--load-epoch", "7"]
                       + subnet_argv(dpl_data_root, dpl_clip, tmp_path / "eval", *opts))
    torch.testing.assert_close(predictions(loaded), expected, atol=0, rtol=0)


def test_release_checkpoint_with_other_frozen_weights_warns(dpl_data_root, dpl_clip, tmp_path, config):
    opts = ("TRAINER.TRAINERSUBNET.PROMPT_CONFIG", config)
    source = run_train(["--no-train"] + subnet_argv(dpl_data_root, dpl_clip, tmp_path / "source", *opts))
    write_release_checkpoint(source, tmp_path / "release", epoch=2, frozen_noise=0.5)
    with pytest.warns(UserWarning, match="differs from the one loaded from MODEL.BACKBONE"):
        run_train(["--eval-only", "--model-dir", str(tmp_path / "release"), "--load-epoch", "2"]
                  + subnet_argv(dpl_data_root, dpl_clip, tmp_path / "eval", *opts))


def test_release_checkpoint_missing_a_prompt_is_refused(dpl_data_root, dpl_clip, tmp_path, config):
    opts = ("TRAINER.TRAINERSUBNET.PROMPT_CONFIG", config)
    source = run_train(["--no-train"] + subnet_argv(dpl_data_root, dpl_clip, tmp_path / "source", *opts))
    write_release_checkpoint(source, tmp_path / "release", epoch=2, drop=("ctx_txt_lst.1",))
    with pytest.raises(RuntimeError, match=r"missing \['ctx_txt_lst.1'\]"):
        run_train(["--eval-only", "--model-dir", str(tmp_path / "release"), "--load-epoch", "2"]
                  + subnet_argv(dpl_data_root, dpl_clip, tmp_path / "eval", *opts))


def test_supernet_release_checkpoint_loads_its_prompts_without_alphas(dpl_data_root, dpl_clip, tmp_path):
    source = run_train(["--no-train"] + search_argv(dpl_data_root, dpl_clip, tmp_path / "source"))
    randomise(source.model.prompt_learner, seed=6)
    with torch.no_grad():  # the release keeps the alphas out of its checkpoint: ours start at these
        source.model.prompt_learner.alphas_img.zero_()
        source.model.prompt_learner.alphas_txt.zero_()
    write_release_checkpoint(source, tmp_path / "release", epoch=3, drop=("alphas_img", "alphas_txt"))

    with pytest.warns(UserWarning, match="has no .*alphas_img"):
        loaded = run_train(["--eval-only", "--model-dir", str(tmp_path / "release"), "--load-epoch", "3",
                            *search_argv(dpl_data_root, dpl_clip, tmp_path / "eval",
                                         "TRAINER.TRAINERSUPERNET.ALPHA_INIT_STD", "0.0")])
    for key, value in source.model.prompt_learner.state_dict().items():
        assert torch.equal(loaded.model.prompt_learner.state_dict()[key], value), key
    torch.testing.assert_close(predictions(loaded), predictions(source), atol=0, rtol=0)
