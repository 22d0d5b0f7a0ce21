"""ZeroshotCLIP(2), CoOp and CoCoOp on the Toy dataset with a tiny random CLIP (CPU).

A random CLIP puts all Toy images and all class prompts in nearly the same direction, so
zero-shot accuracy is near chance, and a context shared by all classes barely separates
them: it moves every class prompt the same way. Class-specific contexts (CoOp's CSC) can,
which is the setting used to show that CoOp learns (a few short epochs with Adam: SGD at
CoOp's learning rate needs far more steps). CoCoOp has no class-specific parameters and
learns less (over seeds 1-6: 32-54% against 25% zero-shot, CoOp-CSC 64-93%), so it is also
checked on the test loss of its initial prompts.
"""
import glob
import os
import re

import pytest
import torch
import torch.nn.functional as F

import clip
from dassl.utils import ConfigError
from trainers.common import (autocast, cast_clip, check_precision, load_clip_to_cpu,
                             resolve_precision)

# A few epochs of 12 steps (12 shots x 4 classes, batch 4): about a second each.
LEARN_OPTS = ("DATASET.NUM_SHOTS", "12", "OPTIM.NAME", "adam", "OPTIM.MAX_EPOCH", "5", "TEST.NO_TEST", "True")

FP32 = {
    "CoOp": ("TRAINER.COOP.PREC", "fp32"),
    "CoCoOp": ("TRAINER.COCOOP.PREC", "fp32"),
    "ZeroshotCLIP": ("TRAINER.ZSCLIP.PREC", "fp32"),
    "ZeroshotCLIP2": ("TRAINER.ZSCLIP.PREC", "fp32"),
}
REPO_ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def build(make_trainer, name, *opts, **kwargs):
    return make_trainer(name, *FP32[name], *opts, **kwargs)


@torch.no_grad()
def evaluate(trainer):
    """(accuracy %, mean cross-entropy) of ``trainer`` on its test split."""
    trainer.set_model_mode("eval")
    correct, total, loss = 0, 0, 0.0
    for batch in trainer.test_loader:
        image, label = trainer.parse_batch_test(batch)
        logits = trainer.model_inference(image).float()
        correct += (logits.argmax(dim=1) == label).sum().item()
        loss += F.cross_entropy(logits, label, reduction="sum").item()
        total += label.numel()
    return 100.0 * correct / total, loss / total


def clip_state(trainer):
    """Copies of every CLIP tensor (everything outside the prompt learner)."""
    return {k: v.clone() for k, v in trainer.model.state_dict().items() if not k.startswith("prompt_learner")}


# ---------------------------------------------------------------------------
# Learning
# ---------------------------------------------------------------------------
def test_coop_beats_zero_shot_and_trains_only_the_context(make_trainer):
    zero_shot_acc = build(make_trainer, "ZeroshotCLIP").test()

    coop = build(make_trainer, "CoOp", *LEARN_OPTS, "OPTIM.LR", "0.003",
                 "TRAINER.COOP.CSC", "True", "TRAINER.COOP.N_CTX", "4")
    untrained_acc, _ = evaluate(coop)
    ctx_before = coop.model.prompt_learner.ctx.detach().clone()
    clip_before = clip_state(coop)

    coop.train()
    trained_acc, _ = evaluate(coop)

    assert trained_acc > zero_shot_acc
    assert trained_acc > untrained_acc
    assert not torch.equal(coop.model.prompt_learner.ctx, ctx_before)
    for key, value in clip_state(coop).items():
        assert torch.equal(value, clip_before[key]), f"{key} changed during training"
    assert os.path.isfile(os.path.join(coop.output_dir, "prompt_learner", "model.pth.tar-5"))


def test_cocoop_beats_zero_shot_and_trains_ctx_and_meta_net(make_trainer):
    zero_shot_acc = build(make_trainer, "ZeroshotCLIP").test()
    cocoop = build(make_trainer, "CoCoOp", *LEARN_OPTS, "OPTIM.LR", "0.01", "TRAINER.COCOOP.N_CTX", "4")
    learner = cocoop.model.prompt_learner
    _, loss_before = evaluate(cocoop)
    before = {k: v.clone() for k, v in learner.state_dict().items()}
    clip_before = clip_state(cocoop)

    cocoop.train()
    acc_after, loss_after = evaluate(cocoop)

    assert loss_after < loss_before
    assert acc_after > zero_shot_acc
    for key in ("ctx", "meta_net.linear1.weight", "meta_net.linear2.weight"):
        assert not torch.equal(learner.state_dict()[key], before[key]), f"{key} was not trained"
    for key, value in clip_state(cocoop).items():
        assert torch.equal(value, clip_before[key]), f"{key} changed during training"


def test_cocoop_prompts_depend_on_the_image(make_trainer):
    cocoop = build(make_trainer, "CoCoOp", "TRAINER.COCOOP.N_CTX", "4")
    learner = cocoop.model.prompt_learner
    features = torch.randn(2, cocoop.model.image_encoder.output_dim)
    prompts = learner(features)  # (batch, n_cls, n_tokens, width)
    assert prompts.shape[:2] == (2, learner.n_cls)
    ctx = prompts[:, :, 1:1 + learner.n_ctx]
    assert not torch.allclose(ctx[0], ctx[1])  # each image its own context
    assert torch.equal(ctx[0, 0], ctx[0, 1])  # shared by the classes of one image


# ---------------------------------------------------------------------------
# Zero-shot
# ---------------------------------------------------------------------------
@pytest.mark.parametrize("name, n_templates", [("ZeroshotCLIP", 1), ("ZeroshotCLIP2", 8)])
def test_zero_shot_evaluates_and_logs_accuracy(make_trainer, capsys, name, n_templates):
    trainer = build(make_trainer, name)
    trainer.load_model("")  # what --eval-only does without --model-dir
    acc = trainer.test()
    out = capsys.readouterr().out
    assert f"Prompt templates ({n_templates})" in out
    match = re.search(r"\* accuracy: ([\d.]+)%", out)
    assert match and float(match.group(1)) == pytest.approx(acc, abs=0.05)
    assert trainer.get_model_names() == []
    with pytest.raises(ConfigError, match="--eval-only"):  # a user error: exit status 2
        trainer.train()


def test_zero_shot_classifier_is_the_normalised_template_prompt(make_trainer):
    trainer = build(make_trainer, "ZeroshotCLIP")
    names = trainer.dm.dataset.classnames
    text = clip.tokenize([f"a photo of a {name}." for name in names])
    reference = clip.build_model(clip.load_state_dict(trainer.cfg.MODEL.BACKBONE.PATH)).float()
    with torch.no_grad():
        expected = reference.encode_text(text).float()
    expected = expected / expected.norm(dim=-1, keepdim=True)
    assert torch.allclose(trainer.model.prompt_learner.text_features, expected, atol=1e-5)

    ensemble = build(make_trainer, "ZeroshotCLIP2").model.prompt_learner.text_features
    assert not torch.allclose(ensemble, expected, atol=1e-3)
    assert torch.allclose(ensemble.norm(dim=-1), torch.ones(len(names)))


def test_zero_shot_with_the_resnet_tiny_clip(make_trainer, tiny_rn_clip_path):
    clip_model = clip.build_model(clip.load_state_dict(tiny_rn_clip_path)).float()
    size = clip_model.visual.input_resolution
    trainer = build(make_trainer, "ZeroshotCLIP", "INPUT.SIZE", f"({size}, {size})",
                    clip_path=tiny_rn_clip_path)
    acc = trainer.test()
    names = trainer.dm.dataset.classnames
    with torch.no_grad():
        text = clip_model.encode_text(clip.tokenize([f"a photo of a {n}." for n in names]))
        text = text / text.norm(dim=-1, keepdim=True)
        correct = total = 0
        for batch in trainer.test_loader:
            image = clip_model.encode_image(batch["img"])
            pred = (image / image.norm(dim=-1, keepdim=True) @ text.t()).argmax(dim=1)
            correct += int((pred == batch["label"]).sum())
            total += len(pred)
    assert acc == pytest.approx(100.0 * correct / total)
    assert trainer.model.prompt_learner.text_features.shape == (len(names), clip_model.text_projection.shape[1])


# ---------------------------------------------------------------------------
# CoOp prompt layout
# ---------------------------------------------------------------------------
@pytest.mark.parametrize("position", ["end", "middle", "front"])
@pytest.mark.parametrize("csc", [False, True])
def test_coop_class_token_position_layout(make_cfg, position, csc):
    from trainers.coop import PromptLearner

    cfg = make_cfg("CoOp", "TRAINER.COOP.N_CTX", "4", "TRAINER.COOP.CSC", str(csc),
                   "TRAINER.COOP.CLASS_TOKEN_POSITION", position)
    clip_model = cast_clip(load_clip_to_cpu(cfg), "fp32")
    names = ["red circle", "yellow_cross"]
    learner = PromptLearner(cfg, names, clip_model)
    with torch.no_grad():
        learner.ctx.normal_()  # distinguishable from any word embedding
        prompts = learner()  # (n_cls, n_tokens, width)
        embed = clip_model.token_embedding

        for i, name in enumerate(names):
            ids = clip.tokenize(name.replace("_", " "))[0]
            name_len = int((ids != 0).sum()) - 2
            name_emb = embed(ids[1:1 + name_len])
            ctx = learner.ctx[i] if csc else learner.ctx
            sos, dot_eos = embed(ids[:1]), embed(clip.tokenize(".")[0][1:3])
            if position == "end":
                parts = [sos, ctx, name_emb, dot_eos]
            elif position == "middle":
                parts = [sos, ctx[:2], name_emb, ctx[2:], dot_eos]
            else:
                parts = [sos, name_emb, ctx, dot_eos]
            expected = torch.cat(parts)
            assert torch.allclose(prompts[i, :len(expected)], expected), f"{position}: {name}"
            # The text encoder reads the feature at the end-of-text position of the tokenized prompt.
            eot = learner.tokenized_prompts[i].argmax()
            assert eot == len(expected) - 1

    assert learner.ctx.shape == ((2, 4, clip_model.ln_final.weight.shape[0]) if csc else
                                 (4, clip_model.ln_final.weight.shape[0]))


def test_coop_ctx_init_uses_the_word_embeddings(make_cfg):
    from trainers.coop import PromptLearner

    cfg = make_cfg("CoOp", "TRAINER.COOP.CTX_INIT", "a photo of a")
    clip_model = cast_clip(load_clip_to_cpu(cfg), "fp32")
    learner = PromptLearner(cfg, ["red circle"], clip_model)
    ids = clip.tokenize("a photo of a")[0][1:5]
    with torch.no_grad():
        assert torch.equal(learner.ctx, clip_model.token_embedding(ids))
    assert learner.n_ctx == 4


# ---------------------------------------------------------------------------
# Precision
# ---------------------------------------------------------------------------
@pytest.mark.parametrize("name, key", [("CoOp", "TRAINER.COOP.PREC"), ("CoCoOp", "TRAINER.COCOOP.PREC")])
def test_fp16_on_cpu_falls_back_to_fp32_with_a_warning(make_trainer, name, key):
    with pytest.warns(UserWarning, match="fp32 on CPU"):
        trainer = make_trainer(name, key, "fp16")
    assert trainer.prec == "fp32"
    assert trainer.model.image_encoder.conv1.weight.dtype == torch.float32
    assert trainer.scaler is None


@pytest.mark.parametrize("name", ["coop", "cocoop"])
def test_fp16_weights_keep_dtypes_consistent(make_cfg, name):
    """The GPU fp16 path, run on CPU half kernels: prompts, meta-net and CLIP agree on dtype."""
    import importlib

    module = importlib.import_module(f"trainers.{name}")
    cfg = make_cfg("CoOp", "TRAINER.COOP.CSC", "True")
    clip_model = cast_clip(load_clip_to_cpu(cfg), "fp16")
    model = module.CustomCLIP(cfg, ["red circle", "green square"], clip_model)
    logits = model(torch.randn(2, 3, 32, 32))
    logits.logsumexp(dim=1).sum().backward()
    assert model.prompt_learner.ctx.dtype == torch.float16  # OpenAI's fp16 layout
    assert logits.dtype == torch.float32  # every head returns float32 logits
    assert torch.isfinite(logits).all()
    assert model.prompt_learner.ctx.grad is not None


def test_bf16_trains_on_cpu(make_trainer):
    trainer = make_trainer("CoOp", "TRAINER.COOP.PREC", "bf16")
    assert trainer.prec == "bf16"
    assert trainer.model.prompt_learner.ctx.dtype == torch.float32  # master weights
    ctx_before = trainer.model.prompt_learner.ctx.detach().clone()
    trainer.train()
    assert not torch.equal(trainer.model.prompt_learner.ctx, ctx_before)
    # the logged accuracy is the bf16 model's own: recomputed here from its logits
    assert trainer.test() == pytest.approx(evaluate(trainer)[0])


def test_precision_helpers():
    cpu = torch.device("cpu")
    assert resolve_precision("bf16", cpu) == "bf16"
    assert resolve_precision("fp32", cpu) == "fp32"
    with pytest.warns(UserWarning):
        assert resolve_precision("amp", cpu) == "fp32"
    with pytest.raises(ValueError, match="fp16.*fp32.*amp.*bf16"):
        check_precision("half")
    with autocast("bf16", cpu):
        assert (torch.ones(2, 2) @ torch.ones(2, 2)).dtype == torch.bfloat16
    with autocast("fp32", cpu):
        assert (torch.ones(2, 2) @ torch.ones(2, 2)).dtype == torch.float32


@pytest.mark.parametrize("name, key", [("CoOp", "TRAINER.COOP.PREC"), ("CoCoOp", "TRAINER.COCOOP.PREC"),
                                       ("ZeroshotCLIP", "TRAINER.ZSCLIP.PREC")])
def test_unknown_precision_is_refused_before_anything_is_built(make_trainer, name, key):
    with pytest.raises(ValueError, match="expected one of"):
        make_trainer(name, key, "fp8")


def test_unknown_class_token_position_is_refused(make_trainer):
    with pytest.raises(ValueError, match="end.*middle.*front"):
        make_trainer("CoOp", "TRAINER.COOP.CLASS_TOKEN_POSITION", "start")


# ---------------------------------------------------------------------------
# Checkpoints
# ---------------------------------------------------------------------------
def logged_accuracy(output_dir):
    """The last '* accuracy: X%' of <output_dir>/log.txt."""
    with open(os.path.join(output_dir, "log.txt")) as f:
        return float(re.findall(r"\* accuracy: ([\d.]+)%", f.read())[-1])


@pytest.mark.parametrize("name, extra", [("CoOp", ["TRAINER.COOP.CSC", "True"]),
                                         ("CoCoOp", ["TRAINER.COCOOP.N_CTX", "4"])])
def test_eval_only_reproduces_the_accuracy_of_training(run_train, make_argv, tmp_path, name, extra):
    train_dir, eval_dir = tmp_path / "train", tmp_path / "eval"
    trained = run_train(make_argv(name, *FP32[name], *extra, output_dir=train_dir))
    evaluated = run_train(make_argv(name, *FP32[name], *extra, output_dir=eval_dir,
                                    flags=("--eval-only", "--model-dir", train_dir, "--load-epoch", 1)))

    assert logged_accuracy(eval_dir) == logged_accuracy(train_dir)
    assert torch.equal(evaluated.model.prompt_learner.ctx, trained.model.prompt_learner.ctx)
    assert not os.path.exists(eval_dir / "prompt_learner")  # evaluation writes no checkpoint


def test_load_model_drops_class_buffers_so_base_prompts_load_on_new_classes(make_trainer, tmp_path):
    base = build(make_trainer, "CoOp", "DATASET.SUBSAMPLE_CLASSES", "base", output_dir=str(tmp_path / "base"))
    base.train()
    new = build(make_trainer, "CoOp", "DATASET.SUBSAMPLE_CLASSES", "new")
    assert set(new.dm.dataset.classnames).isdisjoint(base.dm.dataset.classnames)
    suffix_before = new.model.prompt_learner.token_suffix.clone()

    new.load_model(str(tmp_path / "base"), epoch=1)

    assert torch.equal(new.model.prompt_learner.ctx, base.model.prompt_learner.ctx)
    assert torch.equal(new.model.prompt_learner.token_suffix, suffix_before)  # kept its own classes


def test_load_model_errors_name_the_missing_file_and_the_mismatch(make_trainer, tmp_path):
    trained = build(make_trainer, "CoOp", "TRAINER.COOP.N_CTX", "4", output_dir=str(tmp_path / "run"))
    trained.train()
    other = build(make_trainer, "CoOp", "TRAINER.COOP.N_CTX", "4")
    with pytest.raises(FileNotFoundError, match=r"model\.pth\.tar-7"):
        other.load_model(str(tmp_path / "run"), epoch=7)

    wider = build(make_trainer, "CoOp", "TRAINER.COOP.N_CTX", "8")
    with pytest.raises(RuntimeError, match="N_CTX"):
        wider.load_model(str(tmp_path / "run"), epoch=1)


# ---------------------------------------------------------------------------
# Configuration
# ---------------------------------------------------------------------------
def test_input_size_mismatch_gives_a_clear_error(make_trainer):
    with pytest.raises(ValueError, match=r"INPUT\.SIZE is \(224, 224\).*32x32"):
        build(make_trainer, "CoOp", "INPUT.SIZE", "(224, 224)")


def test_missing_backbone_gives_a_clear_error(make_cfg):
    cfg = make_cfg("CoOp")
    cfg.defrost()
    cfg.MODEL.BACKBONE.PATH = ""
    cfg.MODEL.BACKBONE.NAME = ""
    with pytest.raises(ValueError, match="MODEL.BACKBONE.NAME"):
        load_clip_to_cpu(cfg)


@pytest.mark.parametrize("path", sorted(glob.glob(os.path.join(REPO_ROOT, "configs", "trainers", "Co*Op", "*.yaml"))))
def test_trainer_configs_merge(make_cfg, path):
    trainer = os.path.basename(os.path.dirname(path))
    cfg = make_cfg(trainer, config_file=path, fast=False)
    assert cfg.OPTIM.NAME == "sgd" or path.endswith("_val.yaml")
    assert cfg.MODEL.BACKBONE.NAME in clip.available_models()
    assert tuple(cfg.INPUT.SIZE) == (224, 224)
