"""The prompt-aware ResidualAttentionBlock against reference formulations."""
import math

import pytest
import torch
import torch.nn.functional as F

from clip.model import ResidualAttentionBlock, Transformer

WIDTH, HEADS, CONTEXT = 64, 4, 16


def causal(n):
    return torch.full((n, n), float("-inf")).triu_(1)


def make_block(text: bool, seed=0):
    torch.manual_seed(seed)
    block = ResidualAttentionBlock(WIDTH, HEADS, causal(CONTEXT) if text else None)
    # non-trivial biases and norms, so a wrong slice of in_proj shows up
    with torch.no_grad():
        for p in [block.attn.in_proj_bias, block.attn.out_proj.bias, block.ln_1.weight, block.ln_1.bias]:
            p.normal_(0, 0.5)
    return block.eval()


def reference_block(block, x, prompt=None, mask=None):
    """CLIP's block through nn.MultiheadAttention's own math: keys/values = ln_1([x ; prompt])."""
    h = block.ln_1(x)
    kv = h
    if prompt is not None and prompt.shape[0] > 0:
        p = prompt if prompt.dim() == 3 else prompt.unsqueeze(1).expand(-1, x.shape[1], -1)
        kv = torch.cat([h, block.ln_1(p)], dim=0)
        if mask is not None:
            mask = torch.cat([mask, torch.zeros(mask.shape[0], p.shape[0])], dim=1)
    # need_weights=True forces the explicit softmax path inside nn.MultiheadAttention
    attn = block.attn(h, kv, kv, attn_mask=mask, need_weights=True)[0]
    x = x + attn
    return x + block.mlp(block.ln_2(x))


def explicit_attention(block, h, mask=None):
    """softmax(Q K^T / sqrt(d) + mask) V written out by hand, (n, batch, width)."""
    n, b, w = h.shape
    d = w // HEADS
    wq, wk, wv = block.attn.in_proj_weight.chunk(3)
    bq, bk, bv = block.attn.in_proj_bias.chunk(3)

    def heads(t):
        return t.reshape(n, b, HEADS, d).permute(1, 2, 0, 3)

    q, k, v = heads(h @ wq.T + bq), heads(h @ wk.T + bk), heads(h @ wv.T + bv)
    scores = q @ k.transpose(-1, -2) / math.sqrt(d)
    if mask is not None:
        scores = scores + mask
    o = (scores.softmax(-1) @ v).permute(2, 0, 1, 3).reshape(n, b, w)
    return o @ block.attn.out_proj.weight.T + block.attn.out_proj.bias


@pytest.mark.parametrize("text", [False, True])
def test_sdpa_attention_equals_explicit_softmax(text):
    block = make_block(text)
    n = CONTEXT - 3 if text else 10  # shorter than the stored mask: it must be sliced
    h = block.ln_1(torch.randn(n, 3, WIDTH))
    mask = causal(n) if text else None
    torch.testing.assert_close(block.attention(h), explicit_attention(block, h, mask), atol=1e-5, rtol=1e-5)


@pytest.mark.parametrize("text", [False, True])
@pytest.mark.parametrize("prompt_shape", [None, (0,), (3,), (3, 2)])
def test_block_equals_multihead_attention_reference(text, prompt_shape):
    block = make_block(text)
    n = 12
    x = torch.randn(n, 2, WIDTH)
    prompt = None
    if prompt_shape is not None:
        k = prompt_shape[0]
        prompt = torch.randn(k, WIDTH) if len(prompt_shape) == 1 else torch.randn(k, 2, WIDTH)
    mask = causal(n) if text else None
    torch.testing.assert_close(block(x, prompt), reference_block(block, x, prompt, mask), atol=1e-5, rtol=1e-5)


@pytest.mark.parametrize("text", [False, True])
def test_no_prompt_and_empty_prompt_equal_plain(text):
    block = make_block(text)
    x = torch.randn(9, 2, WIDTH)
    plain = block(x)
    torch.testing.assert_close(block(x, None), plain, atol=0, rtol=0)
    torch.testing.assert_close(block(x, torch.empty(0, WIDTH)), plain, atol=0, rtol=0)
    torch.testing.assert_close(block(x, torch.empty(0, 2, WIDTH)), plain, atol=0, rtol=0)


@pytest.mark.parametrize("text", [False, True])
def test_provider_reimplementing_plain_attention_equals_plain(text):
    block = make_block(text)
    x = torch.randn(9, 2, WIDTH)
    calls = []

    def provider(blk, h):
        calls.append(h.shape)
        q, k, v = blk.project_qkv(h)
        mask = blk.causal_mask(h.shape[0], h.device, h.dtype)
        return blk.project_out(F.scaled_dot_product_attention(q, k, v, attn_mask=mask))

    torch.testing.assert_close(block(x, provider), block(x), atol=1e-6, rtol=1e-6)
    assert calls == [(9, 2, WIDTH)]


def test_shared_prompt_equals_per_sample_copy():
    block = make_block(text=True)
    x, p = torch.randn(7, 3, WIDTH), torch.randn(4, WIDTH)
    torch.testing.assert_close(block(x, p), block(x, p.unsqueeze(1).expand(-1, 3, -1)), atol=1e-6, rtol=1e-6)


def test_wrong_prompt_width_is_a_clear_error():
    block = make_block(text=False)
    with pytest.raises(ValueError, match=r"\(k, 64\)"):
        block(torch.randn(5, 1, WIDTH), torch.randn(2, WIDTH + 1))


def make_text_transformer(layers=3):
    torch.manual_seed(1)
    return Transformer(WIDTH, layers, HEADS, attn_mask=causal(CONTEXT)).eval()


# Perturbations are random, not constant shifts: ln_1 removes a constant added to every feature.
def test_text_prompts_are_visible_to_every_position():
    model = make_text_transformer()
    x = torch.randn(10, 2, WIDTH)
    prompts = [torch.randn(2, WIDTH) for _ in range(3)]
    out = model(x, prompts)
    changed = [p.clone() for p in prompts]
    changed[0] = changed[0] + torch.randn_like(changed[0])
    out_changed = model(x, changed)
    # position 0 sees only itself among real tokens, so any change there comes from the prompt
    assert not torch.allclose(out[0], out_changed[0], atol=1e-4)
    assert not torch.allclose(model(x)[0], out[0], atol=1e-4)


@pytest.mark.parametrize("with_prompts", [False, True])
def test_causality_among_real_tokens(with_prompts):
    model = make_text_transformer()
    x = torch.randn(10, 2, WIDTH)
    prompts = [torch.randn(3, WIDTH) for _ in range(3)] if with_prompts else None
    j = 6
    x_changed = x.clone()
    x_changed[j] += torch.randn(2, WIDTH)
    out, out_changed = model(x, prompts), model(x_changed, prompts)
    torch.testing.assert_close(out[:j], out_changed[:j], atol=1e-6, rtol=1e-6)
    assert not torch.allclose(out[j:], out_changed[j:], atol=1e-4)


def test_image_prompts_change_outputs_everywhere():
    torch.manual_seed(2)
    model = Transformer(WIDTH, 2, HEADS).eval()
    x = torch.randn(5, 2, WIDTH)
    prompts = [torch.randn(2, WIDTH), None]
    out = model(x, prompts)
    assert not torch.allclose(out, model(x), atol=1e-4)
    # image tokens see each other: changing the last token changes the first
    x_changed = x.clone()
    x_changed[-1] += torch.randn(2, WIDTH)
    assert not torch.allclose(model(x_changed)[0], model(x)[0], atol=1e-4)


def test_prompt_count_must_match_depth():
    model = make_text_transformer(layers=3)
    with pytest.raises(ValueError, match="one prompt entry per block"):
        model(torch.randn(4, 1, WIDTH), [None, None])


def test_gradients_reach_prompts_not_only_outputs():
    model = make_text_transformer()
    prompts = [torch.randn(2, WIDTH, requires_grad=True) for _ in range(3)]
    model(torch.randn(6, 2, WIDTH), prompts).sum().backward()
    assert all(p.grad is not None and p.grad.abs().sum() > 0 for p in prompts)


@pytest.mark.parametrize("dtype", [torch.bfloat16] + ([torch.float16] if torch.cuda.is_available() else []))
def test_low_precision_blocks_follow_fp32(dtype):
    device = "cuda" if dtype == torch.float16 else "cpu"
    block = make_block(text=True).to(device)
    x, p = torch.randn(8, 2, WIDTH, device=device), torch.randn(3, WIDTH, device=device)
    expected = block(x, p)
    low = make_block(text=True).to(device=device, dtype=dtype)
    out = low(x.to(dtype), p)  # fp32 prompt with a low-precision block: cast inside
    assert out.dtype == dtype
    torch.testing.assert_close(out.float(), expected, atol=0.1, rtol=0.05)


def test_autocast_block_runs_in_bfloat16():
    block = make_block(text=True)
    x, p = torch.randn(8, 2, WIDTH), torch.randn(3, WIDTH)
    expected = block(x, p)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        out = block(x, p)
    assert torch.isfinite(out).all()
    torch.testing.assert_close(out.float(), expected, atol=0.1, rtol=0.05)
