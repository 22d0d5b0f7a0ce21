"""MVLPT (trainers/mvlpt.py) against a re-statement of the release's formulation written here with
clip/ alone (from the notes, docs/mvlpt.md), on a tiny random CLIP; multitask data, transfer, the
release's checkpoint layout, resume and bad input.

The release's mechanics:
* text (MCoOp, MUPT): "X..X {name}." embedded; [SOS] ctx[:n/2] name ctx[n/2:] . [EOT] (middle);
  MVPT: "a photo of a {name}." with no learned token;
* image: conv -> CLS -> + positional embedding -> ln_pre, THEN the n_v shallow prompts go right
  after CLS; before block i >= 1 the prompt positions get deep[i-1]; CLS -> ln_post -> proj;
* MUPT: text (n_t, W_t) -> Linear -> dim, visual rows [shallow; deep] flattened -> Linear -> dim,
  concatenated (text first), one pre-LN block (1 head, 4x QuickGELU MLP), split, Linear back.
  The release hands the block a batch-first (1, T, dim) tensor, which the sequence-first block
  reads as T sequences of one token: attention over a single key is the value itself.
"""
import re

import pytest
import torch

import clip
from dassl.utils import CheckpointError, ConfigError
from dpl_helpers import image_folder_from_toy, normalise, randomise, run_train

ATOL = 1e-4
BASE = ("TRAINER.MVLPT.PREC", "fp32")
MCOOP = BASE + ("TRAINER.MVLPT.COOP.N_CTX", "4")
MVPT = BASE + ("TRAINER.MVLPT.VPT.N_CTX", "3")
MUPT = BASE + ("TRAINER.MVLPT.COOP.N_CTX", "4", "TRAINER.MVLPT.VPT.N_CTX", "2", "TRAINER.MVLPT.PROJECT_DIM", "64")
LEARN = ("OPTIM.NAME", "adam", "OPTIM.LR", "0.01", "OPTIM.WARMUP_EPOCH", "0")


@pytest.fixture
def images():
    return torch.randn(3, 3, 32, 32, generator=torch.Generator().manual_seed(0))


# ---------------------------------------------------------------------------
# The release's formulation, from clip/ alone
# ---------------------------------------------------------------------------
def ref_block(block, x, mix):
    """One pre-LN block on (tokens, width): with ``mix`` the tokens attend to each other (1 head);
    without, every token is its own sequence, so attention returns its own value."""
    h = block.ln_1(x)
    w = block.attn.in_proj_weight
    b = block.attn.in_proj_bias
    d = x.shape[-1]
    q, k, v = h @ w[:d].t() + b[:d], h @ w[d:2 * d].t() + b[d:2 * d], h @ w[2 * d:].t() + b[2 * d:]
    attended = torch.softmax(q @ k.t() / d ** 0.5, dim=-1) @ v if mix else v
    x = x + attended @ block.attn.out_proj.weight.t() + block.attn.out_proj.bias
    return x + block.mlp(block.ln_2(x))


def ref_coupled(pl, mix):
    """MUPT's reparameterisation -> (text ctx, shallow (n_v, d), deep (L-1, n_v, d))."""
    visual = torch.cat([pl.vpt_embeddings, pl.vpt_embeddings_deep])  # (L, n_v, d)
    rows, n_v, d = visual.shape
    n_t = pl.ctx.shape[0]
    tokens = torch.cat([pl.mvlpt_proj_ctx_coop_pre(pl.ctx), pl.mvlpt_proj_ctx_vpt_pre(visual.reshape(-1, d))])
    tokens = ref_block(pl.mvlpt_proj.resblocks[0], tokens, mix)
    text = pl.mvlpt_proj_ctx_coop_post(tokens[:n_t])
    visual = pl.mvlpt_proj_ctx_vpt_post(tokens[n_t:]).reshape(rows, n_v, d)
    return text, visual[0], visual[1:]


def ref_text(model, names, ctx):
    if ctx is None:
        tok = clip.tokenize([f"a photo of a {name}." for name in names])
        x = model.token_embedding(tok)
    else:
        n = ctx.shape[0]
        tok = clip.tokenize([" ".join(["X"] * n) + f" {name}." for name in names])
        emb = model.token_embedding(tok)
        rows = []
        for i, name in enumerate(names):
            length = len(clip.tokenize(name)[0].nonzero()) - 2
            name_emb = emb[i, 1 + n:1 + n + length]
            rows.append(torch.cat([emb[i, :1], ctx[: n // 2], name_emb, ctx[n // 2:], emb[i, 1 + n + length:]]))
        x = torch.stack(rows)
    x = model.transformer((x + model.positional_embedding).permute(1, 0, 2)).permute(1, 0, 2)
    x = model.ln_final(x)
    return normalise(x[torch.arange(len(names)), tok.argmax(-1)] @ model.text_projection)


def ref_image(model, images, shallow, deep):
    v = model.visual
    x = v.conv1(images)
    x = x.reshape(x.shape[0], x.shape[1], -1).permute(0, 2, 1)
    x = torch.cat([v.class_embedding.expand(x.shape[0], 1, -1), x], dim=1) + v.positional_embedding
    x = v.ln_pre(x)
    n = shallow.shape[0]
    x = torch.cat([x[:, :1], shallow.expand(x.shape[0], -1, -1), x[:, 1:]], dim=1).permute(1, 0, 2)
    for b, block in enumerate(v.transformer.resblocks):
        if b > 0 and deep is not None:
            x = torch.cat([x[:1], deep[b - 1].unsqueeze(1).expand(-1, x.shape[1], -1), x[1 + n:]])
        x = block(x)
    return normalise(v.ln_post(x.permute(1, 0, 2)[:, 0]) @ v.proj)


def reference_logits(trainer, clip_path, images, mix=True):
    model = clip.build_model(clip.load_state_dict(clip_path)).float().eval()
    pl = trainer.model.prompt_learner
    names = [name.replace("_", " ") for name in trainer.dm.dataset.classnames]
    with torch.no_grad():
        if pl.coupled:
            ctx, shallow, deep = ref_coupled(pl, mix)
        else:
            ctx = pl.ctx
            shallow = None if pl.vpt_embeddings is None else pl.vpt_embeddings[0]
            deep = pl.vpt_embeddings_deep
        image = model.encode_image(images) if shallow is None else ref_image(model, images, shallow, deep)
        if shallow is None:
            image = normalise(image)
        return model.logit_scale.exp() * image @ ref_text(model, names, ctx).t()


def logits(trainer, images):
    trainer.set_model_mode("eval")
    with torch.no_grad():
        return trainer.model_inference(images)


# ---------------------------------------------------------------------------
# Each variant against the re-statement
# ---------------------------------------------------------------------------
@pytest.mark.parametrize("variant, opts", [("MCoOp", MCOOP), ("MVPT", MVPT), ("MUPT", MUPT),
                                           ("MUPT", MUPT + ("TRAINER.MVLPT.UPT_MIXING", "compat"))])
def test_logits_equal_the_release_formulation(make_trainer, tiny_clip_path, images, variant, opts):
    trainer = make_trainer("MVLPT", *opts)
    pl = trainer.model.prompt_learner
    assert pl.variant == variant
    randomise(pl, seed=3)
    mix = "compat" not in opts
    torch.testing.assert_close(logits(trainer, images), reference_logits(trainer, tiny_clip_path, images, mix),
                               atol=ATOL, rtol=1e-4)


def test_mvpt_has_no_text_parameter_and_deep_prompts_for_every_block(make_trainer):
    pl = make_trainer("MVLPT", *MVPT).model.prompt_learner
    assert sorted(pl.state_dict()) == ["vpt_embeddings", "vpt_embeddings_deep"]
    assert pl.vpt_embeddings.shape == (1, 3, 128) and pl.vpt_embeddings_deep.shape == (1, 3, 128)  # 2 blocks
    bound = (6.0 / (3 * 8 * 8 + 128)) ** 0.5  # VPT's Xavier-uniform form, patch 8
    assert pl.vpt_embeddings.abs().max() <= bound


def test_compat_and_mixed_differ_only_in_the_mixing(make_trainer, images, capsys):
    mixed = make_trainer("MVLPT", *MUPT)
    capsys.readouterr()
    compat = make_trainer("MVLPT", *MUPT, "TRAINER.MVLPT.UPT_MIXING", "compat")
    assert "MVLPT compat" in capsys.readouterr().out  # the release's layout is never silent
    randomise(mixed.model.prompt_learner, seed=5)
    compat.model.prompt_learner.load_state_dict(mixed.model.prompt_learner.state_dict())  # same tensors
    assert not torch.allclose(logits(mixed, images), logits(compat, images), atol=1e-3)

    def outputs(trainer, bump):
        pl = trainer.model.prompt_learner
        with torch.no_grad():
            pl.vpt_embeddings_deep[0, 0] += bump
            text, _, _ = pl.prompts()
            pl.vpt_embeddings_deep[0, 0] -= bump
        return text

    # compat: a visual prompt token does not reach the text tokens; mixed: it does
    assert torch.allclose(outputs(compat, 0.0), outputs(compat, 1.0), atol=1e-6)
    assert not torch.allclose(outputs(mixed, 0.0), outputs(mixed, 1.0), atol=1e-4)
    # compat = mixed with every token run alone
    pl = mixed.model.prompt_learner
    with torch.no_grad():
        alone = ref_coupled(pl, mix=False)
        ours = compat.model.prompt_learner.prompts()
    for a, b in zip(alone, ours):
        torch.testing.assert_close(a, b, atol=1e-4, rtol=1e-4)


def test_gradients_reach_every_mupt_tensor(make_trainer, images):
    trainer = make_trainer("MVLPT", *MUPT)
    trainer.set_model_mode("train")
    trainer.model_inference(images).logsumexp(-1).sum().backward()
    for name, p in trainer.model.prompt_learner.named_parameters():
        assert p.grad is not None and p.grad.abs().sum() > 0, name


# ---------------------------------------------------------------------------
# Multitask data
# ---------------------------------------------------------------------------
@pytest.fixture
def two_datasets(make_argv, toy_root, tmp_path, run_train):
    """make_argv for MVLPT on Toy (4 classes) + an ImageFolder of 2 classes (labels 4-5)."""
    run_train(make_argv("ZeroshotCLIP", "TRAINER.ZSCLIP.PREC", "fp32", flags=("--eval-only",)))  # makes Toy
    folder = tmp_path / "shapes2"
    image_folder_from_toy(toy_root, str(folder))

    def _argv(*opts, names="Toy,ImageFolder", **kwargs):
        return make_argv("MVLPT", "DATASET.NAME", names, "DATASET.IMAGE_FOLDER.DIR", str(folder), *opts, **kwargs)

    return _argv


def build(argv):
    import train
    import trainers
    from dassl.engine import build_trainer

    trainers.register_all()
    return build_trainer(train.setup_cfg(train.get_parser().parse_args(argv)))


def test_concatenated_label_space_and_task_aware_evaluation(two_datasets, images):
    trainer = build(two_datasets(*MCOOP))
    assert trainer.dm.dataset.classnames[:4] == trainer.dm.dataset.datasets[0].classnames
    assert trainer.model.prompt_learner.token_prefix.shape[0] == 6  # columns: Toy's 4 classes, then the folder's 2
    features = trainer.model.forward_features(images)
    assert trainer.head_logits(features).shape == (3, 6)  # training: one softmax over all 6
    restricted = trainer.head_logits(features, torch.tensor([0, 1, 1]))  # testing: the sample's own task
    assert torch.isinf(restricted[0, 4:]).all() and torch.isfinite(restricted[0, :4]).all()
    assert torch.isinf(restricted[1, :4]).all() and torch.isfinite(restricted[1, 4:]).all()
    trainer.cfg.defrost()
    trainer.cfg.TRAINER.MVLPT.TASK_AWARE_EVAL = False
    assert torch.isfinite(trainer.head_logits(features, torch.tensor([0, 1, 1]))).all()


def test_task_balanced_batches(two_datasets):
    trainer = build(two_datasets(*MCOOP, "DATALOADER.TRAIN_X.SAMPLER", "TaskBalancedSampler",
                                 "DATALOADER.TRAIN_X.BATCH_SIZE", "4"))
    counts = trainer.dm.dataset.count_per_dataset("train_x")
    assert counts["Toy"] > counts["ImageFolder"]  # unbalanced tasks
    batches = list(trainer.train_loader_x)
    assert len(batches) == sum(counts.values()) // 4
    for batch in batches:
        assert sorted(batch["dataset"].tolist()) == [0, 0, 1, 1]


def test_source_training_selects_on_the_mean_per_task_val_accuracy(two_datasets, tmp_path):
    out = tmp_path / "source"
    trainer = run_train(two_datasets(*MUPT, *LEARN, "OPTIM.MAX_EPOCH", "2", "TEST.FINAL_MODEL", "best_val",
                                     output_dir=out))
    log = (out / "log.txt").read_text()
    per_task = re.findall(r"\* accuracy on (\w+): ([\d.]+)%", log)
    assert {name for name, _ in per_task} == {"Toy", "ImageFolder"}
    means = [float(m) for m in re.findall(r"Model selection: mean val accuracy over 2 datasets = ([\d.]+)%", log)]
    assert len(means) == 2
    best = torch.load(out / "prompt_learner" / "model-best.pth.tar", weights_only=True)
    assert best["val_result"] == pytest.approx(max(means), abs=0.01)
    assert best["mvlpt"]["variant"] == "MUPT" and best["mvlpt"]["upt_mixing"] == "mixed"
    assert trainer.num_classes == 6


# ---------------------------------------------------------------------------
# Transfer, release checkpoints, resume
# ---------------------------------------------------------------------------
def test_transfer_loads_exactly_the_class_independent_tensors(two_datasets, make_argv, tmp_path, capsys):
    source_dir = tmp_path / "source"
    source = run_train(two_datasets(*MUPT, *LEARN, output_dir=source_dir))
    expected = {k: v.clone() for k, v in source.model.prompt_learner.state_dict().items()}
    capsys.readouterr()
    target = build(make_argv("MVLPT", *MUPT, "TRAINER.MVLPT.SOURCE_CHECKPOINT", str(source_dir),
                             output_dir=tmp_path / "target"))
    out = capsys.readouterr().out
    loaded = target.model.prompt_learner.state_dict()
    assert sorted(loaded) == sorted(expected)
    for key, value in expected.items():
        assert torch.equal(loaded[key], value), key
    assert "loaded 23 class-independent tensors of a MUPT prompt" in out and "vpt_embeddings_deep (1, 2, 128)" in out
    # the class-dependent text is the target's own: 4 Toy classes, not the source's 6
    assert target.model.prompt_learner.token_prefix.shape[0] == 4


def test_a_source_of_another_variant_or_backbone_is_refused(two_datasets, make_argv, tmp_path):
    from clip.tiny import save_tiny_clip

    source_dir = tmp_path / "mcoop"
    run_train(make_argv("MVLPT", *MCOOP, output_dir=source_dir))
    with pytest.raises(CheckpointError, match=r"holds a MCoOp prompt .* this run builds MVPT"):
        build(make_argv("MVLPT", *MVPT, "TRAINER.MVLPT.SOURCE_CHECKPOINT", str(source_dir)))
    with pytest.raises(CheckpointError, match=r"UPT_MIXING mixed; this run uses compat"):
        mupt_dir = tmp_path / "mupt"
        run_train(make_argv("MVLPT", *MUPT, output_dir=mupt_dir))
        build(make_argv("MVLPT", *MUPT, "TRAINER.MVLPT.UPT_MIXING", "compat",
                        "TRAINER.MVLPT.SOURCE_CHECKPOINT", str(mupt_dir)))
    other = save_tiny_clip(str(tmp_path / "other.pt"), "ViT", vision_width=192)
    with pytest.raises(CheckpointError, match=r"another backbone \(vision width 128.*expects vision width 192"):
        build(make_argv("MVLPT", *MCOOP, "TRAINER.MVLPT.SOURCE_CHECKPOINT", str(source_dir), clip_path=other))


def release_layout_checkpoint(directory, trainer, epoch, old_names):
    """A checkpoint as the release writes it: fp16 tensors, the class buffers of ANOTHER class list
    (7 classes), and (older files) ``upt_proj`` instead of ``mvlpt_proj``."""
    g = torch.Generator().manual_seed(11)
    state = {}
    for key, value in trainer.model.prompt_learner.state_dict().items():
        name = key.replace("mvlpt_proj", "upt_proj") if old_names else key
        state[name] = (torch.randn(value.shape, generator=g) * 0.3).half()
    width = trainer.model.prompt_learner.token_prefix.shape[-1]
    state["token_prefix"] = torch.randn(7, 1, width).half()
    state["token_suffix"] = torch.randn(7, 72, width).half()
    folder = directory / "prompt_learner"
    folder.mkdir(parents=True)
    torch.save({"state_dict": state, "epoch": epoch, "optimizer": None, "scheduler": None},
               folder / f"model.pth.tar-{epoch}")
    return {key: state[key.replace("mvlpt_proj", "upt_proj") if old_names else key].float()
            for key in trainer.model.prompt_learner.state_dict()}


@pytest.mark.parametrize("opts, old_names", [(MVPT, False), (MUPT + ("TRAINER.MVLPT.UPT_MIXING", "compat"), True)])
def test_a_release_checkpoint_loads_and_gives_its_logits(make_argv, make_trainer, tiny_clip_path, tmp_path, images,
                                                         opts, old_names):
    fresh = make_trainer("MVLPT", *opts)
    release = release_layout_checkpoint(tmp_path / "release", fresh, 5, old_names)
    trainer = run_train(make_argv("MVLPT", *opts, flags=("--eval-only", "--model-dir", tmp_path / "release",
                                                           "--load-epoch", "5")))
    for key, value in release.items():
        assert torch.equal(trainer.model.prompt_learner.state_dict()[key], value), key
    expected = reference_logits(trainer, tiny_clip_path, images, mix=False)
    torch.testing.assert_close(logits(trainer, images), expected, atol=ATOL, rtol=1e-4)


def test_a_release_mupt_checkpoint_under_mixed_warns(make_argv, make_trainer, tmp_path):
    fresh = make_trainer("MVLPT", *MUPT)
    release_layout_checkpoint(tmp_path / "release", fresh, 3, old_names=False)
    with pytest.warns(UserWarning, match="UPT_MIXING compat to reproduce"):
        run_train(make_argv("MVLPT", *MUPT, flags=("--eval-only", "--model-dir", tmp_path / "release",
                                                     "--load-epoch", "3")))


class _Killed(Exception):
    pass


@pytest.mark.slow
def test_a_killed_multitask_run_resumes_exactly(two_datasets, tmp_path, monkeypatch):
    from trainers.mvlpt import MVLPT

    opts = (*MUPT, *LEARN, "OPTIM.MAX_EPOCH", "2", "DATALOADER.TRAIN_X.SAMPLER", "TaskBalancedSampler",
            "TRAIN.CHECKPOINT_FREQ", "1")
    reference = run_train(two_datasets(*opts, output_dir=tmp_path / "whole"))
    original = MVLPT.forward_backward

    def forward_backward(self, batch):
        if (self.epoch, self.batch_idx) == (1, 1):
            raise _Killed()
        return original(self, batch)

    monkeypatch.setattr(MVLPT, "forward_backward", forward_backward)
    argv = two_datasets(*opts, output_dir=tmp_path / "killed")
    with pytest.raises(_Killed):
        run_train(argv)
    monkeypatch.setattr(MVLPT, "forward_backward", original)
    resumed = run_train(argv)
    assert "resume" in (tmp_path / "killed" / "log.txt").read_text().lower()
    for key, value in reference.model.prompt_learner.state_dict().items():
        assert torch.equal(resumed.model.prompt_learner.state_dict()[key], value), key


# ---------------------------------------------------------------------------
# Bad input
# ---------------------------------------------------------------------------
def test_class_names_that_do_not_fit_the_text_context(two_datasets, tmp_path):
    long_name = " ".join(["word"] * 70)
    argv = two_datasets(*BASE, "TRAINER.MVLPT.COOP.N_CTX", "16", "DATASET.IMAGE_FOLDER.CLASSNAMES",
                        f"['alpha:{long_name}']", names="ImageFolder")
    with pytest.raises(ConfigError, match=r"do not fit the 77-token text context with 16 context tokens.*"
                                          r"70 tokens; expected at most 58"):
        build(argv)


@pytest.mark.parametrize("opts, message", [
    (BASE, "at least one > 0"),
    (MUPT + ("TRAINER.MVLPT.PROJECT_METHOD", "mlp"), "nn.GeLU"),
    (MUPT + ("TRAINER.MVLPT.UPT_MIXING", "sequence"), "UPT_MIXING"),
    (MCOOP + ("TRAINER.MVLPT.COOP.CSC", "True"), "CSC True is not supported"),
])
def test_bad_options_are_refused(make_trainer, opts, message):
    with pytest.raises(ConfigError, match=message):
        make_trainer("MVLPT", *opts)
