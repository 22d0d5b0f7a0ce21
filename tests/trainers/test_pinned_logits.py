"""The logits of every trainer equal a re-statement of its method, on a tiny CLIP with fixed prompts.

Written before the trainers moved onto the shared trainer layer (provider / head / base trainer)
and kept after it: the references below use only ``clip`` itself (token embeddings, the blocks'
own forward and attention, the towers' norms and projections), never code from ``trainers/``,
so a change of the trainer layer that changes a single logit fails here (fp32: 1e-6 absolute plus
1e-5 relative, the rounding of two summation orders; a wrong token, weight or recipe moves logits
by orders of magnitude more).

* ZeroshotCLIP(2): mean of the normalised template features, renormalised (CLIP's recipe).
* CoOp: [SOS][ctx][class][.][EOT] embeddings through the text tower (end / front / middle, CSC).
* CoCoOp: ctx + meta_net(normalised image feature), a text pass per image.
* TrainerSupernet: the release's formulation, one complete attention per option k = 0..N mixed
  with softmax(alpha) weights, in every block of both towers.
* TrainerSubnet: key/value prompts per block; text input = token embeddings averaged over the
  60 ImageNet templates, read at the EOT position of the LAST template (the release's quirk);
  the KD term = KL(zero-shot teacher || student) / (batch x classes).
"""
import json

import pytest
import torch
import torch.nn.functional as F

import clip
from datasets.templates import IMAGENET_TEMPLATES, IMAGENET_TEMPLATES_SELECT

ATOL, RTOL = 1e-6, 1e-5


# ---------------------------------------------------------------------------
# References, from clip/ alone
# ---------------------------------------------------------------------------
def reference_clip(path):
    return clip.build_model(clip.load_state_dict(path)).float().eval()


def normalise(x):
    return x / x.norm(dim=-1, keepdim=True)


def ids(texts):
    return clip.tokenize(texts)


def run_blocks(blocks, x, entries=None):
    """x: (n, batch, width) through ``blocks``; ``entries`` per block: None, a kv tensor, or
    ("mix", options, weights) for the supernet's mixture of complete attentions."""
    for b, block in enumerate(blocks):
        entry = None if entries is None else entries[b]
        if isinstance(entry, tuple):
            _, options, weights = entry
            h = block.ln_1(x)
            attn = weights[0] * block.attention(h)
            for k, option in enumerate(options, start=1):
                attn = attn + weights[k] * block.attention(h, option)
            x = x + attn
            x = x + block.mlp(block.ln_2(x))
        else:
            x = block(x, entry)
    return x


def text_features(model, embeddings, eot_ids, entries=None):
    """embeddings: (n_prompts, n_tokens, width) -> normalised (n_prompts, embed)."""
    x = embeddings + model.positional_embedding
    x = run_blocks(model.transformer.resblocks, x.permute(1, 0, 2), entries).permute(1, 0, 2)
    x = model.ln_final(x)
    eot = eot_ids.argmax(dim=-1)
    return normalise(x[torch.arange(len(x)), eot] @ model.text_projection)


def image_features(model, images, entries=None):
    v = model.visual
    x = v.conv1(images)
    x = x.reshape(x.shape[0], x.shape[1], -1).permute(0, 2, 1)
    x = torch.cat([v.class_embedding.expand(x.shape[0], 1, -1), x], dim=1) + v.positional_embedding
    x = v.ln_pre(x)
    x = run_blocks(v.transformer.resblocks, x.permute(1, 0, 2), entries).permute(1, 0, 2)
    return normalise(v.ln_post(x[:, 0]) @ v.proj)


def scaled(model, img, txt):
    return model.logit_scale.exp() * img @ txt.t()


# ---------------------------------------------------------------------------
# Fixtures
# ---------------------------------------------------------------------------
@pytest.fixture
def images():
    return torch.randn(3, 3, 32, 32, generator=torch.Generator().manual_seed(5))


def classnames(trainer):
    return [name.replace("_", " ") for name in trainer.dm.dataset.classnames]


def logits_of(trainer, images):
    trainer.set_model_mode("eval")
    with torch.no_grad():
        return trainer.model_inference(images).float()


def randomise(module, seed, names=None):
    """Fixed random values for the learnable tensors of ``module`` (all, or those in ``names``)."""
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for name, p in module.named_parameters():
            if names is None or any(n in name for n in names):
                p.copy_(torch.randn(p.shape, generator=g) * 0.5)


# ---------------------------------------------------------------------------
# Zero-shot
# ---------------------------------------------------------------------------
@pytest.mark.parametrize("name", ["ZeroshotCLIP", "ZeroshotCLIP2"])
def test_zero_shot_logits(make_trainer, tiny_clip_path, images, name):
    trainer = make_trainer(name, "TRAINER.ZSCLIP.PREC", "fp32")
    model = reference_clip(tiny_clip_path)
    names = classnames(trainer)
    templates = ["a photo of a {}."] if name == "ZeroshotCLIP" else IMAGENET_TEMPLATES_SELECT + ["a photo of a {}."]
    with torch.no_grad():
        per_template = []
        for template in templates:
            tok = ids([template.format(c) for c in names])
            per_template.append(text_features(model, model.token_embedding(tok), tok))
        txt = normalise(torch.stack(per_template).mean(0))
        expected = scaled(model, image_features(model, images), txt)
    torch.testing.assert_close(logits_of(trainer, images), expected, rtol=RTOL, atol=ATOL)


# ---------------------------------------------------------------------------
# CoOp
# ---------------------------------------------------------------------------
@pytest.mark.parametrize("position,csc", [("end", False), ("end", True), ("front", False), ("middle", True)])
def test_coop_logits(make_trainer, tiny_clip_path, images, position, csc):
    n_ctx = 4
    trainer = make_trainer("CoOp", "TRAINER.COOP.PREC", "fp32", "TRAINER.COOP.N_CTX", str(n_ctx),
                           "TRAINER.COOP.CSC", str(csc), "TRAINER.COOP.CLASS_TOKEN_POSITION", position)
    pl = trainer.model.prompt_learner
    randomise(pl, seed=1)
    ctx = pl.ctx.detach()
    model = reference_clip(tiny_clip_path)
    names = classnames(trainer)
    with torch.no_grad():
        rows, eot_rows = [], []
        for i, name in enumerate(names):
            c = ctx[i] if csc else ctx
            name_ids = ids([name])[0]
            name_tokens = name_ids[1:int(name_ids.argmax())]  # the class name's BPE tokens
            emb = lambda t: model.token_embedding(t.unsqueeze(0))[0]  # noqa: E731
            sos, dot, eot = emb(ids([""])[0][:1]), emb(ids(["."])[0][1:2]), emb(ids([""])[0][1:2])
            name_emb = emb(name_tokens)
            if position == "end":
                parts = [sos, c, name_emb, dot, eot]
            elif position == "front":
                parts = [sos, name_emb, c, dot, eot]
            else:
                parts = [sos, c[: n_ctx // 2], name_emb, c[n_ctx // 2:], dot, eot]
            seq = torch.cat(parts)
            pad = model.token_embedding(torch.zeros(77 - len(seq), dtype=torch.long))
            rows.append(torch.cat([seq, pad]))
            eot_ids = torch.zeros(77, dtype=torch.long)
            eot_ids[len(seq) - 1] = 1
            eot_rows.append(eot_ids)
        txt = text_features(model, torch.stack(rows), torch.stack(eot_rows))
        expected = scaled(model, image_features(model, images), txt)
    torch.testing.assert_close(logits_of(trainer, images), expected, rtol=RTOL, atol=ATOL)


# ---------------------------------------------------------------------------
# CoCoOp
# ---------------------------------------------------------------------------
def test_cocoop_logits(make_trainer, tiny_clip_path, images):
    n_ctx = 4
    trainer = make_trainer("CoCoOp", "TRAINER.COCOOP.PREC", "fp32", "TRAINER.COCOOP.N_CTX", str(n_ctx))
    pl = trainer.model.prompt_learner
    randomise(pl, seed=2)
    model = reference_clip(tiny_clip_path)
    names = classnames(trainer)
    with torch.no_grad():
        tok = ids([" ".join(["X"] * n_ctx) + f" {name}." for name in names])
        base = model.token_embedding(tok)
        img = image_features(model, images)
        m = pl.meta_net
        rows = []
        for f in img:
            shift = m.linear2(F.relu(m.linear1(f)))  # (width,)
            emb = base.clone()
            emb[:, 1:1 + n_ctx] = pl.ctx.detach() + shift
            rows.append(scaled(model, f.unsqueeze(0), text_features(model, emb, tok))[0])
        expected = torch.stack(rows)
    torch.testing.assert_close(logits_of(trainer, images), expected, rtol=RTOL, atol=ATOL)


# ---------------------------------------------------------------------------
# DPL
# ---------------------------------------------------------------------------
def test_supernet_logits_are_the_release_mixture(make_trainer, tiny_clip_path, images):
    n = 2
    trainer = make_trainer("TrainerSupernet", "TRAINER.TRAINERSUPERNET.N_CTX_VISION", str(n),
                           "TRAINER.TRAINERSUPERNET.N_CTX_TEXT", str(n))
    pl = trainer.model.prompt_learner
    randomise(pl, seed=3)
    model = reference_clip(tiny_clip_path)
    names = classnames(trainer)

    def entries(options, alphas):
        weights = alphas.detach().softmax(dim=-1)
        return [("mix", [p.detach() for p in block], weights[b]) for b, block in enumerate(options)]

    with torch.no_grad():
        tok = ids([f"a photo of a {name}." for name in names])
        txt = text_features(model, model.token_embedding(tok), tok, entries(pl.ctx_txt_lst, pl.alphas_txt))
        img = image_features(model, images, entries(pl.ctx_img_lst, pl.alphas_img))
        expected = scaled(model, img, txt)
    torch.testing.assert_close(logits_of(trainer, images), expected, rtol=RTOL, atol=ATOL)


def subnet_reference(trainer, model, images):
    pl = trainer.model.prompt_learner
    names = classnames(trainer)
    kv = lambda plist: [p.detach() if p.shape[0] else None for p in plist]  # noqa: E731
    with torch.no_grad():
        embeddings = 0.0
        for template in IMAGENET_TEMPLATES:
            tok = ids([template.format(c) for c in names])
            embeddings = embeddings + model.token_embedding(tok)
        txt = text_features(model, embeddings / len(IMAGENET_TEMPLATES), tok, kv(pl.ctx_txt_lst))
        student = scaled(model, image_features(model, images, kv(pl.ctx_img_lst)), txt)
        teacher_txt = normalise(torch.stack([
            text_features(model, model.token_embedding(t), t)
            for t in (ids([template.format(c) for c in names]) for template in IMAGENET_TEMPLATES)
        ]).sum(0))
        teacher = scaled(model, image_features(model, images), teacher_txt)
    return student, teacher


@pytest.mark.parametrize("kd", [0.0, 2.0])
def test_subnet_logits_and_distillation(make_trainer, tiny_clip_path, images, tmp_path, kd):
    config = tmp_path / "config.json"
    config.write_text(json.dumps({"image": {"prompt_lengths": [2, 0]}, "text": {"prompt_lengths": [0, 3]}}))
    trainer = make_trainer("TrainerSubnet", "TRAINER.TRAINERSUBNET.PROMPT_CONFIG", str(config),
                           "TRAINER.TRAINERSUBNET.KD_WEIGHT", str(kd))
    randomise(trainer.model.prompt_learner, seed=4)
    model = reference_clip(tiny_clip_path)
    student, teacher = subnet_reference(trainer, model, images)
    torch.testing.assert_close(logits_of(trainer, images), student, rtol=RTOL, atol=ATOL)

    # One training step's loss terms, from the same logits: CE, and KL(teacher || student).
    label = torch.tensor([0, 1, 2])
    batch = {"img": images, "label": label, "domain": torch.zeros(3, dtype=torch.long)}
    lr = trainer.optim.param_groups[0]["lr"]
    for group in trainer.optim.param_groups:
        group["lr"] = 0.0  # the step must not move the prompts before we compare
    trainer.batch_idx, trainer.num_batches = 0, 2
    trainer.set_model_mode("train")
    summary = trainer.forward_backward(batch)
    for group in trainer.optim.param_groups:
        group["lr"] = lr
    ce = F.cross_entropy(student, label)
    assert summary["loss_ce"] == pytest.approx(ce.item(), abs=1e-5)
    if kd:
        kl = (teacher.softmax(-1) * (teacher.log_softmax(-1) - student.log_softmax(-1))).sum() / student.numel()
        assert summary["loss_kd"] == pytest.approx(kl.item(), abs=1e-6)
        assert summary["loss"] == pytest.approx(ce.item() + kd * kl.item(), abs=1e-5)
    else:
        assert "loss_kd" not in summary
