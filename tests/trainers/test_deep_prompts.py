"""The supernet's two mixture implementations, and the mixture's limits (tiny random CLIP)."""
import pytest
import torch
import torch.nn.functional as F

from clip.tiny import build_random_clip
from trainers.deep_prompts import (
    MixedPrompt,
    branch_shapes,
    fixed_prompts,
    mixed_attention_fused,
    mixed_attention_kernel,
    mixed_attention_naive,
    subnet_prompts,
    supernet_options,
)
from trainers.model import PromptedCLIP


@pytest.fixture(scope="module")
def clip_model():
    return build_random_clip("ViT", seed=3).float()


def _inputs(clip_model, n_classes=5, batch=3):
    g = torch.Generator().manual_seed(0)
    images = torch.randn(batch, 3, 32, 32, generator=g)
    tokens = torch.randint(1, 400, (n_classes, 10), generator=g)
    tokenized = torch.zeros(n_classes, 77, dtype=torch.long)
    tokenized[:, 0] = 49406
    tokenized[:, 1:11] = tokens
    tokenized[:, 11] = 49407
    return images, tokenized


def _supernet_logits(model, clip_model, options, alphas, impl, images, tokenized):
    prompts = {}
    for branch in ("image", "text"):
        log_w = F.log_softmax(alphas[branch].float(), dim=-1)
        prompts[branch] = [MixedPrompt(list(opts), log_w[b], impl) for b, opts in enumerate(options[branch])]
    image_features = model.encode_image(images, prompts["image"])
    text_features = model.encode_text(clip_model.token_embedding(tokenized), tokenized, prompts["text"])
    return model.logits(image_features, text_features)


@pytest.mark.parametrize("impl", ["fused", "fused_math", "fused_kernel"])
@pytest.mark.parametrize("max_len", [1, 3])
def test_fused_equals_naive_logits_and_gradients(clip_model, max_len, impl):
    torch.manual_seed(0)
    model = PromptedCLIP(clip_model)
    shapes = branch_shapes(clip_model)
    options = {b: supernet_options(shapes[b][0], shapes[b][1], max_len, "normal") for b in shapes}
    alphas = {b: torch.randn(shapes[b][0], max_len + 1, requires_grad=True) for b in shapes}
    images, tokenized = _inputs(clip_model)
    labels = torch.tensor([0, 3, 4])
    results = {}
    for name in ("naive", impl):
        logits = _supernet_logits(model, clip_model, options, alphas, name, images, tokenized)
        loss = F.cross_entropy(logits, labels)
        params = [alphas["image"], alphas["text"]] + list(options["image"].parameters()) + list(
            options["text"].parameters()
        )
        results[name] = (logits.detach(), torch.autograd.grad(loss, params))
    torch.testing.assert_close(results[impl][0], results["naive"][0], rtol=1e-4, atol=1e-4)
    for g_fused, g_naive in zip(results[impl][1], results["naive"][1]):
        assert g_naive.abs().sum() > 0
        torch.testing.assert_close(g_fused, g_naive, rtol=1e-3, atol=1e-5)


@pytest.mark.parametrize("mixture", [mixed_attention_fused, mixed_attention_kernel])
@pytest.mark.parametrize("tower", ["text", "image"])
def test_block_level_fused_equals_naive_with_and_without_causal_mask(clip_model, mixture, tower):
    torch.manual_seed(1)
    blocks = clip_model.transformer.resblocks if tower == "text" else clip_model.visual.transformer.resblocks
    block = blocks[0]  # text block: causal mask among real tokens
    width = block.attn.embed_dim
    h = torch.randn(12, 4, width, requires_grad=True)
    options = [torch.randn(k, width, requires_grad=True) for k in range(1, 5)]
    alphas = torch.randn(5, requires_grad=True)
    outputs, grads = [], []
    for fn in (mixture, mixed_attention_naive):
        out = fn(block, h, options, F.log_softmax(alphas, dim=-1))
        outputs.append(out)
        grads.append(torch.autograd.grad((out * torch.linspace(-1, 1, width)).sum(), [h, alphas] + options))
    torch.testing.assert_close(outputs[0], outputs[1], rtol=1e-4, atol=1e-5)
    for a, b in zip(*grads):
        torch.testing.assert_close(a, b, rtol=1e-3, atol=1e-5)


def test_attention_kernel_gives_the_log_sum_exp_and_its_gradient():
    """The kernel path's (out, lse) and both gradients equal the materialised formula (CPU kernel)."""
    from trainers.deep_prompts import _KernelAttention, _materialised_attention

    g = torch.Generator().manual_seed(2)
    inputs = [torch.randn(2, 3, 9, 8, generator=g) for _ in range(3)]
    for causal in (False, True):
        results = []
        for fn in (_KernelAttention.apply, _materialised_attention):
            leaves = [x.clone().requires_grad_(True) for x in inputs]
            out, lse = fn(*leaves, causal, 0.3)
            loss = (out * torch.cos(out)).sum() + (lse ** 2).sum()  # gradient through lse too
            results.append([out, lse] + list(torch.autograd.grad(loss, leaves)))
        for a, b in zip(*results):
            torch.testing.assert_close(a, b, rtol=1e-4, atol=1e-5)


def test_fused_resolves_by_device():
    from trainers.deep_prompts import resolve_implementation

    assert resolve_implementation("fused", "cpu") == "fused_math"
    assert resolve_implementation("fused", "cuda") == "fused_kernel"
    assert resolve_implementation("naive", "cuda") == "naive"
    with pytest.raises(ValueError, match="expected one of"):
        resolve_implementation("flash", "cpu")


@pytest.mark.parametrize("impl", ["naive", "fused"])
def test_alphas_favouring_option_zero_give_zero_shot_clip(clip_model, impl):
    model = PromptedCLIP(clip_model)
    shapes = branch_shapes(clip_model)
    options = {b: supernet_options(shapes[b][0], shapes[b][1], 3, "normal") for b in shapes}
    alphas = {b: torch.zeros(shapes[b][0], 4) for b in shapes}
    for a in alphas.values():
        a[:, 0] = 100.0  # softmax weight of option 0 is 1 to float precision
    images, tokenized = _inputs(clip_model)
    with torch.no_grad():
        supernet = _supernet_logits(model, clip_model, options, alphas, impl, images, tokenized)
        zero_shot_img = clip_model.encode_image(images)
        zero_shot_txt = clip_model.encode_text(tokenized)
        zero_shot_img = zero_shot_img / zero_shot_img.norm(dim=-1, keepdim=True)
        zero_shot_txt = zero_shot_txt / zero_shot_txt.norm(dim=-1, keepdim=True)
        zero_shot = clip_model.logit_scale.exp() * zero_shot_img @ zero_shot_txt.t()
    torch.testing.assert_close(supernet, zero_shot, rtol=1e-4, atol=1e-4)


def test_prompts_change_the_output_unless_their_weight_is_zero(clip_model):
    model = PromptedCLIP(clip_model)
    shapes = branch_shapes(clip_model)
    options = {b: supernet_options(shapes[b][0], shapes[b][1], 2, "normal") for b in shapes}
    images, tokenized = _inputs(clip_model)
    alphas = {b: torch.zeros(shapes[b][0], 3) for b in shapes}
    with torch.no_grad():
        mixed = _supernet_logits(model, clip_model, options, alphas, "fused", images, tokenized)
        plain = model.logits(model.encode_image(images),
                             model.encode_text(clip_model.token_embedding(tokenized), tokenized))
    assert (mixed - plain).abs().max() > 1e-3


def test_subnet_zero_length_blocks_are_plain_blocks(clip_model):
    shapes = branch_shapes(clip_model)
    n_img, width = shapes["image"]
    prompts = subnet_prompts([0] * n_img, width, 0.02)
    assert all(p.shape == (0, width) for p in prompts)
    entries = fixed_prompts(prompts, torch.float32)
    assert entries == [None] * n_img
    model = PromptedCLIP(clip_model)
    images, _ = _inputs(clip_model)
    with torch.no_grad():
        torch.testing.assert_close(model.encode_image(images, entries), model.encode_image(images))
        lengths = [2] + [0] * (n_img - 1)
        prompted = model.encode_image(images, fixed_prompts(subnet_prompts(lengths, width, 1.0), torch.float32))
    assert (prompted - model.encode_image(images)).abs().max() > 1e-4


def test_resnet_backbone_is_refused_with_a_clear_message():
    with pytest.raises(ValueError, match="ResNet backbone"):
        branch_shapes(build_random_clip("RN"))


def test_chunked_text_encoding_gives_the_same_logits_and_gradients(clip_model):
    torch.manual_seed(0)
    shapes = branch_shapes(clip_model)
    options = {b: supernet_options(shapes[b][0], shapes[b][1], 2, "normal") for b in shapes}
    alphas = {b: torch.randn(shapes[b][0], 3, requires_grad=True) for b in shapes}
    images, tokenized = _inputs(clip_model, n_classes=7)
    results = []
    for chunk in (0, 3):
        model = PromptedCLIP(clip_model, text_chunk_size=chunk)
        logits = _supernet_logits(model, clip_model, options, alphas, "fused", images, tokenized)
        params = [alphas["text"]] + list(options["text"].parameters())
        results.append((logits.detach(), torch.autograd.grad(logits.square().sum(), params)))
    torch.testing.assert_close(results[1][0], results[0][0], rtol=1e-5, atol=1e-5)
    for chunked, whole in zip(results[1][1], results[0][1]):
        torch.testing.assert_close(chunked, whole, rtol=1e-4, atol=1e-5)
