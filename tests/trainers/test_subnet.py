"""TrainerSubnet (DPL's training stage) on Toy with a tiny random CLIP."""
import contextlib
import json
import os

import numpy as np
import pytest
import torch
from PIL import Image

from datasets.templates import IMAGENET_TEMPLATES
from dpl_helpers import LEARNING_OPTS, learnable_state, run_train, subnet_argv, test_loss
from trainers.common import tokenize
from trainers.heads import distillation_loss


def write_alphas(folder, lengths_img, lengths_txt, n_options=3):
    """Alpha files whose row-wise argmax is the given lengths."""
    paths = {}
    for suffix, lengths in (("img", lengths_img), ("txt", lengths_txt)):
        alpha = np.random.RandomState(0).rand(len(lengths), n_options).astype(np.float32) * 0.1
        alpha[np.arange(len(lengths)), lengths] += 1.0
        paths[suffix] = os.path.join(folder, f"alpha_e3_{suffix}.npy")
        np.save(paths[suffix], alpha)
    return paths


def write_config(path, lengths_img, lengths_txt):
    with open(path, "w") as f:
        json.dump({"image": {"prompt_lengths": lengths_img}, "text": {"prompt_lengths": lengths_txt}}, f)
    return str(path)


def build(dpl_data_root, clip_path, out, *opts):
    """A TrainerSubnet built by train.py (--no-train): model and data, no training."""
    return run_train(["--no-train"] + subnet_argv(dpl_data_root, clip_path, out, *opts))


@pytest.fixture(scope="module")
def reference_clip(dpl_clip):
    import clip

    return clip.build_model(clip.load_state_dict(dpl_clip)).float()


def test_prompt_lengths_follow_the_alpha_argmax_including_zero(dpl_data_root, dpl_clip, tmp_path):
    paths = write_alphas(tmp_path, [0, 2], [1, 0, 2])
    trainer = build(dpl_data_root, dpl_clip, tmp_path / "out", "TRAINER.TRAINERSUBNET.IMG_ALPHA_PATH", paths["img"],
                    "TRAINER.TRAINERSUBNET.TXT_ALPHA_PATH", paths["txt"])
    pl = trainer.model.prompt_learner
    assert [p.shape[0] for p in pl.ctx_img_lst] == [0, 2]
    assert [p.shape[0] for p in pl.ctx_txt_lst] == [1, 0, 2]
    state = pl.state_dict()
    assert set(state) == {f"ctx_img_lst.{i}" for i in range(2)} | {f"ctx_txt_lst.{i}" for i in range(3)}
    assert state["ctx_txt_lst.2"].shape == (2, 128)
    assert 0.01 < float(state["ctx_txt_lst.2"].std()) < 0.04  # N(0, 0.02^2)


def test_json_config_and_equivalent_alpha_files_give_identical_models(dpl_data_root, dpl_clip, tmp_path):
    paths = write_alphas(tmp_path, [2, 1], [0, 2, 1])
    config = write_config(tmp_path / "config.json", [2, 1], [0, 2, 1])
    from_alphas = build(dpl_data_root, dpl_clip, tmp_path / "a", "TRAINER.TRAINERSUBNET.IMG_ALPHA_PATH", paths["img"],
                        "TRAINER.TRAINERSUBNET.TXT_ALPHA_PATH", paths["txt"])
    from_json = build(dpl_data_root, dpl_clip, tmp_path / "b", "TRAINER.TRAINERSUBNET.PROMPT_CONFIG", config)
    sa, sb = from_alphas.model.prompt_learner.state_dict(), from_json.model.prompt_learner.state_dict()
    assert sa.keys() == sb.keys() and all(torch.equal(sa[k], sb[k]) for k in sa)
    image = next(iter(from_json.test_loader))["img"][:4]
    with torch.no_grad():
        torch.testing.assert_close(from_alphas.model(image), from_json.model(image))


@pytest.mark.parametrize(
    "content, message",
    [
        ({"image": {"prompt_lengths": [1, -2]}, "text": {"prompt_lengths": [0, 0, 1]}}, "non-negative integers"),
        ({"image": {"prompt_lengths": [1, 1.5]}, "text": {"prompt_lengths": [0, 0, 1]}}, "non-negative integers"),
        ({"image": {"prompt_lengths": [1, 1, 1]}, "text": {"prompt_lengths": [0, 0, 1]}}, "has 3 entries.* 2 blocks"),
        ({"image": {"prompt_lengths": [1, 1]}}, 'missing "text"'),
    ],
)
def test_bad_json_configurations_are_rejected_naming_the_file(dpl_data_root, dpl_clip, tmp_path, content, message):
    path = tmp_path / "bad.json"
    path.write_text(json.dumps(content))
    with pytest.raises(ValueError, match=message) as err:
        build(dpl_data_root, dpl_clip, tmp_path / "out", "TRAINER.TRAINERSUBNET.PROMPT_CONFIG", str(path))
    assert str(path) in str(err.value)


def test_bad_alpha_files_are_rejected_naming_the_file(dpl_data_root, dpl_clip, tmp_path):
    deep = write_alphas(tmp_path, [1, 1, 1, 1], [1, 1, 1])  # 4 image blocks: another depth
    good = write_alphas(tmp_path / ".." / tmp_path.name, [1, 1], [1, 1, 1])
    np.save(deep["img"], np.ones((4, 3), np.float32))
    with pytest.raises(ValueError, match=r"shape \(4, 3\).* 2 blocks") as err:
        build(dpl_data_root, dpl_clip, tmp_path / "o1", "TRAINER.TRAINERSUBNET.IMG_ALPHA_PATH", deep["img"],
              "TRAINER.TRAINERSUBNET.TXT_ALPHA_PATH", good["txt"])
    assert deep["img"] in str(err.value)
    missing = str(tmp_path / "nowhere_img.npy")
    with pytest.raises(FileNotFoundError, match="image alpha file not found: " + missing):
        build(dpl_data_root, dpl_clip, tmp_path / "o2", "TRAINER.TRAINERSUBNET.IMG_ALPHA_PATH", missing,
              "TRAINER.TRAINERSUBNET.TXT_ALPHA_PATH", good["txt"])
    garbage = tmp_path / "garbage_img.npy"
    garbage.write_bytes(b"not numpy")
    with pytest.raises(ValueError, match="Cannot read image alpha file " + str(garbage)):
        build(dpl_data_root, dpl_clip, tmp_path / "o3", "TRAINER.TRAINERSUBNET.IMG_ALPHA_PATH", str(garbage),
              "TRAINER.TRAINERSUBNET.TXT_ALPHA_PATH", good["txt"])
    with pytest.raises(ValueError, match="needs a prompt configuration"):
        build(dpl_data_root, dpl_clip, tmp_path / "o4")


def test_ctx_init_modes(dpl_data_root, dpl_clip, reference_clip, tmp_path):
    config = write_config(tmp_path / "c.json", [1, 0], [1, 0, 0])
    trainers = {
        mode: build(dpl_data_root, dpl_clip, tmp_path / mode, "TRAINER.TRAINERSUBNET.PROMPT_CONFIG", config,
                    "TRAINER.TRAINERSUBNET.CTX_INIT", mode)
        for mode in ("default", "custom", "ensemble")
    }
    names = trainers["default"].dm.dataset.classnames

    def embed(template):
        tokens = tokenize([template.format(n) for n in names], reference_clip)
        with torch.no_grad():
            return reference_clip.token_embedding(tokens).float(), tokens

    default_emb, default_tok = embed("a photo of a {}.")
    pl = trainers["default"].model.prompt_learner
    torch.testing.assert_close(pl.text_embeddings, default_emb)
    assert torch.equal(pl.tokenized_prompts, default_tok)
    # Toy's own template is CLIP's generic one: "custom" reads it through template_for.
    torch.testing.assert_close(trainers["custom"].model.prompt_learner.text_embeddings, default_emb)

    assert len(IMAGENET_TEMPLATES) == 60 and IMAGENET_TEMPLATES[-1] == "itap of the {}."
    mean = sum(embed(t)[0] for t in IMAGENET_TEMPLATES) / len(IMAGENET_TEMPLATES)
    pl = trainers["ensemble"].model.prompt_learner
    torch.testing.assert_close(pl.text_embeddings, mean)
    # Features are read at the end-of-text position of the LAST template, as the release does.
    assert torch.equal(pl.tokenized_prompts, embed(IMAGENET_TEMPLATES[-1])[1])


def test_custom_template_of_an_image_folder_dataset(dpl_clip, reference_clip, tmp_path):
    folder = tmp_path / "pets"
    for c, colour in enumerate([(255, 0, 0), (0, 0, 255)]):
        os.makedirs(folder / f"class_{c}")
        for i in range(6):
            Image.new("RGB", (32, 32), colour).save(folder / f"class_{c}" / f"{i}.png")
    config = write_config(tmp_path / "c.json", [1, 0], [1, 0, 0])
    trainer = build(str(tmp_path), dpl_clip, tmp_path / "out", "DATASET.NAME", "ImageFolder",
                    "DATASET.IMAGE_FOLDER.DIR", str(folder), "DATASET.IMAGE_FOLDER.TEMPLATE", "a drawing of a {}.",
                    "DATASET.NUM_SHOTS", "2", "TRAINER.TRAINERSUBNET.PROMPT_CONFIG", config,
                    "TRAINER.TRAINERSUBNET.CTX_INIT", "custom")
    tokens = trainer.model.prompt_learner.tokenized_prompts
    expected = tokenize(["a drawing of a class 0.", "a drawing of a class 1."], reference_clip)
    assert torch.equal(tokens, expected)


def test_distillation_loss_equals_a_hand_computation():
    student = torch.tensor([[1.0, 0.0, -1.0], [0.5, 0.5, 2.0]])
    teacher = torch.tensor([[0.0, 1.0, 0.0], [2.0, 0.0, 0.0]])
    for temperature in (1.0, 2.0):
        total = 0.0
        for s_row, t_row in zip(student.tolist(), teacher.tolist()):
            s_exp = [np.exp(v / temperature) for v in s_row]
            t_exp = [np.exp(v / temperature) for v in t_row]
            p_s = [v / sum(s_exp) for v in s_exp]
            p_t = [v / sum(t_exp) for v in t_exp]
            total += sum(pt * (np.log(pt) - np.log(ps)) for pt, ps in zip(p_t, p_s))
        expected = total / 6 * temperature**2  # summed, divided by batch x classes
        assert float(distillation_loss(student, teacher, temperature)) == pytest.approx(expected, rel=1e-5)


def test_teacher_is_zero_shot_clip_and_gradients_reach_prompts_only(dpl_data_root, dpl_clip, reference_clip, tmp_path):
    config = write_config(tmp_path / "c.json", [2, 1], [1, 0, 2])
    trainer = build(dpl_data_root, dpl_clip, tmp_path / "kd", "TRAINER.TRAINERSUBNET.PROMPT_CONFIG", config,
                    "TRAINER.TRAINERSUBNET.KD_WEIGHT", "1.0")
    names = trainer.dm.dataset.classnames
    batch = next(iter(trainer.train_loader_x))
    image = batch["img"]
    with torch.no_grad():
        text = 0.0
        for template in IMAGENET_TEMPLATES:
            features = reference_clip.encode_text(tokenize([template.format(n) for n in names], reference_clip))
            text = text + features / features.norm(dim=-1, keepdim=True)
        text = text / text.norm(dim=-1, keepdim=True)
        img = reference_clip.encode_image(image)
        img = img / img.norm(dim=-1, keepdim=True)
        expected_teacher = reference_clip.logit_scale.exp() * img @ text.t()
    head = trainer.model.head
    features = trainer.model.forward_features(image, extras=head.wants)
    teacher = features.logit_scale * features.extras["zeroshot_image"] @ head.teacher_text_features.t()
    torch.testing.assert_close(teacher, expected_teacher, rtol=1e-4, atol=1e-4)

    trainer.batch_idx, trainer.num_batches = 0, 10
    summary = trainer.forward_backward(batch)
    assert {"loss_ce", "loss_kd", "loss", "acc"} <= set(summary)
    assert summary["loss"] == pytest.approx(summary["loss_ce"] + summary["loss_kd"], rel=1e-5)
    grads = {n: p.grad for n, p in trainer.model.named_parameters() if p.grad is not None}
    assert grads and all(n.startswith("prompt_learner.") for n in grads)
    assert "prompt_learner.ctx_img_lst.0" in grads and "prompt_learner.ctx_txt_lst.2" in grads


def test_no_teacher_forward_without_distillation(dpl_data_root, dpl_clip, tmp_path, monkeypatch):
    config = write_config(tmp_path / "c.json", [1, 1], [1, 0, 0])
    trainer = build(dpl_data_root, dpl_clip, tmp_path / "nokd", "TRAINER.TRAINERSUBNET.PROMPT_CONFIG", config)
    assert not hasattr(trainer.model.head, "teacher_text_features") and trainer.model.head.wants == ()
    calls = []
    original = type(trainer.model).encode_image

    def counting(self, image, image_prompts=None, extra_tokens=None):
        calls.append(image_prompts is None)
        return original(self, image, image_prompts, extra_tokens)

    monkeypatch.setattr(type(trainer.model), "encode_image", counting)
    trainer.batch_idx, trainer.num_batches = 0, 10
    summary = trainer.forward_backward(next(iter(trainer.train_loader_x)))
    assert calls == [False]  # one student forward, no prompt-free (teacher) forward
    assert "loss_kd" not in summary


@pytest.mark.parametrize("prec", ["bf16", "amp"])
def test_reduced_precisions_train(dpl_data_root, dpl_clip, tmp_path, prec):
    config = write_config(tmp_path / "c.json", [1, 1], [1, 0, 1])
    falls_back = prec == "amp" and not torch.cuda.is_available()
    with pytest.warns(UserWarning, match="needs a GPU") if falls_back else contextlib.nullcontext():
        trainer = build(dpl_data_root, dpl_clip, tmp_path / prec, "TRAINER.TRAINERSUBNET.PROMPT_CONFIG", config,
                        "TRAINER.TRAINERSUBNET.PREC", prec, *LEARNING_OPTS)
    assert trainer.prec == ("fp32" if falls_back else prec)
    before, loss_before = learnable_state(trainer), test_loss(trainer)
    trainer.train()
    after = learnable_state(trainer)
    assert all(not torch.equal(before[k], after[k]) for k in after if after[k].numel())
    assert test_loss(trainer) < loss_before


def _zero_shot_accuracy(trainer):
    """Plain CLIP ("a photo of a {class}.", no prompts) on the trainer's test split, in %."""
    import clip

    reference = clip.build_model(clip.load_state_dict(trainer.cfg.MODEL.BACKBONE.PATH)).float()
    names = trainer.dm.dataset.classnames
    with torch.no_grad():
        text = reference.encode_text(tokenize([f"a photo of a {n}." for n in names], reference))
        text = text / text.norm(dim=-1, keepdim=True)
        correct = total = 0
        for batch in trainer.test_loader:
            img = reference.encode_image(batch["img"])
            pred = (img / img.norm(dim=-1, keepdim=True) @ text.t()).argmax(-1)
            correct += int((pred == batch["label"]).sum())
            total += len(pred)
    return 100.0 * correct / total


def _logged_accuracies(log_path):
    return [float(line.split(":")[1].strip().rstrip("%")) for line in open(log_path) if line.startswith("* accuracy:")]


def test_training_beats_zero_shot_and_eval_only_reproduces_it(dpl_data_root, dpl_clip, tmp_path):
    config = write_config(tmp_path / "c.json", [4, 4], [4, 4, 4])
    out = tmp_path / "train"
    trainer = run_train(subnet_argv(
        dpl_data_root, dpl_clip, out, "TRAINER.TRAINERSUBNET.PROMPT_CONFIG", config, "DATASET.NUM_SHOTS", "8",
        "TRAINER.TRAINERSUBNET.CTX_INIT", "default", "OPTIM.NAME", "adam", "OPTIM.LR", "0.003", epochs=4,
    ))
    trained = _logged_accuracies(out / "log.txt")[-1]
    zero_shot = _zero_shot_accuracy(trainer)
    assert trained > zero_shot + 10.0, (trained, zero_shot)

    checkpoint = out / "MultiModalPromptLearner" / "model.pth.tar-4"
    state = torch.load(checkpoint, weights_only=True)["state_dict"]
    assert set(state) == {f"ctx_img_lst.{i}" for i in range(2)} | {f"ctx_txt_lst.{i}" for i in range(3)}

    evaluation = tmp_path / "eval"
    run_train(["--eval-only", "--model-dir", str(out), "--load-epoch", "4"] + subnet_argv(
        dpl_data_root, dpl_clip, evaluation, "TRAINER.TRAINERSUBNET.PROMPT_CONFIG", config, "DATASET.NUM_SHOTS", "8",
        "TRAINER.TRAINERSUBNET.CTX_INIT", "default",
    ))
    assert _logged_accuracies(evaluation / "log.txt")[-1] == trained


@pytest.mark.slow
def test_a_killed_training_resumes_exactly_and_eval_only_finds_its_prompt_configuration(
        dpl_data_root, dpl_clip, tmp_path, monkeypatch):
    """Killed after its epoch-2 checkpoint, run again with the same command: it resumes and ends
    bit-identical to an uninterrupted run. The run folder's prompt_config.json then lets --eval-only
    --model-dir evaluate it without any prompt-configuration option."""
    from trainers.trainersubnet import TrainerSubnet

    config = write_config(tmp_path / "c.json", [2, 1], [1, 0, 2])
    opts = ("TRAINER.TRAINERSUBNET.PROMPT_CONFIG", config, *LEARNING_OPTS)
    full, part = tmp_path / "full", tmp_path / "part"
    uninterrupted = learnable_state(run_train(subnet_argv(dpl_data_root, dpl_clip, full, *opts, epochs=3)))

    original = TrainerSubnet.after_epoch

    def killed_after_epoch_2(self):
        original(self)
        if self.epoch + 1 == 2:
            raise KeyboardInterrupt("killed after the epoch-2 checkpoint")

    monkeypatch.setattr(TrainerSubnet, "after_epoch", killed_after_epoch_2)
    with pytest.raises(KeyboardInterrupt):
        run_train(subnet_argv(dpl_data_root, dpl_clip, part, *opts, epochs=3))
    monkeypatch.setattr(TrainerSubnet, "after_epoch", original)
    folder = part / "MultiModalPromptLearner"
    assert sorted(os.listdir(folder)) == ["checkpoint", "model.pth.tar-2"]  # epoch 1's was superseded
    assert not (part / "run_complete.json").exists()

    resumed = run_train(subnet_argv(dpl_data_root, dpl_clip, part, *opts, epochs=3))
    assert resumed.start_epoch == 2
    state = learnable_state(resumed)
    assert state.keys() == uninterrupted.keys() and all(torch.equal(state[k], uninterrupted[k]) for k in state)
    assert sorted(os.listdir(folder)) == ["checkpoint", "model.pth.tar-3"]
    assert (part / "run_complete.json").exists()
    logs = sorted(n for n in os.listdir(part) if n.startswith("log.txt"))
    assert _logged_accuracies(part / logs[-1])[-1] == _logged_accuracies(full / "log.txt")[-1]

    recorded = json.loads((part / "prompt_config.json").read_text())
    assert recorded["image"]["prompt_lengths"] == [2, 1] and recorded["text"]["prompt_lengths"] == [1, 0, 2]
    evaluation = tmp_path / "eval"
    run_train(["--eval-only", "--model-dir", str(part), "--load-epoch", "3"]
              + subnet_argv(dpl_data_root, dpl_clip, evaluation))
    assert _logged_accuracies(evaluation / "log.txt")[-1] == _logged_accuracies(full / "log.txt")[-1]
    with pytest.raises(FileNotFoundError, match=r"checkpoints in .*MultiModalPromptLearner: model.pth.tar-3 "):
        run_train(["--eval-only", "--model-dir", str(part), "--load-epoch", "2"]
                  + subnet_argv(dpl_data_root, dpl_clip, tmp_path / "eval2"))
