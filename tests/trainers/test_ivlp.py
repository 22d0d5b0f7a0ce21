"""IVLP, deep language prompting and VPT-deep (trainers/ivlp.py) against a re-statement of the
MaPLe release's formulation written here with clip/ alone, on a tiny random CLIP.

The release's mechanics (docs/baselines.md): text layer 0 = "<CTX_INIT> {class}." with positions
1..n replaced by ctx; text blocks 1..J-1 overwrite positions [1, 1 + n) with their own tensor;
vision: n tokens appended after the positional embedding (before ln_pre); vision blocks 1..J-1
overwrite the last n positions; every inserted tensor rounded to fp16 (an option).
"""
import os

import pytest
import torch
import torch.nn.functional as F

import clip
from dassl.utils import ConfigError
from dpl_helpers import logits_of, normalise, randomise

ATOL, RTOL = 1e-5, 1e-5
IVLP_OPTS = ("TRAINER.IVLP.PREC", "fp32", "TRAINER.IVLP.N_CTX_TEXT", "2", "TRAINER.IVLP.N_CTX_VISION", "3",
             "TRAINER.IVLP.PROMPT_DEPTH_TEXT", "2", "TRAINER.IVLP.PROMPT_DEPTH_VISION", "2")
VPT_OPTS = ("TRAINER.VPT.PREC", "fp32", "TRAINER.VPT.N_CTX_VISION", "3", "TRAINER.VPT.PROMPT_DEPTH_VISION", "2")


@pytest.fixture
def images():
    return torch.randn(3, 3, 32, 32, generator=torch.Generator().manual_seed(0))


# ---------------------------------------------------------------------------
# The release's formulation, from clip/ alone
# ---------------------------------------------------------------------------
def rounded(t, on):
    return t.half().float() if on else t


def ref_text(model, names, ctx, deep, prefix_words, round_fp16):
    """deep: {block: (n, width)}; positions 1..n of "<prefix_words> {name}." hold ctx."""
    n = ctx.shape[0]
    tok = clip.tokenize([f"{prefix_words} {name}." for name in names])
    x = model.token_embedding(tok)
    x = torch.cat([x[:, :1], ctx.unsqueeze(0).expand(len(names), -1, -1), x[:, 1 + n:]], dim=1)
    x = (x + model.positional_embedding).permute(1, 0, 2)
    for b, block in enumerate(model.transformer.resblocks):
        if b in deep:
            p = rounded(deep[b], round_fp16).unsqueeze(1).expand(-1, x.shape[1], -1)
            x = torch.cat([x[:1], p, x[1 + n:]])
        x = x + block.attention(block.ln_1(x))
        x = x + block.mlp(block.ln_2(x))
    x = model.ln_final(x.permute(1, 0, 2))
    return normalise(x[torch.arange(len(names)), tok.argmax(-1)] @ model.text_projection)


def ref_image(model, images, vpt, deep, round_fp16):
    v = model.visual
    x = v.conv1(images)
    x = x.reshape(x.shape[0], x.shape[1], -1).permute(0, 2, 1)
    x = torch.cat([v.class_embedding.expand(x.shape[0], 1, -1), x], dim=1) + v.positional_embedding
    n = 0
    if vpt is not None:
        n = vpt.shape[0]
        x = torch.cat([x, rounded(vpt, round_fp16).unsqueeze(0).expand(x.shape[0], -1, -1)], dim=1)
    x = v.ln_pre(x).permute(1, 0, 2)
    for b, block in enumerate(v.transformer.resblocks):
        if b in deep:
            p = rounded(deep[b], round_fp16).unsqueeze(1).expand(-1, x.shape[1], -1)
            x = torch.cat([x[: x.shape[0] - n], p])
        x = x + block.attention(block.ln_1(x))
        x = x + block.mlp(block.ln_2(x))
    return normalise(v.ln_post(x.permute(1, 0, 2)[:, 0]) @ v.proj)


def reference(trainer, path, images, text=True):
    model = clip.build_model(clip.load_state_dict(path)).float().eval()
    pl = trainer.model.prompt_learner
    names = [name.replace("_", " ") for name in trainer.dm.dataset.classnames]
    with torch.no_grad():
        vision_deep = {int(b): t for b, t in pl.vision_deep.items()}
        img = ref_image(model, images, pl.vpt, vision_deep, pl.round_fp16)
        if text:
            txt = ref_text(model, names, pl.ctx, {int(b): t for b, t in pl.text_deep.items()}, "a photo of a",
                           pl.round_fp16)
        else:
            tok = clip.tokenize([f"a photo of a {name}." for name in names])
            txt = normalise(model.encode_text(tok))
        return model.logit_scale.exp() * img @ txt.t()


@pytest.mark.parametrize("round_fp16", [True, False])
def test_ivlp_logits_are_the_release_formulation(make_trainer, tiny_clip_path, images, round_fp16):
    trainer = make_trainer("IVLP", *IVLP_OPTS, "TRAINER.IVLP.ROUND_PROMPTS_FP16", str(round_fp16))
    pl = trainer.model.prompt_learner
    assert sorted(pl.state_dict()) == ["ctx", "text_deep.1", "vision_deep.1", "vpt"]
    randomise(pl, seed=1)
    torch.testing.assert_close(logits_of(trainer, images), reference(trainer, tiny_clip_path, images),
                               atol=ATOL, rtol=RTOL)
    if round_fp16:  # the option acts: without the rounding, the same prompts give other logits
        rounded_logits = logits_of(trainer, images)
        pl.round_fp16 = False
        assert not torch.equal(logits_of(trainer, images), rounded_logits)


def test_only_a_photo_is_learned_with_two_context_tokens(make_trainer, tiny_clip_path):
    trainer = make_trainer("IVLP", *IVLP_OPTS)
    pl = trainer.model.prompt_learner
    model = clip.build_model(clip.load_state_dict(tiny_clip_path)).float()
    words = model.token_embedding(clip.tokenize("a photo of a"))[0]
    torch.testing.assert_close(pl.ctx.detach(), words[1:3])  # "a photo" starts the learned context
    torch.testing.assert_close(pl.token_suffix[0, :2], words[3:5])  # "of a": fixed


def test_deep_language_prompting_has_no_vision_prompt(make_trainer, tiny_clip_path, images):
    trainer = make_trainer("IVLP", "TRAINER.IVLP.PREC", "fp32", "TRAINER.IVLP.N_CTX_VISION", "0",
                           "TRAINER.IVLP.PROMPT_DEPTH_VISION", "0", "TRAINER.IVLP.N_CTX_TEXT", "4",
                           "TRAINER.IVLP.PROMPT_DEPTH_TEXT", "2")
    pl = trainer.model.prompt_learner
    assert sorted(pl.state_dict()) == ["ctx", "text_deep.1"]
    randomise(pl, seed=2)
    torch.testing.assert_close(logits_of(trainer, images), reference(trainer, tiny_clip_path, images),
                               atol=ATOL, rtol=RTOL)


def test_vpt_logits_are_the_release_formulation(make_trainer, tiny_clip_path, images):
    trainer = make_trainer("VPT", *VPT_OPTS)
    pl = trainer.model.prompt_learner
    assert sorted(pl.state_dict()) == ["vision_deep.1", "vpt"]
    randomise(pl, seed=3)
    torch.testing.assert_close(logits_of(trainer, images), reference(trainer, tiny_clip_path, images, text=False),
                               atol=ATOL, rtol=RTOL)


@pytest.mark.parametrize("name,opts", [("IVLP", IVLP_OPTS), ("VPT", VPT_OPTS)])
def test_only_the_prompts_get_gradients(make_trainer, images, name, opts):
    trainer = make_trainer(name, *opts)
    trainer.set_model_mode("train")
    loss = F.cross_entropy(trainer.model_inference(images), torch.tensor([0, 1, 2]))
    loss.backward()
    with_grad = {n for n, p in trainer.model.named_parameters() if p.grad is not None and p.grad.abs().sum() > 0}
    learnable = {f"prompt_learner.{k}" for k in trainer.model.prompt_learner.state_dict()}
    assert with_grad == learnable


@pytest.mark.parametrize("prec", ["bf16", "amp"])
def test_reduced_precisions_run_a_step(make_trainer, prec):
    trainer = make_trainer("IVLP", *IVLP_OPTS[2:], "TRAINER.IVLP.PREC", prec)
    trainer.batch_idx, trainer.num_batches, trainer.epoch = 0, 2, 0
    trainer.set_model_mode("train")
    summary = trainer.forward_backward(next(iter(trainer.train_loader_x)))
    assert torch.isfinite(torch.tensor(summary["loss"]))


def test_a_short_run_learns(run_train, make_argv, tmp_path):
    from dpl_helpers import LEARNING_OPTS

    argv = make_argv("IVLP", *IVLP_OPTS, *LEARNING_OPTS, "OPTIM.MAX_EPOCH", "6", "DATASET.NUM_SHOTS", "8")
    trainer = run_train(argv)
    trained = trainer.test()
    zero_shot = run_train(make_argv("ZeroshotCLIP", "TRAINER.ZSCLIP.PREC", "fp32", flags=["--eval-only"])).test()
    assert trained > zero_shot + 10.0, (trained, zero_shot)


def test_release_checkpoint_gives_the_release_logits(run_train, make_argv, tiny_clip_path, images, tmp_path):
    source = run_train(make_argv("IVLP", *IVLP_OPTS, flags=["--no-train"]))
    randomise(source.model.prompt_learner, seed=4)
    pl = source.model.prompt_learner
    # The release's whole model in fp16: prompts inside CLIP's blocks, frozen CLIP beside them.
    whole = {k: v.half() for k, v in source.model.state_dict().items() if not k.startswith("prompt_learner.")}
    whole.update({"prompt_learner.ctx": pl.ctx.half(), "prompt_learner.token_prefix": pl.token_prefix.half(),
                  "prompt_learner.token_suffix": pl.token_suffix.half(), "image_encoder.VPT": pl.vpt.half(),
                  "image_encoder.transformer.resblocks.1.VPT_shallow": pl.vision_deep["1"].half(),
                  "text_encoder.transformer.resblocks.1.VPT_shallow": pl.text_deep["1"].half()})
    folder = tmp_path / "release" / "VLPromptLearner"
    os.makedirs(folder)
    torch.save({"state_dict": whole, "epoch": 5, "optimizer": {}, "scheduler": {}}, folder / "model.pth.tar-5")
    loaded = run_train(make_argv("IVLP", *IVLP_OPTS, flags=["--eval-only", "--model-dir", tmp_path / "release",
                                                            "--load-epoch", "5"]))
    with torch.no_grad():  # the release's values are fp16: the reference uses the same rounded values
        for p in source.model.prompt_learner.parameters():
            p.copy_(p.half().float())
    torch.testing.assert_close(logits_of(loaded, images), reference(source, tiny_clip_path, images),
                               atol=1e-4, rtol=1e-4)


def test_resume_is_exact(run_train, make_argv, tmp_path, monkeypatch):
    from trainers.ivlp import IVLP

    class Killed(Exception):
        pass

    opts = (*IVLP_OPTS, "OPTIM.MAX_EPOCH", "2", "TRAIN.CHECKPOINT_FREQ", "1")
    reference = run_train(make_argv("IVLP", *opts, output_dir=tmp_path / "whole"))
    original = IVLP.forward_backward

    def forward_backward(self, batch):
        if (self.epoch, self.batch_idx) == (1, 1):
            raise Killed()
        return original(self, batch)

    monkeypatch.setattr(IVLP, "forward_backward", forward_backward)
    argv = make_argv("IVLP", *opts, output_dir=tmp_path / "killed")
    with pytest.raises(Killed):
        run_train(argv)
    monkeypatch.setattr(IVLP, "forward_backward", original)
    resumed = run_train(argv)
    for key, value in reference.model.prompt_learner.state_dict().items():
        assert torch.equal(resumed.model.prompt_learner.state_dict()[key], value), key


@pytest.mark.parametrize("opts,message", [
    (("TRAINER.IVLP.PROMPT_DEPTH_TEXT", "5"), "TRAINER.IVLP.PROMPT_DEPTH_TEXT is 5, but the text tower has 2 blocks"),
    (("TRAINER.IVLP.PROMPT_DEPTH_VISION", "3"), "TRAINER.IVLP.PROMPT_DEPTH_VISION is 3, but the vision tower has 2"),
    (("TRAINER.IVLP.N_CTX_TEXT", "80"), "TRAINER.IVLP.N_CTX_TEXT is 80, but the longest class name"),
])
def test_bad_input_names_the_key_the_value_and_the_limit(make_trainer, opts, message):
    with pytest.raises(ConfigError, match=message):
        make_trainer("IVLP", *IVLP_OPTS, *opts)


def test_a_resnet_backbone_is_refused(make_trainer, tiny_rn_clip_path):
    with pytest.raises(ConfigError, match="vision transformer.*ViT-B/16"):
        make_trainer("IVLP", *IVLP_OPTS, "INPUT.SIZE", "(64, 64)", clip_path=tiny_rn_clip_path)


@pytest.mark.parametrize("folder,suffix,trainer,opts", [
    ("independent-vlp", "ivlp", "IVLP", IVLP_OPTS), ("language-prompting", "lp", "IVLP", IVLP_OPTS),
    ("vpt", "vpt", "VPT", VPT_OPTS)])
def test_base_to_new_launchers_train_then_test_on_the_new_classes(tmp_path, tiny_clip_path, folder, suffix, trainer,
                                                                  opts):
    import subprocess
    import sys

    from dpl_helpers import REPO_ROOT

    env = dict(os.environ, PYTHON=sys.executable, DATA=str(tmp_path / "data"), OUTPUT=str(tmp_path / "out"),
               CLIP_WEIGHTS=tiny_clip_path)
    fast = ["INPUT.SIZE", "(32, 32)", "DATALOADER.NUM_WORKERS", "0", "OPTIM.MAX_EPOCH", "1", "DATASET.NUM_SHOTS", "2",
            "TRAIN.PRINT_FREQ", "100", "USE_CUDA", "False", *opts]
    if folder == "language-prompting":
        fast += ["TRAINER.IVLP.N_CTX_VISION", "0", "TRAINER.IVLP.PROMPT_DEPTH_VISION", "0"]
    for step, extra in (("train", []), ("test", [])):
        script = os.path.join(REPO_ROOT, "scripts", folder, f"base2new_{step}_{suffix}.sh")
        done = subprocess.run(["bash", script, "toy", "1", *fast, *extra], capture_output=True, text=True, env=dict(
            env, LOADEP="1"), timeout=300)
        assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-2000:]
    logs = sorted(p for p in (tmp_path / "out").rglob("log.txt"))
    assert [p.parts[-7] for p in logs] == ["test_new", "train_base"]
    assert "* accuracy:" in logs[0].read_text()


def test_vpt_release_checkpoint_gives_the_release_logits(run_train, make_argv, tiny_clip_path, images, tmp_path):
    source = run_train(make_argv("VPT", *VPT_OPTS, flags=["--no-train"]))
    randomise(source.model.prompt_learner, seed=5)
    pl = source.model.prompt_learner
    whole = {k: v.half() for k, v in source.model.state_dict().items() if not k.startswith("prompt_learner.")}
    whole.update({"image_encoder.VPT": pl.vpt.half(),
                  "image_encoder.transformer.resblocks.1.VPT_shallow": pl.vision_deep["1"].half()})
    folder = tmp_path / "release" / "prompt_learner"
    os.makedirs(folder)
    torch.save({"state_dict": whole, "epoch": 5, "optimizer": {}, "scheduler": {}}, folder / "model.pth.tar-5")
    loaded = run_train(make_argv("VPT", *VPT_OPTS, flags=["--eval-only", "--model-dir", tmp_path / "release",
                                                          "--load-epoch", "5"]))
    with torch.no_grad():
        for p in source.model.prompt_learner.parameters():
            p.copy_(p.half().float())
    torch.testing.assert_close(logits_of(loaded, images), reference(source, tiny_clip_path, images, text=False),
                               atol=1e-4, rtol=1e-4)
