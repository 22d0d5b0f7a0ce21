"""MaPLe (trainers/maple.py) against a re-statement of the release's formulation written here with
clip/ alone, on a tiny random CLIP whose towers differ in width (text 128, vision 192) and whose input
is not 32 pixels (48), so a swapped width or a hard-coded size cannot pass.

The release's mechanics (docs/baselines.md, MaPLe): text layer 0 = "a photo of a {class}." with
positions 1..n replaced by ctx; vision layer 0 = proj(ctx), n tokens appended after the positional
embedding; blocks i = 1..J-1: text positions [1, 1 + n) <- compound_prompts_text[i-1], the last n
vision positions <- compound_prompt_projections[i-1](compound_prompts_text[i-1]); blocks >= J get
nothing; every inserted tensor rounded to fp16 (an option, on by default).
"""
import contextlib
import os
import subprocess
import sys
import warnings

import pytest
import torch
import torch.nn.functional as F

import clip
from dassl.utils import ConfigError
from dpl_helpers import logits_of, normalise, randomise

ATOL, RTOL = 1e-5, 1e-5
SIZE = 48
OPTS = ("TRAINER.MAPLE.PREC", "fp32", "TRAINER.MAPLE.PROMPT_DEPTH", "2", "INPUT.SIZE", f"({SIZE}, {SIZE})")
REPO_ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


@pytest.fixture(scope="session")
def maple_clip(tmp_path_factory):
    """Three blocks per tower (depth 2 leaves a carried-over block in each), text width 128, vision 192."""
    from clip.tiny import save_tiny_clip

    return save_tiny_clip(str(tmp_path_factory.mktemp("maple_clip") / "tiny_vit.pt"), "ViT", vision_layers=3,
                          transformer_layers=3, vision_width=192, image_resolution=SIZE)


@pytest.fixture
def maple(make_trainer, maple_clip):
    def _make(*opts, **kwargs):
        return make_trainer("MaPLe", *OPTS, *opts, clip_path=maple_clip, **kwargs)

    return _make


@pytest.fixture
def maple_argv(make_argv, maple_clip):
    def _make(*opts, **kwargs):
        return make_argv("MaPLe", *OPTS, *opts, clip_path=maple_clip, **kwargs)

    return _make


@pytest.fixture
def images():
    return torch.randn(3, 3, SIZE, SIZE, generator=torch.Generator().manual_seed(0))


def learned_tensors(trainer):
    return {k: v.detach().float().clone() for k, v in trainer.model.prompt_learner.state_dict().items()}


def release_keys(depth):
    deep = [f"compound_prompts_text.{i}" for i in range(depth - 1)]
    deep += [f"compound_prompt_projections.{i}.{w}" for i in range(depth - 1) for w in ("weight", "bias")]
    return sorted(["ctx", "proj.weight", "proj.bias"] + deep)


# ---------------------------------------------------------------------------
# The release's formulation, from clip/ alone
# ---------------------------------------------------------------------------
def reference_logits(path, names, learned, images, depth, round_fp16=True, with_raw_image=False):
    """Logits of the release's MaPLe with the tensors ``learned`` (our state-dict keys = the release's);
    with ``with_raw_image`` also the image features before normalisation (what DePT's head reads)."""
    model = clip.build_model(clip.load_state_dict(path)).float().eval()
    r = (lambda t: t.half().float()) if round_fp16 else (lambda t: t)  # noqa: E731

    def linear(x, name):
        return F.linear(x, learned[f"{name}.weight"], learned[f"{name}.bias"])

    ctx = learned["ctx"]
    n = ctx.shape[0]
    text_deep = [learned[f"compound_prompts_text.{i}"] for i in range(depth - 1)]
    vision_deep = [linear(p, f"compound_prompt_projections.{i}") for i, p in enumerate(text_deep)]
    with torch.no_grad():
        tok = clip.tokenize([f"a photo of a {name}." for name in names])
        x = model.token_embedding(tok)  # "a photo" replaced, "of a" kept
        x = torch.cat([x[:, :1], r(ctx).expand(len(names), -1, -1), x[:, 1 + n:]], dim=1)
        x = (x + model.positional_embedding).permute(1, 0, 2)
        for b, block in enumerate(model.transformer.resblocks):
            if 1 <= b < depth:
                x = torch.cat([x[:1], r(text_deep[b - 1]).unsqueeze(1).expand(-1, x.shape[1], -1), x[1 + n:]])
            x = block(x)
        x = model.ln_final(x.permute(1, 0, 2))
        txt = normalise(x[torch.arange(len(names)), tok.argmax(-1)] @ model.text_projection)

        v = model.visual
        x = v.conv1(images)
        x = x.reshape(x.shape[0], x.shape[1], -1).permute(0, 2, 1)
        x = torch.cat([v.class_embedding.expand(x.shape[0], 1, -1), x], dim=1) + v.positional_embedding
        x = torch.cat([x, r(linear(ctx, "proj")).expand(x.shape[0], -1, -1)], dim=1)  # no positional embedding
        x = v.ln_pre(x).permute(1, 0, 2)
        for b, block in enumerate(v.transformer.resblocks):
            if 1 <= b < depth:
                x = torch.cat([x[:-n], r(vision_deep[b - 1]).unsqueeze(1).expand(-1, x.shape[1], -1)])
            x = block(x)
        raw_image = v.ln_post(x[0]) @ v.proj
    logits = model.logit_scale.exp() * normalise(raw_image) @ txt.t()
    return (logits, raw_image) if with_raw_image else logits


def class_names(trainer):
    return [name.replace("_", " ") for name in trainer.dm.dataset.classnames]


@pytest.mark.parametrize("depth,round_fp16", [(2, True), (2, False), (3, True), (1, True)])
def test_logits_are_the_release_formulation(maple, maple_clip, images, depth, round_fp16):
    trainer = maple("TRAINER.MAPLE.PROMPT_DEPTH", str(depth), "TRAINER.MAPLE.ROUND_PROMPTS_FP16", str(round_fp16))
    pl = trainer.model.prompt_learner
    assert sorted(pl.state_dict()) == release_keys(depth)  # the learnable tensors only, the release's names
    randomise(pl, seed=depth)
    expected = reference_logits(maple_clip, class_names(trainer), learned_tensors(trainer), images, depth, round_fp16)
    torch.testing.assert_close(logits_of(trainer, images), expected, atol=ATOL, rtol=RTOL)
    if round_fp16:  # the option acts: without the rounding, the same prompts give other logits
        rounded = logits_of(trainer, images)
        pl.round_fp16 = False
        assert not torch.equal(logits_of(trainer, images), rounded)


def test_only_the_release_tensors_learn_and_vision_gradients_reach_the_text_prompts(maple, images):
    trainer = maple("TRAINER.MAPLE.PROMPT_DEPTH", "3")
    model, pl = trainer.model, trainer.model.prompt_learner
    trainable = {n for n, p in model.named_parameters() if p.requires_grad}
    assert trainable == {f"prompt_learner.{k}" for k in release_keys(3)}
    trainer.set_model_mode("train")
    F.cross_entropy(trainer.model_inference(images), torch.tensor([0, 1, 2])).backward()
    with_grad = {n for n, p in model.named_parameters() if p.grad is not None and p.grad.abs().sum() > 0}
    assert with_grad == trainable

    # The vision tower alone: its gradient reaches ctx (through proj) and every deep text prompt.
    model.zero_grad(set_to_none=True)
    dtype = model.dtype
    model.encode_image(images, pl.image_prompts(dtype), pl.image_extra_tokens(dtype)).sum().backward()
    for name in ["ctx", "compound_prompts_text.0", "compound_prompts_text.1"]:
        assert pl.get_parameter(name).grad.abs().sum() > 0, name


def test_initial_values_and_the_frozen_words(maple, maple_clip):
    trainer = maple("TRAINER.MAPLE.PROMPT_DEPTH", "3")
    pl = trainer.model.prompt_learner
    words = clip.build_model(clip.load_state_dict(maple_clip)).float().token_embedding(
        clip.tokenize("a photo of a"))[0]
    torch.testing.assert_close(pl.ctx.detach(), words[1:3])  # "a photo" is learned
    torch.testing.assert_close(pl.token_suffix[:, :2], words[3:5].expand(len(pl.token_suffix), -1, -1))  # "of a"
    first, second = pl.compound_prompt_projections
    assert torch.equal(first.weight, second.weight) and torch.equal(first.bias, second.bias)  # one layer, copied
    assert not torch.equal(*pl.compound_prompts_text)  # the deep text prompts are drawn one by one
    assert 0.01 < torch.cat(list(pl.compound_prompts_text)).std().item() < 0.04  # N(0, 0.02)

    suffix, ctx = pl.token_suffix.clone(), pl.ctx.detach().clone()
    trainer.batch_idx, trainer.num_batches, trainer.epoch = 0, 2, 0
    trainer.set_model_mode("train")
    trainer.forward_backward(next(iter(trainer.train_loader_x)))
    assert torch.equal(pl.token_suffix, suffix)  # "of a" stays
    assert not torch.equal(pl.ctx, ctx)
    assert not torch.equal(first.weight, second.weight)  # they part after the first step


# ---------------------------------------------------------------------------
# Precision
# ---------------------------------------------------------------------------
@pytest.mark.parametrize("prec", ["fp32", "amp", "bf16"])
def test_precisions_run_a_step_with_fp32_master_tensors(maple, prec):
    falls_back = prec == "amp" and not torch.cuda.is_available()
    with pytest.warns(UserWarning, match="needs a GPU") if falls_back else contextlib.nullcontext():
        trainer = maple("TRAINER.MAPLE.PREC", prec)
    assert trainer.prec == ("fp32" if falls_back else prec)
    pl = trainer.model.prompt_learner
    assert {p.dtype for p in pl.parameters()} == {torch.float32}
    before = learned_tensors(trainer)
    trainer.batch_idx, trainer.num_batches, trainer.epoch = 0, 2, 0
    trainer.set_model_mode("train")
    summary = trainer.forward_backward(next(iter(trainer.train_loader_x)))
    assert torch.isfinite(torch.tensor(summary["loss"]))
    assert all(not torch.equal(before[k], v.float()) for k, v in pl.state_dict().items())


def test_fp16_keeps_the_release_fp16_leaves(maple_clip, images):
    """PREC fp16 (CLIP in half, as on a GPU; CPU runs half kernels too): ctx and proj are fp16 leaves
    updated in fp16 with no loss scaling, the deep tensors fp32; the logits are the fp32 ones within fp16
    resolution."""
    from trainers.maple import MultiModalPromptLearner
    from trainers.model import PromptedCLIP

    half = clip.build_model(clip.load_state_dict(maple_clip))  # OpenAI's fp16 layout
    names = ["red circle", "green square", "blue triangle"]
    pl = MultiModalPromptLearner(half, names, n_ctx=2, depth=3, ctx_init="a photo of a")
    dtypes = {k: v.dtype for k, v in pl.state_dict().items()}
    assert {k for k, d in dtypes.items() if d == torch.float16} == {"ctx", "proj.weight", "proj.bias"}
    randomise(pl, seed=7)
    model = PromptedCLIP(half, pl).eval()
    model.requires_grad_(False)
    pl.requires_grad_(True)
    logits = model(images)
    learned = {k: v.float() for k, v in pl.state_dict().items()}
    expected = reference_logits(maple_clip, names, learned, images, depth=3)
    torch.testing.assert_close(logits.detach(), expected, atol=0.15, rtol=0.02)  # fp16 weights and activations

    F.cross_entropy(logits, torch.tensor([0, 1, 2])).backward()
    assert pl.ctx.grad.dtype == torch.float16 and pl.compound_prompts_text[0].grad.dtype == torch.float32
    ctx = pl.ctx.detach().clone()
    torch.optim.SGD(pl.parameters(), lr=0.01, momentum=0.9, weight_decay=5e-4).step()
    assert pl.ctx.dtype == torch.float16 and not torch.equal(pl.ctx, ctx)


@pytest.mark.skipif(not torch.cuda.is_available(), reason="PREC fp16 needs a GPU (CPU runs it as fp32)")
def test_fp16_trainer_on_a_gpu(maple):
    trainer = maple("TRAINER.MAPLE.PREC", "fp16", "USE_CUDA", "True")
    pl = trainer.model.prompt_learner
    assert trainer.prec == "fp16" and trainer.scaler is None
    assert pl.ctx.dtype == pl.proj.weight.dtype == torch.float16
    assert pl.compound_prompts_text[0].dtype == torch.float32
    trainer.batch_idx, trainer.num_batches, trainer.epoch = 0, 2, 0
    trainer.set_model_mode("train")
    assert torch.isfinite(torch.tensor(trainer.forward_backward(next(iter(trainer.train_loader_x)))["loss"]))
    assert pl.ctx.dtype == torch.float16


# ---------------------------------------------------------------------------
# Training, checkpoints, resume
# ---------------------------------------------------------------------------
def test_a_short_run_learns(run_train, make_argv, maple_argv, maple_clip):
    from dpl_helpers import LEARNING_OPTS

    opts = (*LEARNING_OPTS, "OPTIM.MAX_EPOCH", "4", "DATASET.NUM_SHOTS", "8", "TEST.NO_TEST", "True")
    trained = run_train(maple_argv(*opts)).test()
    zero_shot = run_train(make_argv("ZeroshotCLIP", "TRAINER.ZSCLIP.PREC", "fp32", "INPUT.SIZE", f"({SIZE}, {SIZE})",
                                    clip_path=maple_clip, flags=["--eval-only"])).test()
    assert trained > zero_shot + 10.0, (trained, zero_shot)


def write_release_checkpoint(trainer, directory, epoch):
    """The whole CustomCLIP as the release saves it under PREC fp16 (frozen CLIP and class buffers too)."""
    pl = trainer.model.prompt_learner
    whole = {k: v.half() if v.is_floating_point() else v for k, v in trainer.model.state_dict().items()}
    whole["prompt_learner.token_prefix"] = pl.token_prefix.half()
    whole["prompt_learner.token_suffix"] = pl.token_suffix.half()
    folder = os.path.join(directory, "MultiModalPromptLearner")
    os.makedirs(folder)
    path = os.path.join(folder, f"model.pth.tar-{epoch}")
    torch.save({"state_dict": whole, "epoch": epoch, "optimizer": {}, "scheduler": {}}, path)
    return path


def predictions(trainer):
    trainer.set_model_mode("eval")
    with torch.no_grad():
        return torch.cat([trainer.model_inference(trainer.parse_batch_test(b)[0]) for b in trainer.test_loader])


def test_release_checkpoint_gives_the_release_predictions(run_train, maple_argv, maple_clip, tmp_path):
    opts = ("TRAINER.MAPLE.PROMPT_DEPTH", "3")
    source = run_train(maple_argv(*opts, flags=["--no-train"]))
    randomise(source.model.prompt_learner, seed=4)
    path = write_release_checkpoint(source, tmp_path / "release", epoch=5)
    state = torch.load(path, weights_only=True)["state_dict"]
    assert state["prompt_learner.ctx"].dtype == torch.float16 and "image_encoder.conv1.weight" in state

    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        loaded = run_train(maple_argv(*opts, flags=["--eval-only", "--model-dir", tmp_path / "release",
                                                    "--load-epoch", "5"]))
    assert not [w for w in caught if "differs" in str(w.message)]  # its fp16 frozen CLIP is MODEL.BACKBONE's
    with torch.no_grad():  # what the release holds: the fp16 values
        for p in source.model.prompt_learner.parameters():
            p.copy_(p.half().float())
    assert torch.equal(predictions(loaded), predictions(source))

    learned = {k[len("prompt_learner."):]: v.float() for k, v in state.items() if k.startswith("prompt_learner.")}
    images = torch.cat([b["img"] for b in loaded.test_loader])
    expected = reference_logits(maple_clip, class_names(loaded), learned, images, depth=3)
    torch.testing.assert_close(predictions(loaded), expected, atol=1e-4, rtol=1e-4)


def test_resume_is_exact(run_train, maple_argv, tmp_path, monkeypatch):
    from trainers.maple import MaPLe

    class Killed(Exception):
        pass

    opts = ("OPTIM.MAX_EPOCH", "2", "TRAIN.CHECKPOINT_FREQ", "1", "DATASET.NUM_SHOTS", "2", "TEST.NO_TEST", "True")
    reference = run_train(maple_argv(*opts, output_dir=tmp_path / "whole"))
    original = MaPLe.forward_backward

    def forward_backward(self, batch):
        if (self.epoch, self.batch_idx) == (1, 1):
            raise Killed()
        return original(self, batch)

    monkeypatch.setattr(MaPLe, "forward_backward", forward_backward)
    argv = maple_argv(*opts, output_dir=tmp_path / "killed")
    with pytest.raises(Killed):
        run_train(argv)
    monkeypatch.setattr(MaPLe, "forward_backward", original)
    resumed = run_train(argv)
    assert "resume" in (tmp_path / "killed" / "log.txt").read_text().lower()
    for key, value in reference.model.prompt_learner.state_dict().items():
        assert torch.equal(resumed.model.prompt_learner.state_dict()[key], value), key


# ---------------------------------------------------------------------------
# Bad input, configs, launchers
# ---------------------------------------------------------------------------
@pytest.mark.parametrize("opts,message", [
    (("TRAINER.MAPLE.PROMPT_DEPTH", "4"), r"TRAINER.MAPLE.PROMPT_DEPTH is 4, but the text tower has 3 blocks: "
                                          r"expected 1..3"),
    (("TRAINER.MAPLE.PROMPT_DEPTH", "0"), r"TRAINER.MAPLE.PROMPT_DEPTH is 0, .* expected 1..3"),
    (("TRAINER.MAPLE.N_CTX", "80"), r"TRAINER.MAPLE.N_CTX is 80, but the longest class name .* at most \d+ context"),
])
def test_bad_input_names_the_key_the_value_and_the_limit(maple, opts, message):
    with pytest.raises(ConfigError, match=message):
        maple(*opts)


def test_the_depth_must_fit_the_shallower_tower(make_trainer, dpl_clip):
    with pytest.raises(ConfigError, match="PROMPT_DEPTH is 3, but the vision tower has 2 blocks"):
        make_trainer("MaPLe", "TRAINER.MAPLE.PREC", "fp32", "TRAINER.MAPLE.PROMPT_DEPTH", "3", clip_path=dpl_clip)


def test_a_resnet_backbone_is_refused(make_trainer, tiny_rn_clip_path):
    with pytest.raises(ConfigError, match="MaPLe puts prompts into the blocks of a vision transformer.*ResNet"):
        make_trainer("MaPLe", "TRAINER.MAPLE.PREC", "fp32", "INPUT.SIZE", "(64, 64)", clip_path=tiny_rn_clip_path)


@pytest.mark.parametrize("name,lr,epochs,depth", [
    ("vit_b16_c2_ep5_batch4_2ctx", 0.0035, 5, 9),
    ("vit_b16_c2_ep5_batch4_2ctx_cross_datasets", 0.0026, 2, 3),
    ("vit_b16_c2_ep10_batch4_2ctx", 0.0035, 10, 9),
])
def test_configs_are_the_release_recipes(make_cfg, name, lr, epochs, depth):
    cfg = make_cfg("MaPLe", fast=False, config_file=os.path.join(REPO_ROOT, "configs", "trainers", "MaPLe",
                                                                  f"{name}.yaml"))
    assert (cfg.DATALOADER.TRAIN_X.BATCH_SIZE, cfg.DATALOADER.TEST.BATCH_SIZE) == (4, 100)
    assert (cfg.OPTIM.NAME, cfg.OPTIM.LR, cfg.OPTIM.MAX_EPOCH, cfg.OPTIM.LR_SCHEDULER) == ("sgd", lr, epochs, "cosine")
    assert (cfg.OPTIM.WARMUP_EPOCH, cfg.OPTIM.WARMUP_TYPE, cfg.OPTIM.WARMUP_CONS_LR) == (1, "constant", 1e-5)
    opts = cfg.TRAINER.MAPLE
    assert (opts.N_CTX, opts.CTX_INIT, opts.PREC, opts.PROMPT_DEPTH) == (2, "a photo of a", "fp16", depth)
    assert tuple(cfg.INPUT.SIZE) == (224, 224) and cfg.MODEL.BACKBONE.NAME == "ViT-B/16"


@pytest.mark.slow
def test_base_to_new_launchers_train_then_test_on_the_new_classes(tmp_path, maple_clip):
    env = dict(os.environ, PYTHON=sys.executable, DATA=str(tmp_path / "data"), OUTPUT=str(tmp_path / "out"),
               CLIP_WEIGHTS=maple_clip, LOADEP="1")
    fast = [*OPTS, "DATALOADER.NUM_WORKERS", "0", "OPTIM.MAX_EPOCH", "1", "DATASET.NUM_SHOTS", "2",
            "TRAIN.PRINT_FREQ", "100", "USE_CUDA", "False"]

    def launch(script):
        done = subprocess.run(["bash", os.path.join(REPO_ROOT, "scripts", "maple", script), "toy", "1", *fast],
                              capture_output=True, text=True, env=env, timeout=300)
        assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-2000:]
        return done.stdout

    launch("base2new_train_maple.sh")
    launch("base2new_test_maple.sh")
    tail = os.path.join("toy", "shots_16", "MaPLe", "vit_b16_c2_ep5_batch4_2ctx", "seed1")
    train_dir = tmp_path / "out" / "base2new" / "train_base" / tail
    assert (train_dir / "MultiModalPromptLearner" / "model.pth.tar-1").is_file()
    log = (tmp_path / "out" / "base2new" / "test_new" / tail / "log.txt").read_text()
    assert "* accuracy:" in log and "SUBSAMPLE_CLASSES: new" in log.replace("'", "")
    # Skipping a finished run is train.py's (its run records): tests/scripts/test_dpl_launchers.py.
