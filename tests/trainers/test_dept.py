"""DePT's CAT head on the trainer layer (trainers/dept.py): tiny random CLIP, Toy, CPU.

* logits and loss equal a hand computation on the raw features, fusing logits and probabilities;
* L_CAT reaches the head and the prompts (text branch; image branch for MaPLe's and the subnet's prompts);
* rows of the head are chosen by class name; unknown classes get ITM logits only;
* a release-layout whole-model checkpoint loads and gives the release's logits;
* DePT over TrainerSubnet learns on Toy; resume is exact; the learning rates per group and epoch;
* bad input: no provider features, a head with no shared class, a fusion weight outside [0, 1].
"""
import json
import math
import os

import pytest
import torch
import torch.nn.functional as F

from dassl.utils import CheckpointError, ConfigError
from dpl_helpers import SUBNET_YAML, TOY_YAML, run_train
from trainers.dept import DePTHead
from trainers.heads import ClassificationHead
from trainers.model import Features

REPO_ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
FP32 = ("TRAINER.COOP.PREC", "fp32", "TRAINER.COOP.N_CTX", "4")
LAMBDA = 0.7


def normalise(x):
    return x / x.norm(dim=-1, keepdim=True)


def randomise_head(head, seed=0):
    """Non-trivial FiLM and classifier values, so every tensor of the hand computation matters."""
    generator = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for name, p in head.named_parameters():
            noise = torch.randn(p.shape, generator=generator)
            p.copy_(1.0 + 0.3 * noise if name.endswith("scale") else 0.5 * noise)


def raw_coop_features(trainer, image):
    """CoOp's raw features by hand: the frozen image tower; the prompted text tower."""
    model = trainer.model
    raw_image = model.image_encoder(image.type(model.dtype)).float()
    embeddings, ids = model.prompt_learner.text_input()
    raw_text = model.text_encoder(embeddings.type(model.dtype), ids).float()
    return raw_image, raw_text


def film(transform, x):
    return transform.scale * x + transform.bias


# ---------------------------------------------------------------------------
# The head against a hand computation
# ---------------------------------------------------------------------------
@pytest.mark.parametrize("fusion", ["logits", "probs"])
def test_logits_and_loss_equal_a_hand_computation(make_trainer, fusion):
    trainer = make_trainer("ExtrasLinearProbeCoOp", *FP32, "TRAINER.DEPT.FUSION", fusion)
    head = trainer.model.head
    assert isinstance(head, DePTHead) and isinstance(head.inner, ClassificationHead)
    assert head.weights == pytest.approx({"ce": 1 - LAMBDA, "cat": LAMBDA})
    randomise_head(head)
    image, label = trainer.parse_batch_train(next(iter(trainer.train_loader_x)))

    with torch.no_grad():
        raw_image, raw_text = raw_coop_features(trainer, image)
        scale = trainer.model.logit_scale.exp()
        itm = scale * normalise(raw_image) @ normalise(raw_text).t()
        stacked = torch.cat([film(head.film_text, raw_text[label]), film(head.film_img, raw_image)])
        cat_train = stacked @ head.linear.weight.t() + head.linear.bias
        expected_loss = (1 - LAMBDA) * F.cross_entropy(itm, label) + LAMBDA * F.cross_entropy(
            cat_train, torch.cat([label, label]))
        cat_test = film(head.film_img, raw_image) @ head.linear.weight.t() + head.linear.bias
        if fusion == "logits":  # the release: raw logits
            expected_test = (1 - LAMBDA) * itm + LAMBDA * cat_test
        else:  # the paper: probabilities
            expected_test = (1 - LAMBDA) * itm.softmax(-1) + LAMBDA * cat_test.softmax(-1)

        trainer.set_model_mode("train")
        loss, terms, logits = trainer.compute_loss(image, label)
        assert torch.allclose(logits, itm, atol=1e-4)  # training logits: ITM (accuracy, inner terms)
        assert loss.item() == pytest.approx(expected_loss.item(), abs=1e-5)
        assert set(terms) == {"ce", "cat"}
        trainer.set_model_mode("eval")
        assert torch.allclose(trainer.model_inference(image), expected_test, atol=1e-4)


def test_the_similarity_type_scores_transformed_features_against_transformed_class_text(make_trainer):
    trainer = make_trainer("ExtrasLinearProbeCoOp", *FP32, "TRAINER.LINEAR_PROBE.TYPE", "similarity")
    head = trainer.model.head
    randomise_head(head)
    image, label = trainer.parse_batch_train(next(iter(trainer.train_loader_x)))
    with torch.no_grad():
        raw_image, raw_text = raw_coop_features(trainer, image)
        scale = trainer.model.logit_scale.exp()
        itm = scale * normalise(raw_image) @ normalise(raw_text).t()
        classes = normalise(film(head.film_text, raw_text))
        rows = torch.cat([film(head.film_text, raw_text[label]), film(head.film_img, raw_image)])
        cat_train = scale * normalise(rows) @ classes.t()
        expected_loss = (1 - LAMBDA) * F.cross_entropy(itm, label) + LAMBDA * F.cross_entropy(
            cat_train, torch.cat([label, label]))
        expected_test = (1 - LAMBDA) * itm + LAMBDA * scale * normalise(film(head.film_img, raw_image)) @ classes.t()

        trainer.set_model_mode("train")
        loss, _, _ = trainer.compute_loss(image, label)
        assert loss.item() == pytest.approx(expected_loss.item(), abs=1e-5)
        trainer.set_model_mode("eval")
        assert torch.allclose(trainer.model_inference(image), expected_test, atol=1e-4)
    with pytest.raises(ConfigError, match=r"TRAINER.LINEAR_PROBE.TYPE is 'cosine'; expected one of \['linear', 'similarity'\]"):
        make_trainer("ExtrasLinearProbeCoOp", *FP32, "TRAINER.LINEAR_PROBE.TYPE", "cosine")


def test_the_cat_loss_reaches_the_head_and_the_text_prompts_not_the_frozen_image_tower(make_trainer):
    trainer = make_trainer("ExtrasLinearProbeCoOp", *FP32)
    image, label = trainer.parse_batch_train(next(iter(trainer.train_loader_x)))
    features = trainer.model.forward_features(image, extras=trainer.model.head.wants)
    trainer.model.head.losses(features, trainer.model.head.logits(features), label)["cat"].backward()
    head = trainer.model.head
    assert all(p.grad is not None and p.grad.abs().sum() > 0 for p in head.parameters())
    assert trainer.model.prompt_learner.ctx.grad.abs().sum() > 0
    # the image half alone: CoOp's image tower has no prompt, so nothing upstream of the head learns from it
    trainer.model.zero_grad(set_to_none=True)
    raw_image = trainer.model.forward_features(image, extras=head.wants).extras["raw_features"][0]
    F.cross_entropy(head.cat_logits(raw_image), label).backward()
    assert trainer.model.prompt_learner.ctx.grad is None


def image_half_reaches_prompts(trainer):
    """The CAT loss of the image rows alone gives the provider a gradient (image prompts)."""
    head = trainer.model.head
    image, label = trainer.parse_batch_train(next(iter(trainer.train_loader_x)))
    raw_image = trainer.model.forward_features(image, extras=head.wants).extras["raw_features"][0]
    F.cross_entropy(head.cat_logits(raw_image), label).backward()
    return {n for n, p in trainer.model.prompt_learner.named_parameters() if p.grad is not None and p.grad.abs().sum() > 0}


def test_maple_image_branch_carries_the_cat_gradient_to_its_prompts(make_trainer):
    trainer = make_trainer("ExtrasLinearProbeMaPLe", "TRAINER.MAPLE.PREC", "fp32", "TRAINER.MAPLE.PROMPT_DEPTH", "2")
    reached = image_half_reaches_prompts(trainer)
    assert reached, "no MaPLe prompt got a gradient from the image half of L_CAT"


# ---------------------------------------------------------------------------
# Rows by class name
# ---------------------------------------------------------------------------
def make_head(classnames, dim=8, subsample="all", **kwargs):
    head = DePTHead(ClassificationHead(), classnames, dim, LAMBDA, subsample=subsample, **kwargs)
    return head


def fake_features(n_cls, batch=3, dim=8, seed=1):
    generator = torch.Generator().manual_seed(seed)
    raw_image = torch.randn(batch, dim, generator=generator)
    raw_text = torch.randn(n_cls, dim, generator=generator)
    return Features(normalise(raw_image), normalise(raw_text), torch.tensor(100.0),
                    {"raw_features": (raw_image, raw_text)})


def test_rows_are_chosen_by_class_name_and_unknown_classes_get_itm_only():
    trained = make_head(["cat", "dog", "fox", "owl"])
    randomise_head(trained)
    state = trained.state_dict()
    assert state["_extra_state"] == {"classnames": ["cat", "dog", "fox", "owl"]}

    subset = make_head(["owl", "cat", "eel"])  # reordered, one class the head never saw
    subset.load_state_dict(state)
    assert subset.known.tolist() == [True, True, False]
    assert torch.equal(subset.linear.weight[:2], trained.linear.weight[[3, 0]])
    assert torch.equal(subset.linear.bias[:2], trained.linear.bias[[3, 0]])
    subset.eval()
    features = fake_features(3)
    logits = subset.logits(features)
    itm = subset.inner.logits(features)
    cat = subset.cat_logits(features.extras["raw_features"][0])
    assert torch.allclose(logits[:, 2], itm[:, 2])  # unknown: ITM only
    assert torch.allclose(logits[:, :2], (1 - LAMBDA) * itm[:, :2] + LAMBDA * cat[:, :2])

    new = make_head(["eel", "yak"], subsample="new")  # base-to-new, new classes: the head is off
    new.load_state_dict(state)
    new.eval()
    assert not new.known.any()
    assert torch.equal(new.logits(fake_features(2)), new.inner.logits(fake_features(2)))


def test_a_head_that_shares_no_class_with_the_dataset_is_refused():
    trained = make_head(["cat", "dog"])
    with pytest.raises(ConfigError, match=r"knows the classes \['cat', 'dog'\], none of the dataset's \['eel'\]"):
        make_head(["eel"]).load_state_dict(trained.state_dict())


def test_the_release_rule_on_the_dataset_name_is_available():
    trained = make_head(["cat", "dog"])
    official = make_head(["cat", "dog"], head_at_test="official", release_rule_applies=False)
    official.load_state_dict(trained.state_dict())
    assert not official.known.any()


# ---------------------------------------------------------------------------
# The release's checkpoint layout
# ---------------------------------------------------------------------------
def write_release_checkpoint(trainer, folder, epoch=10, n_cls=None):
    """The release's layout: the whole CustomCLIP state dict under PromptLearner/model.pth.tar-N
    (a head over ``n_cls`` classes, by default the dataset's)."""
    generator = torch.Generator().manual_seed(3)
    model = trainer.model
    dim = model.text_encoder.text_projection.shape[1]
    n_cls = n_cls or len(trainer.dm.dataset.classnames)
    state = {f"prompt_learner.{k}": v.clone() for k, v in model.prompt_learner.state_dict().items()}
    state["prompt_learner.ctx"] = torch.randn(state["prompt_learner.ctx"].shape, generator=generator) * 0.02
    state.update({k: v.clone() for k, v in model.state_dict().items()
                  if k.startswith(("image_encoder.", "text_encoder.", "logit_scale"))})
    release_head = {
        "film_lp_img.scale": 1 + 0.3 * torch.randn(dim, generator=generator),
        "film_lp_img.bias": 0.1 * torch.randn(dim, generator=generator),
        "film_lp_text.scale": 1 + 0.3 * torch.randn(dim, generator=generator),
        "film_lp_text.bias": 0.1 * torch.randn(dim, generator=generator),
        "linear_probe_proj.weight": torch.randn(n_cls, dim, generator=generator),
        "linear_probe_proj.bias": torch.randn(n_cls, generator=generator),
    }
    state.update(release_head)
    os.makedirs(folder / "PromptLearner")
    torch.save({"state_dict": state, "epoch": epoch, "optimizer": None, "scheduler": None},
               folder / "PromptLearner" / f"model.pth.tar-{epoch}")
    return state


def release_logits(state, model, image):
    """The release's forward from its own tensors (fp32): (1 - lambda) ITM + lambda CAT."""
    raw_image = model.image_encoder(image).float()
    embeddings, ids = model.prompt_learner.text_input()
    raw_text = model.text_encoder(embeddings, ids).float()
    itm = model.logit_scale.exp() * normalise(raw_image) @ normalise(raw_text).t()
    x = state["film_lp_img.scale"] * raw_image + state["film_lp_img.bias"]
    cat = x @ state["linear_probe_proj.weight"].t() + state["linear_probe_proj.bias"]
    return (1 - LAMBDA) * itm + LAMBDA * cat, itm


def test_a_release_checkpoint_loads_and_gives_the_release_logits(make_trainer, tmp_path):
    base = ("DATASET.SUBSAMPLE_CLASSES", "base")
    trainer = make_trainer("ExtrasLinearProbeCoOp", *FP32, *base)
    assert trainer.get_model_names() == ["PromptLearner", "head"]
    state = write_release_checkpoint(trainer, tmp_path / "release")

    fresh = make_trainer("ExtrasLinearProbeCoOp", *FP32, *base)
    fresh.load_model(str(tmp_path / "release"), epoch=10)
    assert torch.equal(fresh.model.prompt_learner.ctx, state["prompt_learner.ctx"])
    assert torch.equal(fresh.model.head.film_text.scale, state["film_lp_text.scale"])
    fresh.set_model_mode("eval")
    image, _ = fresh.parse_batch_test(next(iter(fresh.test_loader)))
    with torch.no_grad():
        expected, _ = release_logits(state, fresh.model, image)
        assert torch.allclose(fresh.model_inference(image), expected, atol=1e-4)

    # the same checkpoint on the new classes: no class list, so the release's rule: ITM only
    new = make_trainer("ExtrasLinearProbeCoOp", *FP32, "DATASET.SUBSAMPLE_CLASSES", "new")
    new.load_model(str(tmp_path / "release"), epoch=10)
    new.set_model_mode("eval")
    image, _ = new.parse_batch_test(next(iter(new.test_loader)))
    with torch.no_grad():
        _, itm = release_logits(state, new.model, image)
        assert torch.allclose(new.model_inference(image), itm, atol=1e-4)


def test_a_release_checkpoint_evaluates_from_the_command_line(make_argv, tmp_path, make_trainer):
    base = ("DATASET.SUBSAMPLE_CLASSES", "base")
    trainer = make_trainer("ExtrasLinearProbeCoOp", *FP32, *base)
    write_release_checkpoint(trainer, tmp_path / "release", epoch=4)
    out = tmp_path / "eval"
    run_train(make_argv("ExtrasLinearProbeCoOp", *FP32, *base, output_dir=out,
                        flags=("--eval-only", "--model-dir", tmp_path / "release", "--load-epoch", "4")))
    assert "* accuracy:" in (out / "log.txt").read_text()


def test_a_release_maple_checkpoint_gives_the_release_predictions_file(run_train, make_argv, tmp_path):
    """ExtrasLinearProbeMaPLe's folder: MultiModalPromptLearner/ with the whole model in fp16 (the release
    runs MaPLe in fp16 only) plus its head; evaluated with --eval-only and TEST.SAVE_PREDICTIONS."""
    import numpy as np

    from test_maple import OPTS as MAPLE_OPTS, SIZE, class_names, reference_logits
    from clip.tiny import save_tiny_clip

    clip_path = save_tiny_clip(str(tmp_path / "maple_clip.pt"), "ViT", seed=2, vision_layers=3,
                               transformer_layers=3, vision_width=192, image_resolution=SIZE)
    base = ("DATASET.SUBSAMPLE_CLASSES", "base", "TRAINER.MAPLE.PROMPT_DEPTH", "2")
    argv = lambda *flags, out: make_argv("ExtrasLinearProbeMaPLe", *MAPLE_OPTS, *base, clip_path=clip_path,  # noqa: E731
                                         output_dir=out, flags=flags)
    source = run_train(argv("--no-train", out=tmp_path / "source"))
    generator = torch.Generator().manual_seed(4)
    whole = {k: v for k, v in source.model.state_dict().items() if not k.startswith("head.")}
    for key in [k for k in whole if k.startswith("prompt_learner.") and whole[k].is_floating_point()]:
        whole[key] = whole[key] + 0.05 * torch.randn(whole[key].shape, generator=generator)
    whole = {k: v.half() if v.is_floating_point() else v for k, v in whole.items()}
    dim, n_cls = source.model.head.linear.in_features, len(source.dm.dataset.classnames)
    whole.update({"film_lp_img.scale": 1 + 0.3 * torch.randn(dim, generator=generator),
                  "film_lp_img.bias": 0.1 * torch.randn(dim, generator=generator),
                  "film_lp_text.scale": 1 + 0.3 * torch.randn(dim, generator=generator),
                  "film_lp_text.bias": 0.1 * torch.randn(dim, generator=generator),
                  "linear_probe_proj.weight": torch.randn(n_cls, dim, generator=generator).half(),
                  "linear_probe_proj.bias": torch.randn(n_cls, generator=generator).half()})
    os.makedirs(tmp_path / "release" / "MultiModalPromptLearner")
    torch.save({"state_dict": whole, "epoch": 10, "optimizer": {}, "scheduler": {}},
               tmp_path / "release" / "MultiModalPromptLearner" / "model.pth.tar-10")

    loaded = run_train(argv("--eval-only", "--model-dir", tmp_path / "release", "--load-epoch", "10",
                            out=tmp_path / "eval") + ["TEST.SAVE_PREDICTIONS", "True"])
    saved = np.load(tmp_path / "eval" / "predictions_test.npz")
    learned = {k[len("prompt_learner."):]: v.float() for k, v in whole.items() if k.startswith("prompt_learner.")}
    images = torch.cat([b["img"] for b in loaded.test_loader])
    itm, raw_image = reference_logits(clip_path, class_names(loaded), learned, images, depth=2, with_raw_image=True)
    x = whole["film_lp_img.scale"] * raw_image + whole["film_lp_img.bias"]
    cat = x @ whole["linear_probe_proj.weight"].float().t() + whole["linear_probe_proj.bias"].float()
    expected = (1 - LAMBDA) * itm + LAMBDA * cat
    torch.testing.assert_close(torch.from_numpy(saved["logits"]), expected, atol=1e-3, rtol=1e-4)
    assert saved["labels"].tolist() == [b for batch in loaded.test_loader for b in batch["label"].tolist()]


# ---------------------------------------------------------------------------
# Training: over TrainerSubnet, resume, learning rates
# ---------------------------------------------------------------------------
def subnet_run(dpl_data_root, dpl_clip, out, config, *opts, epochs=4):
    argv = ["--root", dpl_data_root, "--output-dir", out, "--seed", 1, "--trainer", "TrainerSubnet",
            "--dataset-config-file", TOY_YAML, "--config-file", SUBNET_YAML,
            "INPUT.SIZE", "(32, 32)", "DATALOADER.NUM_WORKERS", "0", "DATALOADER.TEST.BATCH_SIZE", "32",
            "DATASET.NUM_SHOTS", "8", "TRAIN.PRINT_FREQ", "100", "USE_CUDA", "False",
            "MODEL.BACKBONE.PATH", dpl_clip, "OPTIM.MAX_EPOCH", epochs,
            "TRAINER.TRAINERSUBNET.PROMPT_CONFIG", config, "TRAINER.DEPT.ENABLED", "True",
            "TRAINER.TRAINERSUBNET.CTX_INIT", "default", "OPTIM.NAME", "adam", "OPTIM.LR", "0.01",
            "OPTIM.LR_EXP", "3.0", "OPTIM.WARMUP_EPOCH", "0", *opts]
    return run_train(argv)


def zero_shot_accuracy(trainer):
    """Plain CLIP ("a photo of a {class}.", no prompts) on the trainer's test split, in %."""
    import clip
    from trainers.common import tokenize

    reference = clip.build_model(clip.load_state_dict(trainer.cfg.MODEL.BACKBONE.PATH)).float()
    names = trainer.dm.dataset.classnames
    correct = total = 0
    with torch.no_grad():
        text = normalise(reference.encode_text(tokenize([f"a photo of a {n}." for n in names], reference)))
        for batch in trainer.test_loader:
            pred = (normalise(reference.encode_image(batch["img"])) @ text.t()).argmax(-1)
            correct += int((pred == batch["label"]).sum())
            total += len(pred)
    return 100.0 * correct / total


def test_dept_over_trainersubnet_learns_on_toy_and_reaches_its_image_prompts(dpl_data_root, dpl_clip, tmp_path):
    config = tmp_path / "c.json"
    config.write_text(json.dumps({"image": {"prompt_lengths": [4, 4]}, "text": {"prompt_lengths": [4, 4, 4]}}))
    out = tmp_path / "train"
    trainer = subnet_run(dpl_data_root, dpl_clip, out, str(config))
    assert isinstance(trainer.model.head, DePTHead)
    log = (out / "log.txt").read_text()
    assert "loss_cat" in log
    accuracies = [float(line.split(":")[1].strip().rstrip("%")) for line in log.splitlines()
                  if line.startswith("* accuracy:")]
    assert accuracies[-1] > zero_shot_accuracy(trainer) + 10.0, accuracies
    saved = torch.load(out / "head" / "model.pth.tar-4", weights_only=False)["state_dict"]
    assert saved["_extra_state"]["classnames"] == trainer.dm.dataset.classnames
    assert not any(k.startswith(("image_encoder", "text_encoder")) for k in saved)
    # the image half of L_CAT reaches the subnet's image prompts
    reached = image_half_reaches_prompts(trainer)
    assert any(name.startswith("ctx_img") for name in reached), reached


PROMPTSRC_DEPT = ("TRAINER.PROMPTSRC.PREC", "fp32", "TRAINER.PROMPTSRC.PROMPT_DEPTH_TEXT", "2",
                  "TRAINER.PROMPTSRC.PROMPT_DEPTH_VISION", "2", "TRAINER.PROMPTSRC.GPA_MEAN", "2",
                  "TRAINER.PROMPTSRC.GPA_STD", "1", "TRAINER.DEPT.ENABLED", "True")


@pytest.mark.parametrize("trainer_name, opts", [
    ("ExtrasLinearProbeCoOp", FP32),
    ("PromptSRC", PROMPTSRC_DEPT),  # GPA's running sum is checkpointed beside the prompts and the head
])
def test_resume_is_exact_head_included(make_trainer, tmp_path, monkeypatch, trainer_name, opts):
    opts = (*opts, "OPTIM.MAX_EPOCH", "2", "OPTIM.NAME", "adam", "OPTIM.LR", "0.01", "OPTIM.WARMUP_EPOCH", "0",
            "TRAIN.CHECKPOINT_FREQ", "1")
    straight = make_trainer(trainer_name, *opts, output_dir=tmp_path / "straight")
    straight.train()

    class Killed(Exception):
        pass

    interrupted = make_trainer(trainer_name, *opts, output_dir=tmp_path / "resumed")
    original = type(interrupted).forward_backward

    def forward_backward(self, batch):
        if self.epoch == 1:
            raise Killed()  # in epoch 2, after epoch 1's checkpoint
        return original(self, batch)

    monkeypatch.setattr(type(interrupted), "forward_backward", forward_backward)
    with pytest.raises(Killed):
        interrupted.train()
    monkeypatch.setattr(type(interrupted), "forward_backward", original)
    resumed = make_trainer(trainer_name, *opts, output_dir=tmp_path / "resumed")
    resumed.train()
    assert resumed.start_epoch == 1 and isinstance(resumed.model.head, DePTHead)  # it resumed
    for name, value in straight.model.state_dict().items():
        if name.endswith("_extra_state"):
            assert resumed.model.state_dict()[name] == value, name
        else:
            assert torch.equal(resumed.model.state_dict()[name], value), name
    trained = [n for n, p in straight.model.named_parameters() if p.requires_grad]
    assert any(n.startswith("head.") for n in trained) and any(n.startswith("prompt_learner.") for n in trained)


@pytest.mark.parametrize("trainer_name, yaml, lr", [
    ("ExtrasLinearProbeCoOp", "vit_b16_ep10_bs4_lr35.yaml", 0.0035),
    ("ExtrasLinearProbeCoCoOp", "vit_b16_c4_ep10_batch1_ctxv1.yaml", 0.002),
])
def test_the_groups_get_the_release_learning_rates_at_every_epoch(make_trainer, trainer_name, yaml, lr):
    config = os.path.join(REPO_ROOT, "configs", "trainers", trainer_name, yaml)
    prec = "TRAINER.COOP.PREC" if trainer_name.endswith("CoOp") and "CoCoOp" not in trainer_name else "TRAINER.COCOOP.PREC"
    trainer = make_trainer(trainer_name, prec, "fp32", "OPTIM.MAX_EPOCH", "10", config_file=config)
    head_params = {id(p) for p in trainer.model.head.parameters()}
    groups = trainer.optim.param_groups
    assert [all(id(p) in head_params for p in g["params"]) for g in groups] == [False, True]
    assert [g["initial_lr"] for g in groups] == pytest.approx([lr, lr * 6.5])
    seen = []
    for epoch in range(10):
        seen.append([g["lr"] for g in groups])
        trainer.sched.step()
    assert seen[0] == pytest.approx([1e-5, 1e-5])  # the constant warm-up: every group at 1e-5
    for epoch in range(1, 10):  # then the cosine, recounted from the end of the warm-up (Dassl)
        factor = 0.5 * (1 + math.cos(math.pi * (epoch - 1) / 10))
        assert seen[epoch] == pytest.approx([lr * factor, lr * 6.5 * factor]), epoch


# ---------------------------------------------------------------------------
# Bad input
# ---------------------------------------------------------------------------
def test_dept_on_a_provider_without_features_is_refused(make_trainer):
    with pytest.raises(ConfigError, match="needs a prompt provider whose class text goes through the text encoder"):
        make_trainer("ZeroshotCLIP", "TRAINER.DEPT.ENABLED", "True")


@pytest.mark.parametrize("weight", ["1.5", "-0.1"])
def test_a_fusion_weight_outside_zero_one_is_refused(make_trainer, weight):
    with pytest.raises(ConfigError, match=r"TRAINER.LINEAR_PROBE.WEIGHT is .*; expected a fusion weight in \[0, 1\]"):
        make_trainer("ExtrasLinearProbeCoOp", *FP32, "TRAINER.LINEAR_PROBE.WEIGHT", weight)


@pytest.mark.parametrize("trainer_name, opts, terms", [
    ("KgCoOp", FP32, {"ce", "kg", "cat"}),
    ("CoCoOp", ("TRAINER.COCOOP.PREC", "fp32"), {"ce", "cat"}),
    ("PromptSRC", ("TRAINER.PROMPTSRC.PREC", "fp32", "TRAINER.PROMPTSRC.PROMPT_DEPTH_TEXT", "2",
                   "TRAINER.PROMPTSRC.PROMPT_DEPTH_VISION", "2", "OPTIM.MAX_EPOCH", "2",
                   "TRAINER.PROMPTSRC.GPA_MEAN", "2"), {"ce", "text", "image", "kl", "cat"}),
])
def test_the_methods_own_terms_are_kept_beside_depts(make_trainer, trainer_name, opts, terms):
    trainer = make_trainer(trainer_name, *opts, "TRAINER.DEPT.ENABLED", "True")
    head = trainer.model.head
    inner_weights = dict(head.inner.weights)
    assert set(head.weights) == terms
    assert head.weights["ce"] == pytest.approx((1 - LAMBDA) * inner_weights["ce"])
    assert all(head.weights[t] == inner_weights[t] for t in terms - {"ce", "cat"})
    image, label = trainer.parse_batch_train(next(iter(trainer.train_loader_x)))
    loss, computed, _ = trainer.compute_loss(image, label)
    assert set(computed) == terms
    assert loss.item() == pytest.approx(sum(head.weights[t] * v.item() for t, v in computed.items()), rel=1e-5)


# ---------------------------------------------------------------------------
# ImageNet-A/-R: a release head over ImageNet's classes, sliced to the variant's
# ---------------------------------------------------------------------------
def write_imagenet_a(root, wnids, present):
    """``imagenet-adversarial/{classnames.txt, imagenet-a/<wnid>/*.jpg}`` with images for ``present`` only."""
    from PIL import Image

    folder = os.path.join(root, "imagenet-adversarial")
    os.makedirs(folder)
    with open(os.path.join(folder, "classnames.txt"), "w") as f:
        f.writelines(f"{wnid} class {wnid}\n" for wnid in wnids)
    generator = torch.Generator().manual_seed(0)
    for wnid in present:
        os.makedirs(os.path.join(folder, "imagenet-a", wnid))
        for k in range(2):
            pixels = (torch.rand(32, 32, 3, generator=generator) * 255).to(torch.uint8).numpy()
            Image.fromarray(pixels).save(os.path.join(folder, "imagenet-a", wnid, f"{k}.jpg"))


def test_a_release_head_over_imagenet_is_sliced_to_imagenet_a_rows(make_trainer, tmp_path):
    wnids = [f"n0{k}" for k in range(6)]
    present = [wnids[4], wnids[1], wnids[5]]  # listed out of order: rows follow classnames.txt
    write_imagenet_a(str(tmp_path / "data"), wnids, present)
    config = os.path.join(REPO_ROOT, "configs", "datasets", "imagenet_a.yaml")
    trainer = make_trainer("ExtrasLinearProbeCoOp", *FP32, root=str(tmp_path / "data"), dataset_config_file=config)
    assert trainer.dm.dataset.classnames == [f"class {w}" for w in sorted(present)]
    assert trainer.dm.dataset.parent_rows == [1, 4, 5]

    state = write_release_checkpoint(trainer, tmp_path / "release", n_cls=6)  # the release's 1000 rows, here 6
    trainer.load_model(str(tmp_path / "release"), epoch=10)
    head = trainer.model.head
    assert head.known.all()
    assert torch.equal(head.linear.weight, state["linear_probe_proj.weight"][[1, 4, 5]])
    assert torch.equal(head.linear.bias, state["linear_probe_proj.bias"][[1, 4, 5]])

    write_release_checkpoint(trainer, tmp_path / "other", n_cls=5)  # neither the variant's nor ImageNet's
    with pytest.raises(CheckpointError, match=r"has 5 classes and no class list; the dataset has 3.*parent dataset's 6"):
        trainer.load_model(str(tmp_path / "other"), epoch=10)


# ---------------------------------------------------------------------------
# PREC fp32 sees the release's weights: OpenAI's fp16 rounding of the matmul weights, then float
# ---------------------------------------------------------------------------
def test_fp32_runs_on_the_weights_the_release_loads(make_trainer, tmp_path):
    """The releases build CLIP with OpenAI's ``convert_weights`` (matmul weights to fp16) and then call
    ``.float()`` for PREC fp32. A file in fp32 whose values fp16 cannot hold shows whether we do the same."""
    from clip.tiny import save_tiny_clip

    path = save_tiny_clip(str(tmp_path / "fp32_clip.pt"), arch="ViT", seed=5)
    state = torch.load(path, map_location="cpu")
    generator = torch.Generator().manual_seed(1)
    state = {k: (v + 1e-4 * torch.randn(v.shape, generator=generator)).float() if v.is_floating_point() else v
             for k, v in state.items()}
    torch.save(state, path)
    rounded = {"text_projection", "visual.proj"}  # attributes; every Linear / Conv / attention tensor too
    is_matmul = (lambda k: k in rounded or k.endswith(("in_proj_weight", "in_proj_bias")) or ".c_fc." in k
                 or ".c_proj." in k or ".out_proj." in k or k == "visual.conv1.weight")

    trainer = make_trainer("ExtrasLinearProbeCoOp", *FP32, clip_path=path)
    model = trainer.model
    ours = {**{f"visual.{k}": v for k, v in model.image_encoder.state_dict().items()},
            **{k: v for k, v in model.text_encoder.state_dict().items()}}
    checked = {"matmul": 0, "kept": 0}
    for key, value in ours.items():
        if key not in state:
            continue
        release = state[key].half().float() if is_matmul(key) else state[key]
        assert value.dtype == torch.float32, key
        assert torch.equal(value, release), key
        checked["matmul" if is_matmul(key) else "kept"] += 1
        if is_matmul(key):
            assert not torch.equal(value, state[key]), key  # the rounding really happened
    assert checked["matmul"] > 10 and checked["kept"] > 5
