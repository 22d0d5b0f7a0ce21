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
import warnings

import torch
import torch.nn as nn
import torch.nn.functional as F

# "fused": the fastest exact mixture on the device (``fused_kernel`` on CUDA, ``fused_math`` on
# CPU, where it measured faster: docs/benchmarks.md); the other three name one formulation each.
IMPLEMENTATIONS = ("fused", "fused_math", "fused_kernel", "naive")

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


# ---------------------------------------------------------------------------
# Attention with its log-sum-exp from a fused kernel
# ---------------------------------------------------------------------------
def _pad_last(x, extra, value=0.0):
    return F.pad(x, (0, extra), value=value)


class _KernelAttention(torch.autograd.Function):
    """(out, lse) of softmax(scale q k^T [causal]) v from PyTorch's fused kernels, both differentiable.

    The kernels' backward takes only dO: it computes dS = P (dO v^T - D) with D = rowsum(dO * O).
    A gradient g of the log-sum-exp adds P g (d lse / dS = P), i.e. D - g in place of D. So the
    backward is called on inputs augmented by one column: v' = [v, 0], O' = [O, 1], dO' = [dO, -g]
    (then D' = D - g and dO' v'^T = dO v^T), q' = [q, 0], k' = [k, 0] (scores unchanged: the scale
    is passed explicitly). The extra columns are padded to a multiple of 8 (kernel alignment).
    """

    @staticmethod
    def forward(ctx, q, k, v, causal, scale):
        if q.device.type == "cuda":
            out, lse, seed, offset = torch.ops.aten._scaled_dot_product_efficient_attention(
                q, k, v, None, True, 0.0, causal, scale=scale)
            ctx.rng = (seed, offset)
        else:
            out, lse = torch.ops.aten._scaled_dot_product_flash_attention_for_cpu(
                q, k, v, 0.0, causal, scale=scale)
            ctx.rng = None
        ctx.save_for_backward(q, k, v, out, lse)
        ctx.causal, ctx.scale = causal, scale
        n = q.shape[-2]
        return out, lse[..., :n].float()  # the CUDA kernel pads lse's length to a multiple of 32

    @staticmethod
    def backward(ctx, grad_out, grad_lse):
        q, k, v, out, lse = ctx.saved_tensors
        d = q.shape[-1]
        extra = 8
        n = q.shape[-2]
        if grad_out is None:
            grad_out = torch.zeros_like(out)
        if grad_lse is None:
            grad_lse = torch.zeros(out.shape[:-1], dtype=torch.float32, device=out.device)
        q2, k2, v2 = _pad_last(q, extra), _pad_last(k, extra), _pad_last(v, extra)
        one = torch.zeros(out.shape[:-1] + (extra,), dtype=out.dtype, device=out.device)
        one[..., 0] = 1
        out2 = torch.cat([out, one], dim=-1)
        g = torch.zeros_like(one)
        g[..., 0] = -grad_lse.to(out.dtype)
        grad_out2 = torch.cat([grad_out.to(out.dtype), g], dim=-1)
        if ctx.rng is not None:
            seed, offset = ctx.rng
            lse_full = lse if lse.shape[-1] >= n else _pad_last(lse, n - lse.shape[-1])
            dq, dk, dv, _ = torch.ops.aten._scaled_dot_product_efficient_attention_backward(
                grad_out2, q2, k2, v2, None, out2, lse_full, seed, offset, 0.0, [True, True, True, False],
                ctx.causal, scale=ctx.scale)
        else:
            dq, dk, dv = torch.ops.aten._scaled_dot_product_flash_attention_for_cpu_backward(
                grad_out2, q2, k2, v2, out2, lse, 0.0, ctx.causal, scale=ctx.scale)
        return dq[..., :d], dk[..., :d], dv[..., :d], None, None


def _materialised_attention(q, k, v, causal, scale):
    acc = torch.promote_types(q.dtype, torch.float32)
    scores = (q @ k.transpose(-1, -2)).to(acc) * scale
    if causal:
        n = q.shape[-2]
        scores = scores.masked_fill(torch.ones(n, n, dtype=torch.bool, device=q.device).triu(1), float("-inf"))
    lse = torch.logsumexp(scores, dim=-1)
    return torch.exp(scores - lse.unsqueeze(-1)).to(v.dtype) @ v, lse


_KERNEL_CHECKED = {}  # (device type, dtype, causal) -> the kernel passed its self-check


def _kernel_works(device, dtype, causal):
    """Run the kernel once on a small input, forward and backward, against the materialised formula.

    The kernels are private PyTorch operators whose support varies by build, device and dtype; a
    failure or a wrong number makes the supernet use the materialised formula (with a warning)
    instead of training on a wrong gradient.
    """
    key = (str(device), dtype, causal)
    if key not in _KERNEL_CHECKED:
        g = torch.Generator().manual_seed(0)
        inputs = [torch.randn(2, 2, 11, 16, generator=g).to(device=device, dtype=dtype) for _ in range(3)]
        weights = [torch.randn(2, 2, 11, 16, generator=g).to(device), torch.randn(2, 2, 11, generator=g).to(device)]
        tol = 1e-4 if dtype == torch.float32 else 3e-2
        results = []
        try:
            for fn in (_KernelAttention.apply, _materialised_attention):
                leaves = [x.clone().requires_grad_(True) for x in inputs]
                out, lse = fn(*leaves, causal, 0.25)
                loss = (out.float() * weights[0]).sum() + (lse.float() * weights[1]).sum()
                results.append([out, lse] + list(torch.autograd.grad(loss, leaves)))
            ok = all(torch.allclose(a.float(), b.float(), rtol=tol, atol=tol) for a, b in zip(*results))
            reason = "it disagrees with the materialised formula"
        except RuntimeError as error:  # an unsupported dtype, size or build
            ok, reason = False, str(error).splitlines()[0]
        if not ok:
            warnings.warn(f"The fused attention kernel is not usable on {device} in {dtype} ({reason}); the "
                          "supernet computes the real-token attention with materialised scores instead.", stacklevel=3)
        _KERNEL_CHECKED[key] = ok
    return _KERNEL_CHECKED[key]


def attention_with_lse(q, k, v, causal, scale):
    """softmax(scale q k^T) v and its log-sum-exp per query: ((b, h, n, d), (b, h, n) float32).

    From a fused kernel (no n x n score tensor is kept) once it passed its self-check on this
    device and dtype; else the materialised formula.
    """
    k, v = k.to(q.dtype), v.to(q.dtype)
    if _kernel_works(q.device, q.dtype, causal):
        return _KernelAttention.apply(q, k, v, causal, scale)
    return _materialised_attention(q, k, v, causal, scale)


def mixed_attention_kernel(block, h, options, log_weights):
    """``mixed_attention_fused``'s mixture with the real-token attention from a fused kernel.

    With O the attention over the real keys only and lse_real its log-sum-exp, option k's output
    is (Z_real O + U_k) / (Z_real + Z_k), U_k the unnormalised sum over its prompt keys. So
        mixture = O * sum_k w_k Z_real / (Z_real + Z_k) + sum_k w_k U_k / (Z_real + Z_k),
    the first factor exp(lse_real + logsumexp_k(log c_k)) with log c_k as in the fused formula;
    only the small n x T prompt part is formed explicitly.
    """
    q, key, value = block.project_qkv(h)  # (batch, heads, n, head_dim)
    head_dim = q.shape[-1]
    scale = 1.0 / math.sqrt(head_dim)
    out_real, lse_real = attention_with_lse(q, key, value, block.attn_mask is not None, scale)
    all_prompts = torch.cat(list(options), dim=0)  # (T, width)
    pk, pv = block.project_prompt_kv(all_prompts)  # (1, heads, T, head_dim)
    acc = torch.promote_types(q.dtype, torch.float32)
    scores_prompt = ((q * scale) @ pk.to(q.dtype).transpose(-1, -2)).to(acc)  # (batch, heads, n, T)
    lse_real = lse_real.to(acc).unsqueeze(-1)  # (batch, heads, n, 1)
    lse_prompt = torch.stack(
        [torch.logsumexp(scores_prompt[..., s:e], dim=-1) for s, e in _option_segments(len(options))],
        dim=-1,
    )  # (batch, heads, n, N)
    lse_options = torch.cat([lse_real, torch.logaddexp(lse_real, lse_prompt)], dim=-1)  # (.., N + 1)
    log_coef = log_weights.to(acc) - lse_options
    coef_real = torch.exp(torch.logsumexp(log_coef, dim=-1, keepdim=True) + lse_real)  # (.., 1)
    lengths = torch.arange(1, len(options) + 1, device=q.device)
    log_coef_prompt = log_coef[..., 1:].repeat_interleave(lengths, dim=-1)  # (batch, heads, n, T)
    probs_prompt = torch.exp(scores_prompt + log_coef_prompt).to(value.dtype)
    out = coef_real.to(out_real.dtype) * out_real + probs_prompt @ pv.to(value.dtype)
    return block.project_out(out.to(value.dtype))


MIXTURES = {"fused_math": mixed_attention_fused, "fused_kernel": mixed_attention_kernel,
            "naive": mixed_attention_naive}


def resolve_implementation(impl, device):
    """The formulation "fused" stands for on ``device``: the kernel on CUDA, the math on CPU."""
    if impl not in IMPLEMENTATIONS:
        raise ValueError(f"Unknown supernet implementation {impl!r}; expected one of {IMPLEMENTATIONS}.")
    if impl == "fused":
        return "fused_kernel" if torch.device(device).type == "cuda" else "fused_math"
    return impl


class MixedPrompt:
    """Per-block provider for the block's attention hook: mixes options 0..N with softmax(alpha)."""

    def __init__(self, options, log_weights, impl="fused"):
        self.options = options
        self.log_weights = log_weights
        self.impl = impl
        if impl not in IMPLEMENTATIONS:
            resolve_implementation(impl, "cpu")  # raises the readable error

    def attend(self, block, h, options, log_weights):
        return MIXTURES[resolve_implementation(self.impl, h.device)](block, h, options, log_weights)

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
