"""The second prompt form: tokens that replace positions (MaPLe, IVLP, VPT), on the tiny CLIP."""
import pytest
import torch

import clip
from clip.model import BlockPrompt, as_block_prompt
from clip.tiny import build_random_clip

WIDTH = 128  # text and vision width of the tiny ViT CLIP
N_TOKENS = 3


@pytest.fixture(scope="module")
def vit():
    return build_random_clip("ViT")


@pytest.fixture(scope="module")
def deep_vit():
    # three vision blocks, so prompts can stop after J = 2 < depth blocks
    return build_random_clip("ViT", vision_layers=3)


@pytest.fixture(scope="module")
def inputs():
    torch.manual_seed(0)
    return torch.randn(2, 3, 32, 32), clip.tokenize(["a photo of a cat.", "a dog"])


def random_tokens(depth, n=N_TOKENS, seed=0):
    gen = torch.Generator().manual_seed(seed)
    return [torch.randn(n, WIDTH, generator=gen) for _ in range(depth)]


def text_states(model, text, prompts=None):
    """Every position's output of the text transformer, (n_tokens, batch, width)."""
    x = model.token_embedding(text) + model.positional_embedding[: text.shape[1]]
    return model.transformer(x.permute(1, 0, 2), prompts)


def eot_features(model, states, text):
    """(n_tokens, batch, width) -> projected end-of-text features, as encode_text computes them."""
    x = model.ln_final(states.permute(1, 0, 2))
    return x[torch.arange(x.shape[0]), text.argmax(dim=-1)] @ model.text_projection


# ---- entries ----

def test_plain_entries_are_key_value_prompts():
    p = torch.randn(2, WIDTH)

    def provider(block, h):
        return block.attention(h)

    assert as_block_prompt(None) == BlockPrompt(None, None)
    assert as_block_prompt(p).kv is p and as_block_prompt(p).tokens is None
    assert as_block_prompt(provider) == BlockPrompt(kv=provider)
    entry = BlockPrompt(kv=p, tokens=p)
    assert as_block_prompt(entry) is entry
    with pytest.raises(TypeError, match="BlockPrompt"):
        as_block_prompt((p, p))  # a plain tuple is ambiguous: spell out BlockPrompt(kv, tokens)
    with pytest.raises(TypeError, match="tokens"):
        as_block_prompt(BlockPrompt(tokens=[1.0]))


# ---- no prompts: plain CLIP, bit for bit ----

def test_no_prompts_equal_plain_clip_bit_for_bit(vit, inputs):
    images, text = inputs
    depth = vit.visual.transformer.layers
    plain_image, plain_text = vit.encode_image(images), vit.encode_text(text)
    for entries in ([None] * depth, [BlockPrompt(None, None)] * depth, [BlockPrompt()] * depth):
        assert torch.equal(vit.encode_image(images, entries, extra_tokens=None), plain_image)
        assert torch.equal(vit.encode_text(text, entries), plain_text)
    assert torch.equal(vit.encode_image(images, None, extra_tokens=None), plain_image)
    # zero replacing tokens is a plain block too
    empty = [BlockPrompt(tokens=torch.empty(0, WIDTH))] * depth
    assert torch.equal(vit.encode_text(text, empty), plain_text)


# ---- image tower ----

def vpt_deep_both_ways(model, images, prompts, replaced_blocks):
    """Class-token features of VPT-deep prompts P_0..P_{L-1} given (a) as replacing tokens, (b) as kv.

    (a) P_0 is appended before ln_pre; blocks 1..replaced_blocks-1 overwrite the slots with P_l;
        block 0's slots are overwritten with ln_pre(P_0), what is already there.
    (b) block 0 takes ln_pre(P_0) as keys/values, block l takes P_l; no tokens are appended.
    """
    visual = model.visual
    depth = visual.transformer.layers
    first = visual.ln_pre(prompts[0])
    replaced = [BlockPrompt(tokens=first)] + [
        BlockPrompt(tokens=p) if l < replaced_blocks else None for l, p in enumerate(prompts[1:], start=1)
    ]
    key_value = [first] + list(prompts[1:])
    assert len(replaced) == len(key_value) == depth
    return (model.encode_image(images, replaced, extra_tokens=prompts[0]),
            model.encode_image(images, key_value))


def test_vpt_deep_replacing_equals_key_value_prompts(deep_vit, inputs):
    # Why they agree: a prompt token influences the real tokens only as a key/value, i.e. through
    # ln_1 of its state; LayerNorm is per token and the image tower has no mask, so block l's real
    # tokens see exactly the keys/values ln_1(P_l) in both forms. The prompt slots' own outputs
    # (what they would carry to the next block) are overwritten before every block and never
    # pooled (the class token sits at position 0), so nothing else differs.
    images, _ = inputs
    prompts = random_tokens(deep_vit.visual.transformer.layers, seed=1)
    replaced, key_value = vpt_deep_both_ways(deep_vit, images, prompts, replaced_blocks=3)
    torch.testing.assert_close(replaced, key_value, atol=1e-5, rtol=1e-5)
    assert not torch.allclose(replaced, deep_vit.encode_image(images), atol=1e-3)


def test_vpt_deep_carry_over_differs_from_key_value_prompts(deep_vit, inputs):
    # Replacing only in the first J = 2 of 3 blocks: block 2 gets no new tokens, the slots carry
    # block 1's outputs of the prompts on as ordinary tokens, while kv prompts leave nothing behind.
    images, _ = inputs
    prompts = random_tokens(3, seed=1)
    visual = deep_vit.visual
    first = visual.ln_pre(prompts[0])
    replaced = deep_vit.encode_image(images, [BlockPrompt(tokens=first), BlockPrompt(tokens=prompts[1]), None],
                                     extra_tokens=prompts[0])
    key_value = deep_vit.encode_image(images, [first, prompts[1], None])
    assert not torch.allclose(replaced, key_value, atol=1e-3)


def test_extra_tokens_have_no_positional_embedding_and_class_token_is_pooled(vit, inputs):
    images, _ = inputs
    visual = vit.visual
    extra = torch.randn(N_TOKENS, WIDTH)
    # by hand: real tokens + positional embedding, then the extra tokens as they are
    x = visual.conv1(images).flatten(2).permute(0, 2, 1)
    x = torch.cat([visual.class_embedding.expand(2, 1, WIDTH), x], dim=1) + visual.positional_embedding
    assert x.shape[1] == visual.num_prefix_tokens + visual.positional_embedding.shape[0] - 1
    x = torch.cat([x, extra.expand(2, -1, -1)], dim=1)
    x = visual.transformer(visual.ln_pre(x).permute(1, 0, 2)).permute(1, 0, 2)
    expected = visual.ln_post(x[:, 0]) @ visual.proj
    torch.testing.assert_close(vit.encode_image(images, extra_tokens=extra), expected, atol=1e-6, rtol=1e-6)
    # shared (n, width) equals the same tokens given per image (batch, n, width)
    torch.testing.assert_close(vit.encode_image(images, extra_tokens=extra.expand(2, -1, -1)), expected,
                               atol=1e-6, rtol=1e-6)


def test_image_tokens_replace_the_appended_positions(vit, inputs):
    images, _ = inputs
    depth = vit.visual.transformer.layers
    extra = torch.randn(N_TOKENS, WIDTH)
    deep = random_tokens(depth, seed=2)
    # block 1 overwrites the first 2 of the 3 appended slots (positions n_real, n_real + 1): compare
    # with a block-by-block loop that writes the values into the sequence itself
    visual = vit.visual
    x = visual.conv1(images).flatten(2).permute(0, 2, 1)
    x = torch.cat([visual.class_embedding.expand(2, 1, WIDTH), x], dim=1) + visual.positional_embedding
    n_real = x.shape[1]
    x = visual.ln_pre(torch.cat([x, extra.expand(2, -1, -1)], dim=1)).permute(1, 0, 2)
    for l, block in enumerate(visual.transformer.resblocks):
        if l == 1:
            x = x.clone()
            x[n_real:n_real + 2] = deep[1][:2].unsqueeze(1)
        x = block(x)
    expected = visual.ln_post(x.permute(1, 0, 2)[:, 0]) @ visual.proj
    prompts = [None, BlockPrompt(tokens=deep[1][:2])]
    torch.testing.assert_close(vit.encode_image(images, prompts, extra_tokens=extra), expected,
                               atol=1e-5, rtol=1e-5)


# ---- text tower ----

def hand_text_reference(model, text, tokens, kv):
    """EOT features with `tokens[l]` written over positions 1..n before block l, by a plain loop."""
    x = (model.token_embedding(text) + model.positional_embedding[: text.shape[1]]).permute(1, 0, 2)
    for block, t, p in zip(model.transformer.resblocks, tokens, kv):
        if t is not None:
            x = x.clone()
            x[1:1 + t.shape[0]] = t.unsqueeze(1) if t.dim() == 2 else t
        x = block(x, p)
    return eot_features(model, x, text)


def test_text_replaced_tokens_equal_hand_written_loop(vit, inputs):
    _, text = inputs
    tokens = random_tokens(2, seed=3)
    kv = [None, torch.randn(2, WIDTH)]  # block 1 takes both forms at once
    prompts = [BlockPrompt(tokens=tokens[0]), BlockPrompt(kv=kv[1], tokens=tokens[1])]
    got = vit.encode_text(text, prompts)
    torch.testing.assert_close(got, hand_text_reference(vit, text, tokens, kv), atol=1e-5, rtol=1e-5)
    # the length and EOT index stay: the same sequence cut short after its EOT tokens gives the same
    torch.testing.assert_close(vit.encode_text(text[:, :10], prompts), got, atol=1e-5, rtol=1e-5)


def test_text_tokens_change_the_eot_feature(vit, inputs):
    _, text = inputs
    tokens = random_tokens(2, seed=4)
    out = vit.encode_text(text, [BlockPrompt(tokens=t) for t in tokens])
    changed = [tokens[0], tokens[1] + torch.randn_like(tokens[1])]
    assert not torch.allclose(out, vit.encode_text(text, [BlockPrompt(tokens=t) for t in changed]), atol=1e-4)
    assert not torch.allclose(out, vit.encode_text(text), atol=1e-4)


@pytest.mark.parametrize("row", [0, 2])
def test_causal_mask_holds_with_replaced_positions(vit, inputs, row):
    # The token written at slot 1 + row is seen only by itself and later positions: the SOS
    # (position 0) and earlier slots never see it, in any block.
    _, text = inputs
    tokens = random_tokens(2, seed=5)
    changed = [t.clone() for t in tokens]
    for t in changed:
        t[row] += torch.randn(WIDTH)
    out = text_states(vit, text, [BlockPrompt(tokens=t) for t in tokens])
    out_changed = text_states(vit, text, [BlockPrompt(tokens=t) for t in changed])
    slot = 1 + row
    torch.testing.assert_close(out[:slot], out_changed[:slot], atol=0, rtol=0)
    assert all(not torch.allclose(out[j], out_changed[j], atol=1e-4) for j in range(slot, out.shape[0]))


def test_per_row_text_tokens_equal_rows_encoded_alone(vit, inputs):
    _, text = inputs
    per_row = torch.randn(N_TOKENS, 2, WIDTH)  # (n, batch, width)
    both = vit.encode_text(text, [BlockPrompt(tokens=per_row), None])
    for i in range(2):
        alone = vit.encode_text(text[i:i + 1], [BlockPrompt(tokens=per_row[:, i]), None])
        torch.testing.assert_close(both[i:i + 1], alone, atol=1e-5, rtol=1e-5)
    shared = per_row[:, 0]
    torch.testing.assert_close(vit.encode_text(text, [BlockPrompt(tokens=shared), None]),
                               vit.encode_text(text, [BlockPrompt(tokens=shared.unsqueeze(1).expand(-1, 2, -1)), None]),
                               atol=1e-6, rtol=1e-6)


# ---- gradients ----

def test_gradients_reach_replaced_and_extra_tokens(vit, inputs):
    images, text = inputs
    extra = torch.randn(N_TOKENS, WIDTH, requires_grad=True)
    image_deep = torch.randn(N_TOKENS, WIDTH, requires_grad=True)
    text_deep = [torch.randn(N_TOKENS, 2, WIDTH, requires_grad=True) for _ in range(2)]  # per row
    image = vit.encode_image(images, [None, BlockPrompt(tokens=image_deep)], extra_tokens=extra)
    txt = vit.encode_text(text, [BlockPrompt(tokens=t) for t in text_deep])
    (image.sum() + txt.sum()).backward()
    for t in [extra, image_deep] + text_deep:
        assert t.grad is not None and t.grad.abs().sum() > 0


def test_overwritten_extra_tokens_get_no_gradient(vit, inputs):
    # Replacing in block 0 overwrites the appended tokens before any block sees them.
    images, _ = inputs
    extra = torch.randn(N_TOKENS, WIDTH, requires_grad=True)
    block0 = torch.randn(N_TOKENS, WIDTH, requires_grad=True)
    vit.encode_image(images, [BlockPrompt(tokens=block0), None], extra_tokens=extra).sum().backward()
    assert extra.grad is None or not extra.grad.any()
    assert block0.grad.abs().sum() > 0


# ---- precision ----

def test_fp16_clip_takes_fp32_tokens(inputs):
    images, text = inputs
    half = clip.build_model(build_random_clip("ViT").state_dict())  # fp16 matmul weights
    full = build_random_clip("ViT")  # the same seed: the same weights, fp32
    extra = torch.randn(N_TOKENS, WIDTH, requires_grad=True)
    deep = torch.randn(N_TOKENS, WIDTH, requires_grad=True)
    image_prompts, text_prompts = [None, BlockPrompt(tokens=deep)], [BlockPrompt(tokens=deep), None]
    out_image = half.encode_image(images, image_prompts, extra_tokens=extra)
    out_text = half.encode_text(text, text_prompts)
    assert out_image.dtype == out_text.dtype == torch.float16
    torch.testing.assert_close(out_image.float(), full.encode_image(images, image_prompts, extra_tokens=extra),
                               atol=2e-2, rtol=2e-2)
    torch.testing.assert_close(out_text.float(), full.encode_text(text, text_prompts), atol=2e-2, rtol=2e-2)
    (out_image.float().sum() + out_text.float().sum()).backward()
    assert extra.grad.dtype == deep.grad.dtype == torch.float32 and deep.grad.abs().sum() > 0


# ---- errors ----

def test_too_many_tokens_is_a_clear_error(vit, inputs):
    images, text = inputs
    with pytest.raises(ValueError, match=r"at most 76 tokens"):
        vit.encode_text(text, [BlockPrompt(tokens=torch.randn(77, WIDTH)), None])
    # image tower: replacing needs room appended with extra_tokens
    with pytest.raises(ValueError, match="extra_tokens"):
        vit.encode_image(images, [BlockPrompt(tokens=torch.randn(2, WIDTH)), None])
    with pytest.raises(ValueError, match=r"\[17, 20\).*at most 2 tokens"):
        vit.encode_image(images, [BlockPrompt(tokens=torch.randn(3, WIDTH)), None],
                         extra_tokens=torch.randn(2, WIDTH))


@pytest.mark.parametrize("shape", [(2, WIDTH + 1), (2, 3, WIDTH), (2, 2, 2, WIDTH), (WIDTH,)])
def test_bad_token_shapes_are_clear_errors(vit, inputs, shape):
    images, text = inputs
    with pytest.raises(ValueError, match=r"\(n, 128\) or \(n, batch=2, 128\)"):
        vit.encode_text(text, [BlockPrompt(tokens=torch.randn(shape)), None])


@pytest.mark.parametrize("shape", [(2, WIDTH + 1), (3, 2, WIDTH), (WIDTH,)])
def test_bad_extra_token_shapes_are_clear_errors(vit, inputs, shape):
    images, _ = inputs
    with pytest.raises(ValueError, match=r"extra_tokens must be \(n, 128\) or \(batch=2, n, 128\)"):
        vit.encode_image(images, extra_tokens=torch.randn(shape))


def test_resnet_refuses_prompts_and_extra_tokens():
    model = build_random_clip("RN")
    images = torch.randn(1, 3, 64, 64)
    with pytest.raises(ValueError, match="ViT"):
        model.encode_image(images, extra_tokens=torch.randn(2, 256))
    with pytest.raises(ValueError, match="ViT"):
        model.encode_image(images, [BlockPrompt(tokens=torch.randn(2, 256))])
    assert model.encode_image(images).shape == (1, 32)
