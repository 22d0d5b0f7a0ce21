"""Deep prompts: the pieces DPL's search (supernet) and training (subnet) stages share.

A deep prompt of block l is a few extra key/value tokens of that block's self-attention
(clip/model.py, ``ResidualAttentionBlock``). This file builds what the two stages feed that hook:

* the supernet: every block holds prompt options of 0..N tokens mixed with softmax(alpha).
  ``mixed_attention_naive`` computes one full attention per option (what the official release
  computes); ``mixed_attention_fused`` computes the same numbers with the real tokens' projections
  and their n x n attention done once (see its docstring);
* the subnet: one prompt of a fixed length per block (``None`` for 0 tokens: a plain block);
The model that runs them (frozen encoders + provider + head) is ``trainers/model.py: PromptedCLIP``.
"""
import math

import torch
import torch.nn as nn

IMPLEMENTATIONS = ("fused", "naive")

# Checkpoint folder of both DPL stages: the official release's name (its checkpoints load here).
MODEL_NAME = "MultiModalPromptLearner"


def encoder_blocks(clip_model):
    """The residual blocks of both encoders, checked to be transformers (DPL needs attention)."""
    visual = clip_model.visual
    if not hasattr(visual, "transformer"):
        raise ValueError(
            f"DPL inserts prompts into transformer blocks, but the image encoder of this CLIP is a "
            f"{type(visual).__name__} (a ResNet backbone). Use a ViT backbone, e.g. "
            f"MODEL.BACKBONE.NAME ViT-B/16."
        )
    return list(visual.transformer.resblocks), list(clip_model.transformer.resblocks)


def branch_shapes(clip_model):
    """{"image": (blocks, width), "text": (blocks, width)} read off the loaded model."""
    img_blocks, txt_blocks = encoder_blocks(clip_model)
    return {
        "image": (len(img_blocks), clip_model.visual.transformer.width),
        "text": (len(txt_blocks), clip_model.transformer.width),
    }


def _option_segments(max_len):
    """Token ranges of the concatenated options 1..N: option k owns k consecutive tokens."""
    starts = [k * (k - 1) // 2 for k in range(1, max_len + 1)]
    return [(s, s + k) for s, k in zip(starts, range(1, max_len + 1))]


def mixed_attention_naive(block, h, options, log_weights):
    """Reference mixture: sum_k w_k * Attention_k(h), one complete attention per option.

    h: (n, batch, width) the block's ln_1 output. options: prompts of options 1..N, option k
    a (k, width) tensor. log_weights: (N + 1,) log softmax(alpha) of this block, float32.
    Every option recomputes the query/key/value projections, as the official release does.
    """
    weights = log_weights.exp()
    mixed = 0.0
    for k in range(len(options) + 1):
        q, key, value = block.project_qkv(h)  # (batch, heads, n, head_dim) each
        prompt_kv = block.project_prompt_kv(options[k - 1]) if k > 0 else None
        out = block.attend(q, key, value, prompt_kv)
        mixed = mixed + weights[k].to(out.dtype) * block.project_out(out)
    return mixed


def mixed_attention_fused(block, h, options, log_weights):
    """The same mixture as ``mixed_attention_naive`` at about the cost of one attention.

    For a query, option k's attention is a softmax over the real keys plus option k's prompt
    keys. With Z_real and Z_k the sums of exp(score) over those two key sets, option k gives the
    real keys probability exp(s)/(Z_real + Z_k) and its prompt keys exp(s)/(Z_real + Z_k). The
    mixture sum_k w_k A_k is therefore ONE attention over [real keys; all options' prompt keys]
    whose probabilities are exp(s + log c), with
        log c_k    = log w_k - logaddexp(lse_real, lse_k)     for option k's prompt keys,
        log c_real = logsumexp_k(log c_k)                     for the real keys (k = 0..N),
    and the rows still sum to sum_k w_k = 1. The output projection is linear and the weights sum
    to one, so it is applied once. Projections of the real tokens and the n x n scores are
    computed once; each option only adds its own k prompt keys/values.
    """
    q, key, value = block.project_qkv(h)  # (batch, heads, n, head_dim)
    n, head_dim = q.shape[-2], q.shape[-1]
    all_prompts = torch.cat(list(options), dim=0)  # (T, width), T = N (N + 1) / 2
    pk, pv = block.project_prompt_kv(all_prompts)  # (1, heads, T, head_dim)
    q = q * (1.0 / math.sqrt(head_dim))
    # Scores and normalisers in (at least) float32: logsumexp in half precision overflows.
    acc = torch.promote_types(q.dtype, torch.float32)
    scores_real = (q @ key.transpose(-1, -2)).to(acc)  # (batch, heads, n, n)
    mask = block.causal_mask(n, q.device, acc)
    if mask is not None:
        scores_real = scores_real + mask
    scores_prompt = (q @ pk.transpose(-1, -2)).to(acc)  # (batch, heads, n, T)

    lse_real = torch.logsumexp(scores_real, dim=-1, keepdim=True)  # (batch, heads, n, 1)
    lse_prompt = torch.stack(
        [torch.logsumexp(scores_prompt[..., s:e], dim=-1) for s, e in _option_segments(len(options))],
        dim=-1,
    )  # (batch, heads, n, N)
    lse_options = torch.cat([lse_real, torch.logaddexp(lse_real, lse_prompt)], dim=-1)  # (.., N + 1)
    log_coef = log_weights.to(acc) - lse_options  # (batch, heads, n, N + 1)
    log_coef_real = torch.logsumexp(log_coef, dim=-1, keepdim=True)  # (batch, heads, n, 1)
    lengths = torch.arange(1, len(options) + 1, device=q.device)
    log_coef_prompt = log_coef[..., 1:].repeat_interleave(lengths, dim=-1)  # (batch, heads, n, T)

    probs_real = torch.exp(scores_real + log_coef_real).to(value.dtype)
    probs_prompt = torch.exp(scores_prompt + log_coef_prompt).to(value.dtype)
    out = probs_real @ value + probs_prompt @ pv  # (batch, heads, n, head_dim)
    return block.project_out(out)


class MixedPrompt:
    """Per-block provider for the block's attention hook: mixes options 0..N with softmax(alpha)."""

    def __init__(self, options, log_weights, impl="fused"):
        if impl not in IMPLEMENTATIONS:
            raise ValueError(f"Unknown supernet implementation {impl!r}; expected one of {IMPLEMENTATIONS}.")
        self.options = options
        self.log_weights = log_weights
        self.attend = mixed_attention_fused if impl == "fused" else mixed_attention_naive

    def __call__(self, block, h):
        if len(self.options) == 0:  # search space {0}: a plain block
            return block.attention(h)
        return self.attend(block, h, self.options, self.log_weights)


def supernet_options(n_blocks, width, max_len, init):
    """Learnable options 1..max_len of every block: entry [block][i] holds (i + 1, width).

    Named like the release (``ctx_img_lst.<block>.<i>``) when assigned to ``ctx_img_lst``.
    init: "normal" (N(0, 1), the release's image options), "uniform" ([0, 1), its text
    options) or a float std for N(0, std^2).
    """
    def make(k):
        if init == "normal":
            return torch.randn(k, width)
        if init == "uniform":
            return torch.rand(k, width)
        return torch.randn(k, width) * float(init)

    return nn.ModuleList(
        nn.ParameterList(nn.Parameter(make(k)) for k in range(1, max_len + 1)) for _ in range(n_blocks)
    )


def subnet_prompts(lengths, width, std):
    """One prompt per block, (length, width) ~ N(0, std^2); an empty (0, width) tensor for 0."""
    return nn.ParameterList(nn.Parameter(torch.randn(k, width) * std) for k in lengths)


def fixed_prompts(prompt_list, dtype):
    """Per-block entries for the hook from a subnet ParameterList: None where the length is 0."""
    return [p.to(dtype) if p.shape[0] > 0 else None for p in prompt_list]
