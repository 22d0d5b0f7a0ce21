"""KgCoOp on the Toy dataset with a tiny random CLIP (CPU).

The references below use ``clip`` alone (token embeddings, the blocks, the towers' norms and
projections), never code from ``trainers/``: the release's formulation re-stated from its notes.
"""
import os

import pytest
import torch
import torch.nn.functional as F

import clip
from dassl.utils import ConfigError
from trainers.common import cast_clip, load_clip_to_cpu

REPO_ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
CONFIGS = os.path.join(REPO_ROOT, "configs", "trainers", "KgCoOp")
RELEASE_YAML = os.path.join(CONFIGS, "vit_b16_ep100_ctxv1.yaml")
FP32 = ("TRAINER.COOP.PREC", "fp32")
ATOL, RTOL = 1e-6, 1e-5


# ---------------------------------------------------------------------------
# The release's formulation, from clip/ alone
# ---------------------------------------------------------------------------
def reference_clip(path):
    return clip.build_model(clip.load_state_dict(path)).float().eval()


def normalise(x):
    return x / x.norm(dim=-1, keepdim=True)


def text_features(model, embeddings, token_ids):
    """(n, 77, width) token embeddings -> normalised features read at each prompt's EOT."""
    x = (embeddings + model.positional_embedding).permute(1, 0, 2)  # (77, n, width)
    for block in model.transformer.resblocks:
        x = block(x)
    x = model.ln_final(x.permute(1, 0, 2))
    return normalise(x[torch.arange(len(x)), token_ids.argmax(dim=-1)] @ model.text_projection)


def release_text(model, names, ctx):
    """"a photo of a {class}." with positions 1-4 replaced by the context vectors."""
    token_ids = clip.tokenize([f"a photo of a {name}." for name in names])
    embeddings = model.token_embedding(token_ids).clone()
    embeddings[:, 1:1 + len(ctx)] = ctx
    return text_features(model, embeddings, token_ids)


def release_logits(model, names, ctx, images):
    return model.logit_scale.exp() * normalise(model.encode_image(images)) @ release_text(model, names, ctx).t()


def template_text(model, names, template="a photo of a {}."):
    return normalise(model.encode_text(clip.tokenize([template.format(name) for name in names])))


def classnames(trainer):
    return [name.replace("_", " ") for name in trainer.dm.dataset.classnames]


def set_ctx(trainer, seed, half=False):
    """Fixed context values (rounded to fp16 with ``half``, as the release stores them)."""
    ctx = trainer.model.prompt_learner.ctx
    values = torch.randn(ctx.shape, generator=torch.Generator().manual_seed(seed)) * 0.5
    with torch.no_grad():
        ctx.copy_(values.half().float() if half else values)
    return ctx.detach().clone()


def logits_of(trainer, images):
    trainer.set_model_mode("eval")
    with torch.no_grad():
        return trainer.model_inference(images).float()


@pytest.fixture
def images():
    return torch.randn(3, 3, 32, 32, generator=torch.Generator().manual_seed(5))


@pytest.fixture
def kgcoop(make_trainer):
    """KgCoOp from the release's YAML (CTX_INIT True), fp32."""
    return lambda *opts, **kwargs: make_trainer("KgCoOp", *FP32, *opts, config_file=RELEASE_YAML, **kwargs)


# ---------------------------------------------------------------------------
# Logits, loss, gradients
# ---------------------------------------------------------------------------
def test_logits_are_the_release_formulation(kgcoop, tiny_clip_path, images):
    trainer = kgcoop()
    model = reference_clip(tiny_clip_path)
    learner = trainer.model.prompt_learner
    with torch.no_grad():  # CTX_INIT True: the embeddings of "a photo of a", 4 tokens
        assert torch.equal(learner.ctx, model.token_embedding(clip.tokenize("a photo of a")[0][1:5]))
    ctx = set_ctx(trainer, seed=1)
    with torch.no_grad():
        expected = release_logits(model, classnames(trainer), ctx, images)
    torch.testing.assert_close(logits_of(trainer, images), expected, rtol=RTOL, atol=ATOL)


def test_loss_is_ce_plus_w_times_the_kg_term_and_only_ctx_learns(kgcoop, tiny_clip_path, images):
    trainer = kgcoop("TRAINER.COOP.W", "8.0")
    ctx = set_ctx(trainer, seed=2)
    model = reference_clip(tiny_clip_path)
    names = classnames(trainer)
    with torch.no_grad():
        logits = release_logits(model, names, ctx, images)
        cos = (release_text(model, names, ctx) * template_text(model, names)).sum(dim=-1)
    label = torch.tensor([0, 1, 2])
    ce, kg = F.cross_entropy(logits, label).item(), 1.0 - cos.mean().item()

    for group in trainer.optim.param_groups:
        group["lr"] = 0.0  # the step must not move the context before we compare
    trainer.batch_idx, trainer.num_batches = 0, 2
    trainer.set_model_mode("train")
    summary = trainer.forward_backward({"img": images, "label": label, "domain": torch.zeros(3, dtype=torch.long)})

    assert kg > 1e-3  # the random context is far from the template
    assert summary["loss_ce"] == pytest.approx(ce, abs=1e-5)
    assert summary["loss_kg"] == pytest.approx(kg, abs=1e-5)
    assert summary["loss"] == pytest.approx(ce + 8.0 * kg, abs=1e-4)
    learner = trainer.model.prompt_learner
    assert [n for n, p in trainer.model.named_parameters() if p.requires_grad] == ["prompt_learner.ctx"]
    assert [p for g in trainer.optim.param_groups for p in g["params"]] == [learner.ctx]
    assert learner.ctx.grad is not None and learner.ctx.grad.abs().sum() > 0
    assert all(p.grad is None for n, p in trainer.model.named_parameters() if n != "prompt_learner.ctx")
    # the release's keys without its dead weight; the template features are not saved
    assert set(learner.state_dict()) == {"ctx", "token_prefix", "token_suffix"}
    assert not trainer.model.head.state_dict()


def test_a_short_run_learns_and_beats_zero_shot_clip(make_trainer):
    from test_baselines import evaluate

    zero_shot_acc, zero_shot_loss = evaluate(make_trainer("ZeroshotCLIP", "TRAINER.ZSCLIP.PREC", "fp32"))
    # the release's setting (shared context from "a photo of a", W 1.0), with Adam for a tiny random CLIP
    trainer = make_trainer("KgCoOp", *FP32, "TRAINER.COOP.CTX_INIT", "a photo of a", "DATASET.NUM_SHOTS", "12",
                           "OPTIM.NAME", "adam", "OPTIM.LR", "0.01", "OPTIM.MAX_EPOCH", "20", "TEST.NO_TEST", "True")
    assert evaluate(trainer)[1] == pytest.approx(zero_shot_loss, abs=1e-4)  # it starts as zero-shot CLIP
    clip_before = {k: v.clone() for k, v in trainer.model.state_dict().items() if not k.startswith("prompt_learner")}
    trainer.train()
    acc, loss = evaluate(trainer)
    assert acc > zero_shot_acc + 10 and loss < zero_shot_loss
    for key, value in trainer.model.state_dict().items():
        if key in clip_before:
            assert torch.equal(value, clip_before[key]), f"{key} changed during training"


# ---------------------------------------------------------------------------
# Checkpoints
# ---------------------------------------------------------------------------
def write_release_checkpoint(trainer, directory, epoch):
    """The release's save: prompt_learner/model.pth.tar-<epoch>, fp16 tensors, its dead weight included."""
    learner = trainer.model.prompt_learner
    state = {key: learner.state_dict()[key].half() for key in ("ctx", "token_prefix", "token_suffix")}
    state["bias_vectors"] = torch.randn(1, 512).half()  # the release hard-codes 512
    state["meta_net.linear1.weight"] = torch.randn(512, 512).half()
    state["meta_net.linear1.bias"] = torch.randn(512).half()
    folder = os.path.join(directory, "prompt_learner")
    os.makedirs(folder)
    torch.save({"state_dict": state, "epoch": epoch, "optimizer": {}, "scheduler": {}},
               os.path.join(folder, f"model.pth.tar-{epoch}"))


def test_a_release_checkpoint_loads_and_gives_its_predictions(run_train, make_argv, tiny_clip_path, tmp_path):
    source = run_train(make_argv("KgCoOp", *FP32, config_file=RELEASE_YAML, flags=["--no-train"]))
    ctx = set_ctx(source, seed=3, half=True)
    write_release_checkpoint(source, tmp_path / "release", epoch=100)

    eval_dir = tmp_path / "eval"
    loaded = run_train(make_argv("KgCoOp", *FP32, config_file=RELEASE_YAML, output_dir=eval_dir,
                                 flags=["--eval-only", "--model-dir", tmp_path / "release", "--load-epoch", "100"]))
    assert loaded.model.prompt_learner.ctx.dtype == torch.float32
    assert torch.equal(loaded.model.prompt_learner.ctx, ctx)  # the fp16 values, upcast
    assert "Ignored the release's unused tensors ['bias_vectors', 'meta_net.linear1.bias'" in \
        (eval_dir / "log.txt").read_text()
    model = reference_clip(tiny_clip_path)
    images = torch.cat([batch["img"] for batch in loaded.test_loader])
    with torch.no_grad():
        expected = release_logits(model, classnames(loaded), ctx, images)
    torch.testing.assert_close(logits_of(loaded, images), expected, atol=1e-4, rtol=1e-4)
    assert not os.path.exists(eval_dir / "prompt_learner")


def test_resume_is_exact(run_train, make_argv, tmp_path, monkeypatch):
    from trainers.kgcoop import KgCoOp

    class Killed(Exception):
        pass

    # the schedule's state too: the paper-era cosine squared
    opts = (*FP32, "OPTIM.MAX_EPOCH", "2", "TRAIN.CHECKPOINT_FREQ", "1", "TRAINER.COOP.W", "8.0",
            "OPTIM.LR_SCHEDULER", "cosine", "TRAINER.KGCOOP.LEGACY_COS2", "True")
    reference = run_train(make_argv("KgCoOp", *opts, output_dir=tmp_path / "whole"))
    original = KgCoOp.forward_backward

    def forward_backward(self, batch):
        if (self.epoch, self.batch_idx) == (1, 1):
            raise Killed()
        return original(self, batch)

    monkeypatch.setattr(KgCoOp, "forward_backward", forward_backward)
    argv = make_argv("KgCoOp", *opts, output_dir=tmp_path / "killed")
    with pytest.raises(Killed):
        run_train(argv)
    monkeypatch.setattr(KgCoOp, "forward_backward", original)
    resumed = run_train(argv)
    assert "resume" in (tmp_path / "killed" / "log.txt").read_text().lower()
    assert torch.equal(resumed.model.prompt_learner.ctx, reference.model.prompt_learner.ctx)
    assert resumed.optim.param_groups[0]["lr"] == reference.optim.param_groups[0]["lr"]


# ---------------------------------------------------------------------------
# Config
# ---------------------------------------------------------------------------
@pytest.mark.parametrize("name, batch, lr, epochs, weight, backbone", [
    ("vit_b16_ep100_ctxv1", 128, 0.002, 100, 1.0, "ViT-B/16"),
    ("rn50_ep100", 128, 0.002, 100, 1.0, "RN50"),
    ("vit_b16_ep10_ctxv1_bs4_lr35", 4, 0.0035, 10, 2.0, "ViT-B/16"),
])
def test_the_release_yamls_merge_as_they_are(make_cfg, name, batch, lr, epochs, weight, backbone):
    path = os.path.join(CONFIGS, f"{name}.yaml")
    if name != "vit_b16_ep10_ctxv1_bs4_lr35":
        with open(path) as f:
            assert "    CTX_INIT: True\n" in f.read()  # the release's boolean, unchanged
    cfg = make_cfg("KgCoOp", config_file=path, fast=False)
    assert cfg.TRAINER.COOP.CTX_INIT == "a photo of a"
    assert (cfg.DATALOADER.TRAIN_X.BATCH_SIZE, cfg.OPTIM.LR, cfg.OPTIM.MAX_EPOCH) == (batch, lr, epochs)
    assert (cfg.TRAINER.COOP.W, cfg.MODEL.BACKBONE.NAME, cfg.OPTIM.WARMUP_CONS_LR) == (weight, backbone, 1e-5)
    assert cfg.TRAINER.KGCOOP.LEGACY_COS2 is False


def test_ctx_init_booleans_and_strings(make_cfg, kgcoop):
    assert make_cfg("KgCoOp", "TRAINER.COOP.CTX_INIT", "True").TRAINER.COOP.CTX_INIT == "a photo of a"
    assert make_cfg("KgCoOp", "TRAINER.COOP.CTX_INIT", "False").TRAINER.COOP.CTX_INIT == ""
    # CoOp's string CTX_INIT, from its YAML and from the command line, is untouched
    coop_yaml = os.path.join(REPO_ROOT, "configs", "trainers", "CoOp", "vit_b16_ep100_ctxv1.yaml")
    assert make_cfg("CoOp", config_file=coop_yaml, fast=False).TRAINER.COOP.CTX_INIT == "a photo of a"
    assert make_cfg("CoOp", "TRAINER.COOP.CTX_INIT", "a picture of").TRAINER.COOP.CTX_INIT == "a picture of"
    assert make_cfg("CoOp").TRAINER.COOP.CTX_INIT == ""
    # False: N_CTX random vectors N(0, 0.02) behind "X X X X"
    learner = kgcoop("TRAINER.COOP.CTX_INIT", "False", "TRAINER.COOP.N_CTX", "4").model.prompt_learner
    assert learner.ctx.shape[0] == 4 and 0.01 < learner.ctx.std().item() < 0.03
    x_ids = clip.tokenize("X X X X")[0][1:5]
    assert torch.equal(learner.tokenized_prompts[0, 1:5], x_ids)


def test_the_template_table_is_the_releases():
    from trainers.kgcoop import KGCOOP_TEMPLATES

    photo = "a photo of a {}."
    assert KGCOOP_TEMPLATES == {
        "OxfordPets": "a photo of a {}, a type of pet.", "OxfordFlowers": "a photo of a {}, a type of flower.",
        "FGVCAircraft": "a photo of a {}, a type of aircraft.",
        "DescribableTextures": "a photo of a {}, a type of texture.",
        "EuroSAT": "a centered satellite photo of {}.", "StanfordCars": photo,
        "Food101": "a photo of {}, a type of food.", "SUN397": photo, "Caltech101": photo,
        "UCF101": "a photo of a person doing {}.", "ImageNet": photo, "ImageNetSketch": photo,
        "ImageNetV2": photo, "ImageNetA": photo, "ImageNetR": photo,
    }


@pytest.mark.parametrize("legacy, expected", [
    ("True", ["1.000000e-05", "2.000000e-03", "1.999013e-03", "1.996055e-03", "1.991134e-03", "1.984260e-03",
              "1.975452e-03", "1.964731e-03", "1.952124e-03", "1.937660e-03", "1.921376e-03"]),
    ("False", ["1.000000e-05", "2.000000e-03", "1.999507e-03", "1.998027e-03"]),
])
@pytest.mark.filterwarnings("ignore:Detected call of `lr_scheduler.step\\(\\)` before `optimizer.step\\(\\)`")
def test_lr_schedules(kgcoop, legacy, expected):
    """LEGACY_COS2: the LRs of the maintainer's log in KgCoOp #2 (2.000000e-03, 1.999013e-03,
    1.996055e-03, ..., 1.921376e-03); the default: one cosine."""
    trainer = kgcoop("OPTIM.MAX_EPOCH", "100", "TRAINER.KGCOOP.LEGACY_COS2", legacy)
    lrs = [trainer.optim.param_groups[0]["lr"]]
    for _ in expected[1:]:
        trainer.update_lr()
        lrs.append(trainer.optim.param_groups[0]["lr"])
    assert [f"{lr:.6e}" for lr in lrs] == expected


@pytest.mark.parametrize("opts, message", [
    (("TRAINER.COOP.CTX_INIT", "False", "TRAINER.COOP.N_CTX", "80"), "TRAINER.COOP.N_CTX is 80, but the longest"),
    (("TRAINER.COOP.CTX_INIT", " ".join(["a"] * 75)), 'TRAINER.COOP.CTX_INIT is "a a'),
    (("TRAINER.KGCOOP.LEGACY_COS2", "True", "OPTIM.LR_SCHEDULER", "single_step"),
     "OPTIM.LR_SCHEDULER is 'single_step'"),
])
def test_bad_input_names_the_key_the_value_and_the_limit(kgcoop, opts, message):
    with pytest.raises(ConfigError, match=message) as error:
        kgcoop(*opts)
    if "TRAINER.KGCOOP.LEGACY_COS2" not in opts:
        # the Toy class names are 2 tokens: 77 - SOS, ".", EOT - 2 = 72 context tokens at most
        assert "at most 72 context tokens" in str(error.value)


# ---------------------------------------------------------------------------
# Precision
# ---------------------------------------------------------------------------
@pytest.mark.parametrize("prec", ["bf16", "amp"])
def test_bf16_and_amp_run_a_step(make_trainer, prec, images):
    if prec == "amp":
        with pytest.warns(UserWarning, match="fp32 on CPU"):
            trainer = make_trainer("KgCoOp", "TRAINER.COOP.PREC", prec, config_file=RELEASE_YAML)
    else:
        trainer = make_trainer("KgCoOp", "TRAINER.COOP.PREC", prec, config_file=RELEASE_YAML)
    assert trainer.prec == ("bf16" if prec == "bf16" else "fp32")
    ctx_before = trainer.model.prompt_learner.ctx.detach().clone()
    trainer.batch_idx, trainer.num_batches = 0, 2
    trainer.set_model_mode("train")
    summary = trainer.forward_backward({"img": images, "label": torch.tensor([0, 1, 2]),
                                        "domain": torch.zeros(3, dtype=torch.long)})
    assert all(torch.isfinite(torch.tensor(v)) for v in summary.values()) and "loss_kg" in summary
    assert not torch.equal(trainer.model.prompt_learner.ctx, ctx_before)


def test_fp16_keeps_the_releases_layout(make_cfg):
    """The GPU fp16 path on CPU half kernels: ctx is an fp16 leaf, as in the release."""
    from trainers.kgcoop import CustomCLIP

    cfg = make_cfg("KgCoOp", "TRAINER.COOP.CTX_INIT", "a photo of a")
    model = CustomCLIP(cfg, ["red circle", "green square"], cast_clip(load_clip_to_cpu(cfg), "fp16"), prec="fp16")
    features = model.forward_features(torch.randn(2, 3, 32, 32))
    logits = model.head.logits(features)
    terms = model.head.losses(features, logits, torch.tensor([0, 1]))
    sum(model.head.weights[k] * v for k, v in terms.items()).backward()
    assert model.prompt_learner.ctx.dtype == torch.float16 and model.head.template_text_features.dtype == torch.float32
    assert torch.isfinite(model.prompt_learner.ctx.grad).all() and terms["kg"].abs() < 1e-2
