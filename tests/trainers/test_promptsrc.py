"""PromptSRC (trainers/promptsrc.py) against the notes' formulas, written here with clip/ alone.

Prompts are IVLP's: text positions 1..n of "a photo of a {class}." hold ctx, text blocks 1..J-1
overwrite positions [1, 1 + n); vision: n tokens appended after the positional embedding (before
ln_pre), vision blocks 1..J-1 overwrite the last n positions; inserted tensors rounded to fp16.
Losses: CE + 25 mean|t - g| + 10 mean|v - v_zs| + KL(p_zs || p) / (batch x n_cls), g the mean of the
60 templates' raw frozen text features, normalised. GPA: g_e ~ N(e; mean, std), normalised.
"""
import os

import pytest
import torch
import torch.nn.functional as F

import clip
from datasets.templates import IMAGENET_TEMPLATES
from dassl.utils import CheckpointError, ConfigError
from dpl_helpers import logits_of, normalise, randomise

ATOL, RTOL = 1e-5, 1e-5
OPTS = ("TRAINER.PROMPTSRC.PREC", "fp32", "TRAINER.PROMPTSRC.N_CTX_TEXT", "4", "TRAINER.PROMPTSRC.N_CTX_VISION", "3",
        "TRAINER.PROMPTSRC.PROMPT_DEPTH_TEXT", "2", "TRAINER.PROMPTSRC.PROMPT_DEPTH_VISION", "2")
LEARNABLE = ["ctx", "text_deep.1", "vision_deep.1", "vpt"]


@pytest.fixture(autouse=True, scope="module")
def one_thread():
    """The tiny CLIP's matmuls are far too small for a thread pool; on a shared machine the pool
    only waits for busy cores (the 60-template pass takes 10 s instead of 0.2 s)."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.fixture
def images():
    return torch.randn(3, 3, 32, 32, generator=torch.Generator().manual_seed(0))


def prompts_of(trainer):
    return {k: v.detach().clone() for k, v in trainer.model.prompt_learner.state_dict().items()}


# ---------------------------------------------------------------------------
# The formulation, from clip/ alone
# ---------------------------------------------------------------------------
def frozen_clip(path):
    return clip.build_model(clip.load_state_dict(path)).float().eval()


def half(t):
    return t.half().float()  # the release casts every inserted prompt to fp16


def prompted_text(model, names, ctx, deep):
    """deep: {block: (n, width)} -> normalised (n_cls, embed)."""
    n = ctx.shape[0]
    tok = clip.tokenize([f"a photo of a {name}." for name in names])
    emb = model.token_embedding(tok)
    x = torch.cat([emb[:, :1], ctx.expand(len(names), -1, -1), emb[:, 1 + n:]], dim=1) + model.positional_embedding
    x = x.permute(1, 0, 2)
    for b, block in enumerate(model.transformer.resblocks):
        if b in deep:
            x = torch.cat([x[:1], half(deep[b]).unsqueeze(1).expand(-1, x.shape[1], -1), x[1 + n:]])
        x = block(x)
    x = model.ln_final(x.permute(1, 0, 2))
    return normalise(x[torch.arange(len(names)), tok.argmax(-1)] @ model.text_projection)


def prompted_image(model, images, vpt, deep):
    v = model.visual
    x = v.conv1(images).flatten(2).permute(0, 2, 1)  # (batch, grid**2, width)
    x = torch.cat([v.class_embedding.expand(len(x), 1, -1), x], dim=1) + v.positional_embedding
    x = torch.cat([x, half(vpt).expand(len(x), -1, -1)], dim=1)
    x = v.ln_pre(x).permute(1, 0, 2)
    n = vpt.shape[0]
    for b, block in enumerate(v.transformer.resblocks):
        if b in deep:
            x = torch.cat([x[:-n], half(deep[b]).unsqueeze(1).expand(-1, x.shape[1], -1)])
        x = block(x)
    return normalise(v.ln_post(x[0]) @ v.proj)


def formulation(path, trainer, images):
    """-> (logit scale, prompted image features, prompted text features, zero-shot image features,
    normalised template-mean text features), all from clip/ and the trainer's prompt values."""
    model = frozen_clip(path)
    pl = trainer.model.prompt_learner
    names = [name.replace("_", " ") for name in trainer.dm.dataset.classnames]
    with torch.no_grad():
        img = prompted_image(model, images, pl.vpt, {int(b): t for b, t in pl.vision_deep.items()})
        txt = prompted_text(model, names, pl.ctx, {int(b): t for b, t in pl.text_deep.items()})
        raw = torch.stack([model.encode_text(clip.tokenize([t.format(n) for n in names])) for t in IMAGENET_TEMPLATES])
        template = normalise(raw.mean(0))
        zs_img = normalise(model.encode_image(images))
    return model.logit_scale.exp(), img, txt, zs_img, template


# ---------------------------------------------------------------------------
# Model and losses
# ---------------------------------------------------------------------------
def test_logits_are_ivlp_and_the_keys_ivlps(make_trainer, tiny_clip_path, images):
    trainer = make_trainer("PromptSRC", *OPTS)
    pl = trainer.model.prompt_learner
    assert sorted(pl.state_dict()) == LEARNABLE
    assert IMAGENET_TEMPLATES[0] == "a photo of a {}." and len(IMAGENET_TEMPLATES) == 60
    randomise(pl, seed=1)
    scale, img, txt, _, _ = formulation(tiny_clip_path, trainer, images)
    torch.testing.assert_close(logits_of(trainer, images), scale * img @ txt.t(), atol=ATOL, rtol=RTOL)


def test_each_loss_term_is_the_notes_formula_and_only_prompts_get_gradients(make_trainer, tiny_clip_path, images):
    trainer = make_trainer("PromptSRC", *OPTS)
    randomise(trainer.model.prompt_learner, seed=2)
    label = torch.tensor([0, 1, 3])
    trainer.set_model_mode("train")
    loss, terms, _ = trainer.compute_loss(images, label)

    scale, img, txt, zs_img, template = formulation(tiny_clip_path, trainer, images)
    logits, zs_logits = scale * img @ txt.t(), scale * zs_img @ template.t()
    p_zs = zs_logits.softmax(-1)
    expected = {
        "ce": F.cross_entropy(logits, label),
        "text": (txt - template).abs().mean(),
        "image": (img - zs_img).abs().mean(),
        "kl": (p_zs * (p_zs.log() - logits.log_softmax(-1))).sum() / logits.numel(),
    }
    assert sorted(terms) == sorted(expected)
    for name, value in expected.items():
        torch.testing.assert_close(terms[name].detach(), value, atol=ATOL, rtol=RTOL, msg=name)
    total = expected["ce"] + 25 * expected["text"] + 10 * expected["image"] + expected["kl"]
    torch.testing.assert_close(loss.detach(), total, atol=ATOL, rtol=RTOL)
    assert all(v.item() > 0 for v in expected.values())  # every term is exercised

    loss.backward()
    with_grad = {n for n, p in trainer.model.named_parameters() if p.grad is not None and p.grad.abs().sum() > 0}
    assert with_grad == {f"prompt_learner.{k}" for k in LEARNABLE}


@pytest.mark.parametrize("prec", ["bf16", "amp"])
def test_reduced_precisions_run_a_step_and_log_every_term(make_trainer, prec):
    trainer = make_trainer("PromptSRC", *OPTS[2:], "TRAINER.PROMPTSRC.PREC", prec)
    trainer.batch_idx, trainer.num_batches, trainer.epoch = 0, 2, 0
    trainer.set_model_mode("train")
    summary = trainer.forward_backward(next(iter(trainer.train_loader_x)))
    assert {"loss", "loss_ce", "loss_text", "loss_image", "loss_kl"} <= set(summary)
    assert all(torch.isfinite(torch.tensor(v)) for v in summary.values())


@pytest.fixture(scope="module")
def learning_setup(tmp_path_factory):
    """A wider three-block CLIP at 48 px and a larger Toy (64 images per class, its own root): on the
    default two-block CLIP the KL term towards its meaningless zero-shot predictions drowns the
    little that 28 test images can show."""
    from clip.tiny import save_tiny_clip

    path = save_tiny_clip(str(tmp_path_factory.mktemp("promptsrc_clip") / "tiny_vit.pt"), "ViT", vision_layers=3,
                          transformer_layers=3, vision_width=192, image_resolution=48)
    data = ("INPUT.SIZE", "(48, 48)", "DATASET.TOY.IMAGES_PER_CLASS", "64", "DATASET.NUM_SHOTS", "16")
    return dict(clip_path=path, root=str(tmp_path_factory.mktemp("promptsrc_toy"))), data


def test_a_short_run_learns(run_train, make_argv, learning_setup):
    from dpl_helpers import LEARNING_OPTS

    where, data = learning_setup
    epochs = ("OPTIM.MAX_EPOCH", "7", "TRAINER.PROMPTSRC.GPA_MEAN", "7")  # the release's weights, GPA on the end
    trained = run_train(make_argv("PromptSRC", *OPTS, *LEARNING_OPTS, *data, *epochs, **where)).test()
    zero_shot = run_train(make_argv("ZeroshotCLIP", "TRAINER.ZSCLIP.PREC", "fp32", *data, flags=["--eval-only"],
                                    **where)).test()
    assert trained > zero_shot + 10.0, (trained, zero_shot)


# ---------------------------------------------------------------------------
# Gaussian prompt aggregation
# ---------------------------------------------------------------------------
def test_gpa_weights_of_the_base_to_new_config():
    from trainers.promptsrc import gaussian_weights

    weights = dict(enumerate(gaussian_weights(15, 1, 20), start=1))
    assert sum(weights.values()) == pytest.approx(1.0)
    for epochs, value in (((15,), 0.399), ((14, 16), 0.242), ((13, 17), 0.054), ((12, 18), 0.004)):
        for epoch in epochs:
            assert weights[epoch] == pytest.approx(value, abs=5e-4), epoch


class Recorder:
    """Wraps PromptSRC.after_epoch: the prompts as each epoch's training leaves them."""

    def __init__(self, monkeypatch):
        from trainers.promptsrc import PromptSRC

        self.prompts = []
        original = PromptSRC.after_epoch

        def after_epoch(trainer):
            self.prompts.append(prompts_of(trainer))
            original(trainer)

        monkeypatch.setattr(PromptSRC, "after_epoch", after_epoch)


def test_aggregated_prompts_are_the_weighted_sum_of_the_epochs(run_train, make_argv, tiny_clip_path, tmp_path,
                                                               monkeypatch):
    from trainers.promptsrc import gaussian_weights

    recorder = Recorder(monkeypatch)
    trainer = run_train(make_argv("PromptSRC", *OPTS, "OPTIM.MAX_EPOCH", "3", "TRAINER.PROMPTSRC.GPA_MEAN", "2",
                                  output_dir=tmp_path / "run"))
    weights = gaussian_weights(2, 1, 3)
    assert len(recorder.prompts) == 3 and min(weights) > 0.2
    final = prompts_of(trainer)
    for key in LEARNABLE:
        expected = sum(w * epoch[key] for w, epoch in zip(weights, recorder.prompts))
        torch.testing.assert_close(final[key], expected, atol=1e-6, rtol=0)
        assert not torch.allclose(final[key], recorder.prompts[-1][key])  # not simply the last epoch

    # the last checkpoint: the aggregated learnable tensors only, plus GPA's state
    checkpoint = torch.load(tmp_path / "run" / "VLPromptLearner" / "model.pth.tar-3", weights_only=True)
    assert sorted(checkpoint["state_dict"]) == LEARNABLE
    for key in LEARNABLE:
        assert torch.equal(checkpoint["state_dict"][key], final[key])
    assert checkpoint["gpa"]["epochs"] == 3
    # frozen CLIP untouched (the release averages it too)
    frozen = frozen_clip(tiny_clip_path).visual.state_dict()
    for key, value in trainer.model.image_encoder.state_dict().items():
        assert torch.equal(value, frozen[key]), key


def test_resume_in_the_middle_ends_like_an_uninterrupted_run(run_train, make_argv, tmp_path, monkeypatch):
    from trainers.promptsrc import PromptSRC

    class Killed(Exception):
        pass

    opts = (*OPTS, "OPTIM.MAX_EPOCH", "3", "TRAIN.CHECKPOINT_FREQ", "1", "TRAINER.PROMPTSRC.GPA_MEAN", "2")
    reference = prompts_of(run_train(make_argv("PromptSRC", *opts, output_dir=tmp_path / "whole")))
    original = PromptSRC.forward_backward

    def forward_backward(self, batch):
        if (self.epoch, self.batch_idx) == (1, 1):
            raise Killed()
        return original(self, batch)

    monkeypatch.setattr(PromptSRC, "forward_backward", forward_backward)
    argv = make_argv("PromptSRC", *opts, output_dir=tmp_path / "killed")
    with pytest.raises(Killed):
        run_train(argv)
    monkeypatch.setattr(PromptSRC, "forward_backward", original)
    resumed = run_train(argv)
    assert resumed.start_epoch == 1 and resumed.gpa.epochs == 3
    for key, value in reference.items():
        assert torch.equal(prompts_of(resumed)[key], value), key

    other_weights = make_argv("PromptSRC", *opts[:-1], "5", output_dir=tmp_path / "killed")
    with pytest.raises(ConfigError, match="TRAINER.PROMPTSRC.GPA_MEAN: 2 -> 5"):  # the run record refuses first
        run_train(other_weights)
    os.remove(tmp_path / "killed" / "run_settings.json")  # a folder from before run records: the GPA state refuses
    os.remove(tmp_path / "killed" / "run_complete.json")
    with pytest.raises(CheckpointError, match="other GPA weights"):
        run_train(other_weights)


def test_one_epoch_with_its_window_inside_runs(run_train, make_argv, monkeypatch):
    recorder = Recorder(monkeypatch)
    trainer = run_train(make_argv("PromptSRC", *OPTS, "TRAINER.PROMPTSRC.GPA_MEAN", "1",
                                  "TRAINER.PROMPTSRC.GPA_STD", "1"))
    assert trainer.gpa.weights == [1.0]
    for key, value in recorder.prompts[0].items():
        assert torch.equal(prompts_of(trainer)[key], value), key


@pytest.mark.parametrize("mean,std,message", [
    ("1000", "1", r"TRAINER.PROMPTSRC.GPA_MEAN 1000 and TRAINER.PROMPTSRC.GPA_STD 1 give every epoch 1..1 "
                  r"\(OPTIM.MAX_EPOCH\) a Gaussian weight of 0"),
    ("1", "0", "TRAINER.PROMPTSRC.GPA_STD is 0; expected a positive"),
])
def test_a_window_without_weight_is_refused(make_trainer, mean, std, message):
    with pytest.raises(ConfigError, match=message):
        make_trainer("PromptSRC", *OPTS, "TRAINER.PROMPTSRC.GPA_MEAN", mean, "TRAINER.PROMPTSRC.GPA_STD", std)


# ---------------------------------------------------------------------------
# The release's checkpoints
# ---------------------------------------------------------------------------
def test_release_checkpoint_gives_the_release_logits(run_train, make_argv, tiny_clip_path, images, tmp_path):
    source = run_train(make_argv("PromptSRC", *OPTS, flags=["--no-train"]))
    pl = source.model.prompt_learner
    randomise(pl, seed=4)
    # The release's whole model in fp16: its prompts inside CLIP's blocks, the frozen CLIP and the
    # prompt learner's unprompted copy of the image encoder beside them.
    whole = {k: v.half() for k, v in source.model.state_dict().items() if not k.startswith("prompt_learner.")}
    whole.update({f"prompt_learner.ZS_image_encoder.{k}": v.half()
                  for k, v in source.model.image_encoder.state_dict().items()})
    whole.update({"prompt_learner.ctx": pl.ctx.half(), "prompt_learner.token_prefix": pl.token_prefix.half(),
                  "prompt_learner.token_suffix": pl.token_suffix.half(), "image_encoder.VPT": pl.vpt.half(),
                  "image_encoder.transformer.resblocks.1.VPT_shallow": pl.vision_deep["1"].half(),
                  "text_encoder.transformer.resblocks.1.VPT_shallow": pl.text_deep["1"].half()})
    folder = tmp_path / "release" / "VLPromptLearner"
    os.makedirs(folder)
    torch.save({"state_dict": whole, "epoch": 20, "optimizer": {}, "scheduler": {}}, folder / "model.pth.tar-20")

    loaded = run_train(make_argv("PromptSRC", *OPTS, flags=["--eval-only", "--model-dir", tmp_path / "release",
                                                            "--load-epoch", "20"]))
    with torch.no_grad():  # the release's values are fp16: the reference uses the same rounded values
        for p in pl.parameters():
            p.copy_(half(p))
    for key, value in prompts_of(source).items():
        assert torch.equal(prompts_of(loaded)[key], value), key
    scale, img, txt, _, _ = formulation(tiny_clip_path, source, images)
    torch.testing.assert_close(logits_of(loaded, images), scale * img @ txt.t(), atol=1e-4, rtol=1e-4)
