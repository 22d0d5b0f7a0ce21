"""Exact speed-ups of the shared layer: the text tower cut after the last EOT token, and the class
text features computed once per evaluation. Each must leave every trainer's numbers unchanged."""
import json

import pytest
import torch
import torch.nn.functional as F

import clip
from clip.model import BlockPrompt
from trainers.common import TextEncoder, text_cut, text_length
from trainers.model import PromptedCLIP

ATOL, RTOL = 1e-5, 1e-5  # fp32; the cut only drops positions that the EOT output never sees

CASES = {
    "ZeroshotCLIP": ("ZeroshotCLIP", "TRAINER.ZSCLIP.PREC", "fp32"),
    "ZeroshotCLIP2": ("ZeroshotCLIP2", "TRAINER.ZSCLIP.PREC", "fp32"),
    "CoOp-end": ("CoOp", "TRAINER.COOP.PREC", "fp32", "TRAINER.COOP.N_CTX", "4"),
    "CoOp-middle-csc": ("CoOp", "TRAINER.COOP.PREC", "fp32", "TRAINER.COOP.N_CTX", "3",
                        "TRAINER.COOP.CLASS_TOKEN_POSITION", "middle", "TRAINER.COOP.CSC", "True"),
    "CoOp-front-init": ("CoOp", "TRAINER.COOP.PREC", "fp32", "TRAINER.COOP.CTX_INIT", "a photo of a",
                        "TRAINER.COOP.CLASS_TOKEN_POSITION", "front"),
    "CoCoOp": ("CoCoOp", "TRAINER.COCOOP.PREC", "fp32", "TRAINER.COCOOP.N_CTX", "4"),
    "Supernet-fused": ("TrainerSupernet", "TRAINER.TRAINERSUPERNET.N_CTX_VISION", "2",
                       "TRAINER.TRAINERSUPERNET.N_CTX_TEXT", "3"),
    "Supernet-naive": ("TrainerSupernet", "TRAINER.TRAINERSUPERNET.N_CTX_VISION", "2",
                       "TRAINER.TRAINERSUPERNET.N_CTX_TEXT", "3", "TRAINER.TRAINERSUPERNET.IMPL", "naive"),
    "Subnet-ensemble-kd": ("TrainerSubnet", "TRAINER.TRAINERSUBNET.KD_WEIGHT", "1.0"),
    "Subnet-default": ("TrainerSubnet", "TRAINER.TRAINERSUBNET.CTX_INIT", "default"),
}


@pytest.fixture
def images():
    return torch.randn(3, 3, 32, 32, generator=torch.Generator().manual_seed(0))


@pytest.fixture
def prompt_config(tmp_path):
    path = tmp_path / "config.json"
    path.write_text(json.dumps({"image": {"prompt_lengths": [2, 1]}, "text": {"prompt_lengths": [3, 0]}}))
    return str(path)


def build(make_trainer, case, cut, prompt_config, *extra):
    name, *opts = CASES[case]
    opts += list(extra)
    if name == "TrainerSubnet":
        opts += ["TRAINER.TRAINERSUBNET.PROMPT_CONFIG", prompt_config]
    trainer = make_trainer(name, "MODEL.TEXT_CUT_AFTER_EOT", str(cut), *opts)
    g = torch.Generator().manual_seed(3)
    with torch.no_grad():  # the same non-trivial prompts in both builds
        for p in trainer.model.prompt_learner.parameters():
            p.copy_(torch.randn(p.shape, generator=g) * 0.5)
    return trainer


def text_positions(trainer):
    """Record the sequence length entering the text tower's first block."""
    seen = []
    block = trainer.model.text_encoder.transformer.resblocks[0]
    block.register_forward_pre_hook(lambda module, args: seen.append(args[0].shape[0]))
    return seen


def logits_and_grads(trainer, images):
    trainer.set_model_mode("eval")
    logits = trainer.model_inference(images).float()
    params = [p for p in trainer.model.prompt_learner.parameters() if p.requires_grad and p.numel()]
    if not params:
        return logits.detach(), []
    loss = F.cross_entropy(logits, torch.arange(len(images)) % logits.shape[1])
    return logits.detach(), torch.autograd.grad(loss, params, allow_unused=True)


@pytest.mark.parametrize("case", sorted(CASES))
def test_text_cut_leaves_logits_and_gradients_unchanged(make_trainer, images, prompt_config, case):
    cut = build(make_trainer, case, True, prompt_config)
    full = build(make_trainer, case, False, prompt_config)
    seen_cut, seen_full = text_positions(cut), text_positions(full)
    logits_cut, grads_cut = logits_and_grads(cut, images)
    logits_full, grads_full = logits_and_grads(full, images)
    torch.testing.assert_close(logits_cut, logits_full, atol=ATOL, rtol=RTOL)
    for a, b in zip(grads_cut, grads_full):
        if a is None or b is None:
            assert a is None and b is None
        else:
            torch.testing.assert_close(a, b, atol=ATOL, rtol=RTOL)
    assert cut.model.text_encoder.cut_after_eot is True and full.model.text_encoder.cut_after_eot is False
    if case.startswith("Zeroshot"):  # fixed classifier: the text tower ran while building
        assert not seen_cut and not seen_full
    else:
        assert seen_full and set(seen_full) == {77}
        assert seen_cut and max(seen_cut) < 30, seen_cut  # Toy's prompts end well before 77


def test_zero_shot_features_follow_the_option(make_trainer):
    """The zero-shot classifier is computed while building: the option reaches it there too."""
    trainer = make_trainer("ZeroshotCLIP2", "TRAINER.ZSCLIP.PREC", "fp32", "MODEL.TEXT_CUT_AFTER_EOT", "False")
    assert trainer.model.text_encoder.cut_after_eot is False
    assert TextEncoder(clip.build_model(clip.load_state_dict(trainer.cfg.MODEL.BACKBONE.PATH))).cut_after_eot


def test_text_length_reads_eot_and_replaced_tokens():
    ids = torch.zeros(3, 77, dtype=torch.long)
    for row, eot in enumerate([5, 9, 7]):
        ids[row, 0], ids[row, 1:eot], ids[row, eot] = 49406, 320, 49407
    eot = ids.argmax(-1)
    assert text_length(eot) == 10
    kv = torch.zeros(4, 8)
    assert text_length(eot, [kv, None, BlockPrompt(kv=kv)]) == 10  # key/value prompts: no position
    assert text_length(eot, [BlockPrompt(tokens=torch.zeros(12, 8)), None]) == 13  # they must fit


def test_replaced_and_kv_text_prompts_are_exact_with_the_cut(tiny_clip_path):
    model = clip.build_model(clip.load_state_dict(tiny_clip_path)).float().eval()
    g = torch.Generator().manual_seed(1)
    width = model.transformer.width
    texts = ["a photo of a X X X dog.", "X X X cat.", "a very long sentence about a X X X bird."]
    ids = clip.tokenize(texts)
    embeddings = model.token_embedding(ids)
    prompts = [BlockPrompt(kv=torch.randn(2, width, generator=g), tokens=torch.randn(3, width, generator=g)),
               BlockPrompt(tokens=torch.randn(3, width, generator=g))]
    with text_cut(True):
        cut = PromptedCLIP(model)
    with text_cut(False):
        full = PromptedCLIP(model)
    assert cut.text_encoder.cut_after_eot and not full.text_encoder.cut_after_eot
    with torch.no_grad():
        torch.testing.assert_close(cut.encode_text(embeddings, ids, prompts), full.encode_text(embeddings, ids, prompts),
                                   atol=ATOL, rtol=RTOL)
        # and it is the plain model's own encoder without prompts
        torch.testing.assert_close(cut.encode_text(embeddings, ids), F.normalize(model.encode_text(ids), dim=-1),
                                   atol=ATOL, rtol=RTOL)


# ---------------------------------------------------------------------------
# Class text features once per test()
# ---------------------------------------------------------------------------
def count_text_passes(trainer):
    calls = []
    trainer.model.text_encoder.register_forward_hook(lambda *args: calls.append(1))
    return calls


def predictions(trainer):
    trainer.set_model_mode("eval")
    out = []
    with torch.no_grad():
        for batch in trainer.test_loader:
            image, _ = trainer.parse_batch_test(batch)
            out.append(trainer.model_inference(image))
    return torch.cat(out)


@pytest.mark.parametrize("case", ["CoOp-end", "Subnet-ensemble-kd", "Supernet-fused"])
def test_text_features_are_computed_once_per_test(make_trainer, prompt_config, case):
    trainer = build(make_trainer, case, True, prompt_config, "DATALOADER.TEST.BATCH_SIZE", "8")
    batches = len(trainer.test_loader)
    assert batches > 1, "the test needs several test batches"
    calls = count_text_passes(trainer)
    uncached = predictions(trainer)  # model_inference outside test(): one text pass per batch
    assert len(calls) == batches

    calls.clear()
    seen = []
    original = trainer.model_inference
    trainer.model_inference = lambda image: seen.append(original(image)) or seen[-1]
    trainer.test()
    assert len(calls) == 1
    torch.testing.assert_close(torch.cat(seen), uncached, atol=0, rtol=0)
    assert trainer.model._text_cache is None  # dropped when test() returns

    # training goes on with fresh features: a changed prompt changes the next evaluation
    with torch.no_grad():
        for p in trainer.model.prompt_learner.parameters():
            p.add_(torch.randn_like(p))  # (a constant shift would vanish in the layer norm)
    calls.clear()
    seen.clear()
    trainer.test()
    assert len(calls) == 1
    assert not torch.allclose(torch.cat(seen), uncached)


def test_image_conditioned_text_is_not_cached(make_trainer, prompt_config):
    trainer = build(make_trainer, "CoCoOp", True, prompt_config, "DATALOADER.TEST.BATCH_SIZE", "8")
    calls = count_text_passes(trainer)
    trainer.test()
    assert len(calls) == len(trainer.dm.dataset.test)  # one text pass per image
