"""TrainerSupernet (DPL's search stage) end to end on Toy with a tiny random CLIP."""
import contextlib
import json
import os

import numpy as np
import pytest
import torch
from PIL import Image

from clip.tiny import save_tiny_clip
from dassl.utils import load_checkpoint
from dpl_helpers import LEARNING_OPTS, learnable_state, run_train, search_argv, test_loss


@pytest.fixture(scope="module")
def finished_search(dpl_clip, dpl_data_root, tmp_path_factory):
    out = tmp_path_factory.mktemp("search")
    trainer = run_train(search_argv(dpl_data_root, dpl_clip, out))
    return out, trainer


def _last_checkpoint(out):
    folder = os.path.join(out, "MultiModalPromptLearner")
    with open(os.path.join(folder, "checkpoint")) as f:
        return load_checkpoint(os.path.join(folder, f.readline().strip()))


def test_search_writes_every_output_with_the_right_names(finished_search):
    out, trainer = finished_search
    for epoch in (0, 1, 2):
        img = np.load(out / f"alpha_e{epoch}_img.npy")
        txt = np.load(out / f"alpha_e{epoch}_txt.npy")
        assert img.dtype == np.float32 and img.shape == (2, 3)  # 2 image blocks, options 0..2
        assert txt.dtype == np.float32 and txt.shape == (3, 3)  # 3 text blocks
        assert Image.open(out / f"alpha_e{epoch}.png").size[0] > 100
    # The image-alpha file really holds the image branch's alphas (the release swaps them).
    state = _last_checkpoint(out)["state_dict"]
    np.testing.assert_array_equal(np.load(out / "alpha_e2_img.npy"), state["alphas_img"].numpy())
    np.testing.assert_array_equal(np.load(out / "alpha_e2_txt.npy"), state["alphas_txt"].numpy())
    assert not np.array_equal(np.load(out / "alpha_e0_img.npy"), np.load(out / "alpha_e2_img.npy"))

    config = json.loads((out / "searched_config.json").read_text())
    assert config["epoch"] == 2
    alpha_img = np.load(out / "alpha_e2_img.npy")
    assert config["image"]["prompt_lengths"] == alpha_img.argmax(axis=1).tolist()
    assert len(config["text"]["prompt_lengths"]) == 3
    assert np.allclose(np.sum(config["image"]["weights"], axis=1), 1.0, atol=1e-5)
    assert all(0.0 <= c <= 1.0 for c in config["text"]["confidence"])
    assert "confidence" in config["definitions"]

    history = json.loads((out / "search_history.json").read_text())
    assert [h["epoch"] for h in history] == [0, 1, 2]
    assert history[0]["alpha_difference_img"] == 0.0 and history[2]["alpha_difference_img"] > 0.0
    assert Image.open(out / "convergence.png").size[0] > 100

    log = (out / "log.txt").read_text()
    assert "Searched configuration after epoch 2:" in log
    assert "* accuracy:" in log  # final test accuracy of the supernet
    # Checkpoints hold the learnable tensors under the release's names, and the alphas.
    names = set(state)
    assert {"alphas_img", "alphas_txt", "ctx_img_lst.0.0", "ctx_img_lst.1.1", "ctx_txt_lst.2.1"} <= names
    assert state["ctx_txt_lst.2.1"].shape == (2, 128)
    assert not any(k.startswith(("image_encoder", "text_embeddings", "token_")) for k in names)


def test_each_step_updates_only_its_own_parameters(finished_search):
    _, trainer = finished_search
    trainer.set_model_mode("train")
    trainer.epoch, trainer.batch_idx = 0, 0
    image, label = trainer.val_batches.batch(0, trainer.device)
    before = {k: v.clone() for k, v in trainer.model.prompt_learner.state_dict().items()}
    for p in trainer.prompt_params + trainer.alpha_params:
        p.grad = None
    trainer._step("alpha", image, label, trainer.alpha_params, trainer.alpha_optim)
    assert all(p.grad is None for p in trainer.prompt_params)
    assert all(p.grad is not None and p.grad.abs().sum() > 0 for p in trainer.alpha_params)
    after = trainer.model.prompt_learner.state_dict()
    assert not torch.equal(before["alphas_img"], after["alphas_img"])
    assert torch.equal(before["ctx_img_lst.0.0"], after["ctx_img_lst.0.0"])

    for p in trainer.alpha_params:
        p.grad = None
    trainer._step("prompt", image, label, trainer.prompt_params, trainer.optim)
    assert all(p.grad is None for p in trainer.alpha_params)
    assert any(p.grad is not None and p.grad.abs().sum() > 0 for p in trainer.prompt_params)
    assert all(p.requires_grad for p in trainer.prompt_params + trainer.alpha_params)


class _Killed(Exception):
    pass


@pytest.mark.parametrize("kill_at", [(1, 0), (1, 2)], ids=["between-epochs", "mid-epoch"])
def test_a_killed_search_resumes_to_the_same_alphas(finished_search, dpl_clip, dpl_data_root, tmp_path, monkeypatch,
                                                    kill_at):
    from trainers.trainersupernet import TrainerSupernet

    reference, _ = finished_search
    out = tmp_path / "killed"
    original = TrainerSupernet.forward_backward

    def forward_backward(self, batch):
        if (self.epoch, self.batch_idx) == kill_at:
            raise _Killed()
        return original(self, batch)

    monkeypatch.setattr(TrainerSupernet, "forward_backward", forward_backward)
    with pytest.raises(_Killed):
        run_train(search_argv(dpl_data_root, dpl_clip, out))
    assert (out / "alpha_e1_img.npy").exists() and not (out / "alpha_e2_img.npy").exists()
    monkeypatch.setattr(TrainerSupernet, "forward_backward", original)

    trainer = run_train(search_argv(dpl_data_root, dpl_clip, out))  # the same command again
    assert "resume" in (out / "log.txt").read_text().lower()
    for branch in ("img", "txt"):
        np.testing.assert_array_equal(np.load(out / f"alpha_e2_{branch}.npy"),
                                      np.load(reference / f"alpha_e2_{branch}.npy"))
    resumed, uninterrupted = _last_checkpoint(out), _last_checkpoint(reference)
    for key, value in uninterrupted["state_dict"].items():
        assert torch.equal(resumed["state_dict"][key], value), key
    assert trainer.get_current_lr() == pytest.approx(uninterrupted["optimizer"]["param_groups"][0]["lr"])


def test_val_batches_cycle_through_the_whole_split_and_first_repeats(finished_search):
    from trainers.search_data import CyclingBatchSampler, ValidationBatches

    _, trainer = finished_search
    sampler = CyclingBatchSampler(n=10, batch_size=4, seed=3)
    first_pass = [sampler.batch_indices(s) for s in range(3)]
    assert sorted(i for b in first_pass for i in b) == list(range(10))
    assert [len(b) for b in first_pass] == [4, 4, 2]
    second_pass = [sampler.batch_indices(s) for s in range(3, 6)]
    assert sorted(i for b in second_pass for i in b) == list(range(10))
    assert first_pass != second_pass  # a new shuffle each pass
    assert first_pass == [CyclingBatchSampler(10, 4, seed=3).batch_indices(s) for s in range(3)]

    val = trainer.dm.dataset.val
    cycle = ValidationBatches(trainer.cfg, val, 8, "cycle", seed=1)
    first = ValidationBatches(trainer.cfg, val, 8, "first", seed=1)
    labels_cycle = [cycle.batch(s, "cpu")[1].tolist() for s in range(2)]
    labels_first = [first.batch(s, "cpu")[1].tolist() for s in range(2)]
    assert labels_first[0] == labels_first[1] == [d.label for d in val[:8]]
    assert labels_cycle[0] != labels_cycle[1]
    assert cycle.batch(5, "cpu")[1].tolist() == cycle.batch(5, "cpu")[1].tolist()  # addressed by step


def test_multi_dataset_search_concatenates_label_spaces(dpl_clip, dpl_data_root, tmp_path, capsys):
    # A second dataset: an ImageFolder of two classes made of Toy images.
    folder = tmp_path / "shapes2"
    toy_images = os.path.join(dpl_data_root, "toy")
    sources = sorted(os.path.join(dp, f) for dp, _, fs in os.walk(toy_images) for f in fs if f.endswith((".png", ".jpg")))
    for c, name in enumerate(["alpha", "beta"]):
        os.makedirs(folder / name)
        for i, src in enumerate(sources[c * 40 : c * 40 + 12]):
            Image.open(src).save(folder / name / f"{i}.png")
    out = tmp_path / "multi"
    trainer = run_train(search_argv(
        dpl_data_root, dpl_clip, out, "DATASET.NAME", "Toy,ImageFolder", "DATASET.IMAGE_FOLDER.DIR", str(folder),
        epochs=1,
    ))
    assert trainer.num_classes == 6
    assert trainer.dm.dataset.class_offsets == [0, 4]
    assert sorted({d.domain for d in trainer.dm.dataset.test}) == [0, 1]
    assert {d.label for d in trainer.dm.dataset.test if d.domain == 1} == {4, 5}
    log = (out / "log.txt").read_text()
    assert "* accuracy on Toy:" in log and "* accuracy on ImageFolder:" in log


def test_bad_inputs_get_clear_errors(dpl_clip, dpl_data_root, tmp_path):
    rn = save_tiny_clip(str(tmp_path / "rn.pt"), "RN")
    with pytest.raises(ValueError, match="ResNet backbone"):
        run_train(search_argv(dpl_data_root, rn, tmp_path / "rn", "INPUT.SIZE", "(64, 64)"))



def test_an_empty_val_split_is_refused(finished_search):
    from trainers.search_data import ValidationBatches

    _, trainer = finished_search
    with pytest.raises(ValueError, match="validation split of Toy is empty"):
        ValidationBatches(trainer.cfg, [], 8, "cycle", seed=1)


def test_nan_loss_stops_with_the_step_and_epoch(finished_search):
    _, trainer = finished_search
    image, label = trainer.val_batches.batch(0, trainer.device)
    with torch.no_grad():
        trainer.model.prompt_learner.ctx_img_lst[0][0].fill_(float("nan"))
    trainer.epoch, trainer.batch_idx = 4, 1
    with pytest.raises(FloatingPointError, match="alpha step .* at epoch 5, batch 2"):
        trainer._step("alpha", image, label, trainer.alpha_params, trainer.alpha_optim)


def test_a_release_checkpoint_loads_by_name(finished_search, tmp_path):
    """Prompts and alphas of a checkpoint saved by the official release load into ours by name."""
    _, trainer = finished_search
    pl = trainer.model.prompt_learner
    release_state = {k: torch.randn_like(v) for k, v in pl.state_dict().items()}
    release_state["token_prefix"] = torch.zeros(4, 1, 128)  # class-dependent buffers the release also saves
    folder = tmp_path / "release" / "MultiModalPromptLearner"
    folder.mkdir(parents=True)
    torch.save({"state_dict": release_state, "epoch": 80, "optimizer": None, "scheduler": None, "val_result": None},
               folder / "model.pth.tar-80")
    trainer.load_model(str(tmp_path / "release"), epoch=80)
    for key, value in pl.state_dict().items():
        assert torch.equal(value, release_state[key]), key

    del release_state["ctx_txt_lst.2.1"]
    torch.save({"state_dict": release_state, "epoch": 80}, folder / "model.pth.tar-80")
    with pytest.raises(RuntimeError, match="missing .*ctx_txt_lst.2.1"):
        trainer.load_model(str(tmp_path / "release"), epoch=80)


@pytest.mark.parametrize("prec", ["bf16", "amp"])
def test_reduced_precision_searches_learn(dpl_clip, dpl_data_root, tmp_path, prec):
    falls_back = prec == "amp" and not torch.cuda.is_available()
    argv = search_argv(dpl_data_root, dpl_clip, tmp_path / prec, "TRAINER.TRAINERSUPERNET.PREC", prec,
                       *LEARNING_OPTS, epochs=2)
    with pytest.warns(UserWarning, match="needs a GPU") if falls_back else contextlib.nullcontext():
        trainer = run_train(["--no-train"] + argv)
    assert trainer.prec == ("fp32" if falls_back else prec)
    assert all(s is None for s in trainer.scalers.values()) == (trainer.prec != "amp")
    before, loss_before = learnable_state(trainer), test_loss(trainer)
    trainer.train()
    after = learnable_state(trainer)
    assert all(not torch.equal(before[k], after[k]) for k in after)  # every option and both alphas moved
    assert test_loss(trainer) < loss_before
    assert np.isfinite(np.load(tmp_path / prec / "alpha_e2_img.npy")).all()
