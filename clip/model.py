"""CLIP (OpenAI's architecture and parameter names) with a deep-prompt hook in every block.

Transformer tensors are sequence-first, as in OpenAI CLIP: `x` is `(n_tokens, batch, width)`.
A block's prompt entry has two forms (docs/ARCHITECTURE.md), held together by `BlockPrompt`:
* `kv`: extra keys/values of the block's self-attention (DPL): None, a tensor `(k, width)` /
  `(k, batch, width)`, or a callable `provider(block, h)` computing the attention output;
* `tokens`: values that REPLACE positions `[token_start, token_start + n)` of the residual stream
  before the block (MaPLe, IVLP, VPT): None, `(n, width)` or `(n, batch, width)`.
A plain tensor, callable or None entry means `BlockPrompt(kv=entry)`; `as_block_prompt` normalises.
Widths, depths and heads are read off the weights by `build_model`.
The ResNet image towers (`ModifiedResNet`) take no prompts.
"""
from collections import OrderedDict
from typing import Callable, NamedTuple, Optional, Sequence, Tuple, Union

import torch
import torch.nn.functional as F
from torch import nn

from dassl.errors import ConfigError  # a user error (the weights given); the module has no imports

from .resnet import ModifiedResNet

# OpenAI's towers use 64-dimensional attention heads; the head count is not stored in the weights.
HEAD_WIDTH = 64


class LayerNorm(nn.LayerNorm):
    """LayerNorm computed in float32 (fp16 inputs included), returned in the input's dtype."""

    def forward(self, x: torch.Tensor):
        # parameters too are taken in float32, so a model cast wholesale to bf16/fp16 still works
        weight = None if self.weight is None else self.weight.float()
        bias = None if self.bias is None else self.bias.float()
        return F.layer_norm(x.float(), self.normalized_shape, weight, bias, self.eps).to(x.dtype)


class QuickGELU(nn.Module):
    def forward(self, x: torch.Tensor):
        return x * torch.sigmoid(1.702 * x)


class BlockPrompt(NamedTuple):
    """What one block receives: extra keys/values and/or tokens that replace positions.

    kv: None, a tensor of raw prompt tokens `(k, width)` / `(k, batch, width)` (through ln_1,
        keys/values only), or a callable `provider(block, h) -> (n, batch, width)`.
    tokens: None, `(n, width)` (shared by the batch) or `(n, batch, width)` (one per row):
        written over positions [token_start, token_start + n) of x before ln_1.
    """
    kv: Union[None, torch.Tensor, Callable] = None
    tokens: Optional[torch.Tensor] = None


def as_block_prompt(entry) -> BlockPrompt:
    """One per-block entry -> BlockPrompt. A tensor, callable or None is a key/value entry."""
    if isinstance(entry, BlockPrompt):
        prompt = entry
    elif entry is None or isinstance(entry, torch.Tensor) or callable(entry):
        return BlockPrompt(kv=entry)
    else:
        raise TypeError(
            f"a block's prompt entry must be None, a tensor, a callable provider(block, h) or a "
            f"clip.model.BlockPrompt(kv, tokens); got {type(entry).__name__}"
        )
    if not (prompt.kv is None or isinstance(prompt.kv, torch.Tensor) or callable(prompt.kv)):
        raise TypeError(f"BlockPrompt.kv must be None, a tensor or a callable; got {type(prompt.kv).__name__}")
    if not (prompt.tokens is None or isinstance(prompt.tokens, torch.Tensor)):
        raise TypeError(f"BlockPrompt.tokens must be None or a tensor; got {type(prompt.tokens).__name__}")
    return prompt


class ResidualAttentionBlock(nn.Module):
    """Pre-norm transformer block; it optionally replaces positions of its input by prompt tokens
    and its attention optionally takes extra key/value tokens.

    `attn` (nn.MultiheadAttention) only holds the parameters (OpenAI's names); the attention
    itself is computed with `F.scaled_dot_product_attention` from the primitives below.
    """

    def __init__(self, d_model: int, n_head: int, attn_mask: Optional[torch.Tensor] = None):
        super().__init__()
        if d_model % n_head:
            raise ValueError(f"width {d_model} is not divisible by {n_head} heads")
        self.attn = nn.MultiheadAttention(d_model, n_head)
        self.ln_1 = LayerNorm(d_model)
        self.mlp = nn.Sequential(OrderedDict([
            ("c_fc", nn.Linear(d_model, d_model * 4)),
            ("gelu", QuickGELU()),
            ("c_proj", nn.Linear(d_model * 4, d_model)),
        ]))
        self.ln_2 = LayerNorm(d_model)
        self.n_head = n_head
        self.head_dim = d_model // n_head
        # (context_length, context_length) additive causal mask of the text tower, None for images.
        # A non-persistent buffer: it follows .to(device) but is not part of the state dict.
        self.register_buffer("attn_mask", attn_mask, persistent=False)

    # ---- primitives (also used by prompt providers) ----
    def _split_heads(self, t: torch.Tensor) -> torch.Tensor:
        # (n, batch, width) -> (batch, heads, n, head_dim)
        n, b, _ = t.shape
        return t.reshape(n, b, self.n_head, self.head_dim).permute(1, 2, 0, 3)

    def project_qkv(self, h: torch.Tensor):
        """h: (n, batch, width), already through ln_1 -> q, k, v each (batch, heads, n, head_dim)."""
        q, k, v = F.linear(h, self.attn.in_proj_weight, self.attn.in_proj_bias).chunk(3, dim=-1)
        return self._split_heads(q), self._split_heads(k), self._split_heads(v)

    def project_prompt_kv(self, p: torch.Tensor):
        """Raw prompt tokens (k, width) or (k, batch, width) -> k, v each (batch or 1, heads, k, head_dim).

        The prompt goes through this block's ln_1 like a real token. It is cast to the weights'
        dtype so fp32 learnable prompts work with an fp16 CLIP.
        """
        if p.dim() == 2:
            p = p.unsqueeze(1)  # (k, 1, width): shared by the batch
        if p.dim() != 3 or p.shape[-1] != self.attn.embed_dim:
            raise ValueError(
                f"prompt tokens must be (k, {self.attn.embed_dim}) or (k, batch, {self.attn.embed_dim}); "
                f"got shape {tuple(p.shape)}"
            )
        w = self.attn.embed_dim
        h = self.ln_1(p.to(self.attn.in_proj_weight.dtype))
        bias = self.attn.in_proj_bias
        k = F.linear(h, self.attn.in_proj_weight[w:2 * w], None if bias is None else bias[w:2 * w])
        v = F.linear(h, self.attn.in_proj_weight[2 * w:], None if bias is None else bias[2 * w:])
        return self._split_heads(k), self._split_heads(v)

    def project_out(self, o: torch.Tensor) -> torch.Tensor:
        """o: (batch, heads, n, head_dim) -> (n, batch, width) through attn.out_proj."""
        b, _, n, _ = o.shape
        o = o.permute(2, 0, 1, 3).reshape(n, b, self.attn.embed_dim)
        return F.linear(o, self.attn.out_proj.weight, self.attn.out_proj.bias)

    def causal_mask(self, n: int, device=None, dtype=None) -> Optional[torch.Tensor]:
        """Additive (n, n) mask among real tokens (0 or -inf), or None for the image tower."""
        if self.attn_mask is None:
            return None
        if n > self.attn_mask.shape[0]:
            raise ValueError(
                f"sequence of {n} tokens is longer than the text context length {self.attn_mask.shape[0]}"
            )
        return self.attn_mask[:n, :n].to(device=device, dtype=dtype)

    def attend(self, q, k, v, prompt_kv=None) -> torch.Tensor:
        """Scaled dot-product attention of q over k/v plus optional prompt keys/values.

        q, k, v: (batch, heads, n, head_dim); prompt_kv: None or (pk, pv) from project_prompt_kv.
        Prompt keys are appended after the real keys and visible from every query position; the
        causal mask (text) still applies among real tokens. Returns (batch, heads, n, head_dim).
        """
        n = q.shape[2]
        mask = self.causal_mask(n, q.device, q.dtype)
        if prompt_kv is not None and prompt_kv[0].shape[2] > 0:
            pk, pv = prompt_kv
            b = q.shape[0]
            k = torch.cat([k, pk.to(k.dtype).expand(b, -1, -1, -1)], dim=2)
            v = torch.cat([v, pv.to(v.dtype).expand(b, -1, -1, -1)], dim=2)
            if mask is not None:
                mask = torch.cat([mask, mask.new_zeros(n, pk.shape[2])], dim=1)
        return F.scaled_dot_product_attention(q, k, v, attn_mask=mask)

    # ---- forward ----
    def attention(self, h: torch.Tensor, prompt=None) -> torch.Tensor:
        """h = ln_1(x): (n, batch, width) -> attention output (n, batch, width).

        prompt: the key/value entry only (None, tensor or provider), i.e. `BlockPrompt.kv`.
        """
        if callable(prompt):
            return prompt(self, h)
        q, k, v = self.project_qkv(h)
        prompt_kv = None if prompt is None else self.project_prompt_kv(prompt)
        return self.project_out(self.attend(q, k, v, prompt_kv))

    def replace_tokens(self, x: torch.Tensor, tokens: torch.Tensor, start: int) -> torch.Tensor:
        """x: (n, batch, width) -> x with positions [start, start + k) holding `tokens`.

        tokens: (k, width) shared by the batch, or (k, batch, width). Built by concatenation (not
        in place), so gradients reach `tokens`; cast to x's dtype (fp32 prompts, fp16 CLIP).
        """
        n, b, width = x.shape
        if tokens.dim() == 2:
            tokens = tokens.unsqueeze(1)  # (k, 1, width): shared by the batch
        if tokens.dim() != 3 or tokens.shape[-1] != width or tokens.shape[1] not in (1, b):
            raise ValueError(
                f"replacing tokens must be (n, {width}) or (n, batch={b}, {width}) (sequence-first); "
                f"got shape {tuple(tokens.shape)}"
            )
        k = tokens.shape[0]
        if k == 0:
            return x
        if start < 0 or start + k > n:
            raise ValueError(
                f"cannot replace {k} tokens at positions [{start}, {start + k}) of a sequence of {n} "
                f"tokens; use at most {max(n - start, 0)} tokens (image tower: append room for them "
                f"with VisionTransformer's extra_tokens)"
            )
        tokens = tokens.to(x.dtype).expand(k, b, width)
        return torch.cat([x[:start], tokens, x[start + k:]], dim=0)

    def forward(self, x: torch.Tensor, prompt=None, token_start: int = 1) -> torch.Tensor:
        """x: (n, batch, width); prompt: a BlockPrompt or a key/value entry (see as_block_prompt).

        token_start: the first position that `prompt.tokens` replaces (1 in the text tower: the
        slots after the start token; the number of real tokens in the image tower).
        """
        prompt = as_block_prompt(prompt)
        if prompt.tokens is not None:
            x = self.replace_tokens(x, prompt.tokens, token_start)
        x = x + self.attention(self.ln_1(x), prompt.kv)
        x = x + self.mlp(self.ln_2(x))
        return x


class Transformer(nn.Module):
    def __init__(self, width: int, layers: int, heads: int, attn_mask: Optional[torch.Tensor] = None):
        super().__init__()
        self.width = width
        self.layers = layers
        self.resblocks = nn.Sequential(*[ResidualAttentionBlock(width, heads, attn_mask) for _ in range(layers)])

    def forward(self, x: torch.Tensor, prompts: Optional[Sequence] = None, token_start: int = 1) -> torch.Tensor:
        """x: (n, batch, width); prompts: None or one entry per block (BlockPrompt, None, tensor or
        provider); token_start: where every block's replacing tokens start (see the block)."""
        if prompts is None:
            return self.resblocks(x)
        if len(prompts) != self.layers:
            raise ValueError(
                f"expected one prompt entry per block ({self.layers} blocks), got {len(prompts)}; "
                "use None for blocks without prompts"
            )
        for block, prompt in zip(self.resblocks, prompts):
            x = block(x, prompt, token_start)
        return x


class VisionTransformer(nn.Module):
    """Patch embedding, class token, ViT blocks; pools the class token.

    Sequence layout: [class token (num_prefix_tokens = 1) | grid**2 patches | extra tokens].
    Extra (prompt) tokens are appended after the positional embedding, so they have none, and
    blocks' replacing tokens start right after the real tokens.
    """

    def __init__(self, input_resolution: int, patch_size: int, width: int, layers: int, heads: int, output_dim: int):
        super().__init__()
        self.input_resolution = input_resolution
        self.num_prefix_tokens = 1  # the class token, before the patches (timm's name)
        self.output_dim = output_dim
        self.conv1 = nn.Conv2d(3, width, kernel_size=patch_size, stride=patch_size, bias=False)
        scale = width ** -0.5
        self.class_embedding = nn.Parameter(scale * torch.randn(width))
        self.positional_embedding = nn.Parameter(scale * torch.randn((input_resolution // patch_size) ** 2 + 1, width))
        self.ln_pre = LayerNorm(width)
        self.transformer = Transformer(width, layers, heads)
        self.ln_post = LayerNorm(width)
        self.proj = nn.Parameter(scale * torch.randn(width, output_dim))

    def append_extra_tokens(self, x: torch.Tensor, extra_tokens: torch.Tensor) -> torch.Tensor:
        """x: (batch, n_real, width); extra_tokens: (n, width) or (batch, n, width) -> (batch, n_real + n, width)."""
        b, _, width = x.shape
        if extra_tokens.dim() == 2:
            extra_tokens = extra_tokens.unsqueeze(0)  # (1, n, width): shared by the batch
        if extra_tokens.dim() != 3 or extra_tokens.shape[-1] != width or extra_tokens.shape[0] not in (1, b):
            raise ValueError(
                f"extra_tokens must be (n, {width}) or (batch={b}, n, {width}) (batch-first, like the "
                f"images); got shape {tuple(extra_tokens.shape)}"
            )
        extra_tokens = extra_tokens.to(x.dtype).expand(b, -1, -1)
        return torch.cat([x, extra_tokens], dim=1)

    def forward(self, x: torch.Tensor, prompts: Optional[Sequence] = None,
                extra_tokens: Optional[torch.Tensor] = None) -> torch.Tensor:
        x = self.conv1(x)  # (batch, width, grid, grid)
        b, width = x.shape[:2]
        x = x.reshape(b, width, -1).permute(0, 2, 1)  # (batch, grid**2, width)
        cls = self.class_embedding.to(x.dtype).expand(b, 1, width)
        x = torch.cat([cls, x], dim=1)  # (batch, grid**2 + 1, width)
        x = x + self.positional_embedding.to(x.dtype)
        n_real = x.shape[1]  # num_prefix_tokens + grid**2: the tokens with a positional embedding
        if extra_tokens is not None:
            x = self.append_extra_tokens(x, extra_tokens)  # (batch, n_real + n, width)
        x = self.ln_pre(x)
        # blocks' replacing tokens overwrite the appended positions, right after the real tokens
        x = self.transformer(x.permute(1, 0, 2), prompts, token_start=n_real).permute(1, 0, 2)
        x = self.ln_post(x[:, 0, :])  # (batch, width): the class token, whatever was appended
        if self.proj is not None:
            x = x @ self.proj
        return x


class CLIP(nn.Module):
    def __init__(self,
                 embed_dim: int,
                 # vision
                 image_resolution: int,
                 vision_layers: Union[Tuple[int, int, int, int], int],
                 vision_width: int,
                 vision_patch_size: Optional[int],
                 # text
                 context_length: int,
                 vocab_size: int,
                 transformer_width: int,
                 transformer_heads: int,
                 transformer_layers: int):
        super().__init__()
        self.context_length = context_length

        if isinstance(vision_layers, (tuple, list)):
            self.visual = ModifiedResNet(
                layers=vision_layers, output_dim=embed_dim, heads=vision_width * 32 // HEAD_WIDTH,
                input_resolution=image_resolution, width=vision_width,
            )
        else:
            self.visual = VisionTransformer(
                input_resolution=image_resolution, patch_size=vision_patch_size, width=vision_width,
                layers=vision_layers, heads=vision_width // HEAD_WIDTH, output_dim=embed_dim,
            )

        self.transformer = Transformer(transformer_width, transformer_layers, transformer_heads,
                                       attn_mask=self.build_attention_mask())
        self.vocab_size = vocab_size
        self.token_embedding = nn.Embedding(vocab_size, transformer_width)
        self.positional_embedding = nn.Parameter(torch.empty(context_length, transformer_width))
        self.ln_final = LayerNorm(transformer_width)
        self.text_projection = nn.Parameter(torch.empty(transformer_width, embed_dim))
        self.logit_scale = nn.Parameter(torch.ones([]))
        self.initialize_parameters()

    def initialize_parameters(self):
        """OpenAI's initial scales (used by clip/tiny.py; loaded weights overwrite them)."""
        nn.init.normal_(self.token_embedding.weight, std=0.02)
        nn.init.normal_(self.positional_embedding, std=0.01)
        nn.init.constant_(self.logit_scale, torch.log(torch.tensor(1 / 0.07)).item())
        if isinstance(self.visual, ModifiedResNet):
            self.visual.initialize_parameters()
        width, layers = self.transformer.width, self.transformer.layers
        proj_std = width ** -0.5 * (2 * layers) ** -0.5
        for block in self.transformer.resblocks:
            nn.init.normal_(block.attn.in_proj_weight, std=width ** -0.5)
            nn.init.normal_(block.attn.out_proj.weight, std=proj_std)
            nn.init.normal_(block.mlp.c_fc.weight, std=(2 * width) ** -0.5)
            nn.init.normal_(block.mlp.c_proj.weight, std=proj_std)
        nn.init.normal_(self.text_projection, std=width ** -0.5)

    def build_attention_mask(self) -> torch.Tensor:
        # additive causal mask: position i sees positions <= i
        return torch.full((self.context_length, self.context_length), float("-inf")).triu_(1)

    @property
    def dtype(self) -> torch.dtype:
        return self.visual.conv1.weight.dtype

    def encode_image(self, image: torch.Tensor, prompts: Optional[Sequence] = None,
                     extra_tokens: Optional[torch.Tensor] = None) -> torch.Tensor:
        """image: (batch, 3, H, W) -> (batch, embed_dim); prompts and extra_tokens as VisionTransformer."""
        if isinstance(self.visual, ModifiedResNet):
            if prompts is not None or extra_tokens is not None:
                raise ValueError(
                    "deep prompts and extra tokens need a ViT image encoder; this CLIP has a ResNet image "
                    "encoder (use a ViT backbone, e.g. ViT-B/16, or call encode_image(image) without them)"
                )
            return self.visual(image.type(self.dtype))
        return self.visual(image.type(self.dtype), prompts, extra_tokens)

    def encode_text(self, text: torch.Tensor, prompts: Optional[Sequence] = None) -> torch.Tensor:
        """text: (batch, n) token ids, n <= context_length -> (batch, embed_dim).

        Replacing tokens of `prompts` overwrite positions 1.. (after the start token); the
        causal mask, the length and the end-of-text index are unchanged.
        """
        n = text.shape[1]
        x = self.token_embedding(text).type(self.dtype)  # (batch, n, width)
        x = x + self.positional_embedding[:n].type(self.dtype)
        x = self.transformer(x.permute(1, 0, 2), prompts).permute(1, 0, 2)
        x = self.ln_final(x).type(self.dtype)
        # the features of the end-of-text token (the largest id in each sequence)
        eot = text.argmax(dim=-1)
        return x[torch.arange(x.shape[0], device=x.device), eot] @ self.text_projection

    def forward(self, image: torch.Tensor, text: torch.Tensor):
        image_features = self.encode_image(image)
        text_features = self.encode_text(text)
        image_features = image_features / image_features.norm(dim=1, keepdim=True)
        text_features = text_features / text_features.norm(dim=1, keepdim=True)
        logits_per_image = self.logit_scale.exp() * image_features @ text_features.t()
        return logits_per_image, logits_per_image.t()


def convert_weights(model: nn.Module):
    """Cast the matmul weights to fp16 as OpenAI's release does (norms and embeddings stay fp32)."""

    def to_half(module):
        if isinstance(module, (nn.Conv1d, nn.Conv2d, nn.Linear)):
            module.weight.data = module.weight.data.half()
            if module.bias is not None:
                module.bias.data = module.bias.data.half()
        if isinstance(module, nn.MultiheadAttention):
            for name in ["in_proj_weight", "q_proj_weight", "k_proj_weight", "v_proj_weight",
                         "in_proj_bias", "bias_k", "bias_v"]:
                tensor = getattr(module, name)
                if tensor is not None:
                    tensor.data = tensor.data.half()
        for name in ["text_projection", "proj"]:
            tensor = getattr(module, name, None)
            if isinstance(tensor, torch.Tensor):
                tensor.data = tensor.data.half()

    model.apply(to_half)


# Entries some archives carry next to the weights; they are not parameters: OpenAI's metadata, and
# the causal masks that a traced (TorchScript) model of this file records as buffers.
_NON_PARAMETER_KEYS = ("input_resolution", "context_length", "vocab_size")


def strip_non_parameters(state_dict: dict) -> dict:
    return {k: v for k, v in state_dict.items()
            if k not in _NON_PARAMETER_KEYS and not k.endswith(".attn_mask")}


def _count_blocks(state_dict: dict, prefix: str) -> int:
    return len({k[len(prefix):].split(".")[0] for k in state_dict if k.startswith(prefix)})


def build_model(state_dict: dict) -> CLIP:
    """Build CLIP with the architecture read off `state_dict` (OpenAI's key names).

    Returns the model in eval mode with fp16 matmul weights, as OpenAI's does (`convert_weights`);
    trainers cast it to the precision they run in (`model.float()` for fp32 / amp).
    """
    state_dict = strip_non_parameters(state_dict)
    missing = [k for k in ("text_projection", "positional_embedding", "token_embedding.weight", "ln_final.weight")
               if k not in state_dict]
    if missing or not any(k.startswith("visual.") for k in state_dict):
        raise ConfigError(
            f"not a CLIP state dict (missing {missing or 'the visual.* weights'}); expected OpenAI's key "
            f"names, found e.g. {sorted(state_dict)[:5]}"
        )

    if "visual.proj" in state_dict:  # ViT image tower
        vision_width = state_dict["visual.conv1.weight"].shape[0]
        vision_layers = _count_blocks(state_dict, "visual.transformer.resblocks.")
        vision_patch_size = state_dict["visual.conv1.weight"].shape[-1]
        grid_size = round((state_dict["visual.positional_embedding"].shape[0] - 1) ** 0.5)
        image_resolution = vision_patch_size * grid_size
    else:  # ResNet image tower
        vision_layers = tuple(_count_blocks(state_dict, f"visual.layer{i}.") for i in (1, 2, 3, 4))
        vision_width = state_dict["visual.layer1.0.conv1.weight"].shape[0]
        output_width = round((state_dict["visual.attnpool.positional_embedding"].shape[0] - 1) ** 0.5)
        vision_patch_size = None
        image_resolution = output_width * 32

    embed_dim = state_dict["text_projection"].shape[1]
    context_length = state_dict["positional_embedding"].shape[0]
    vocab_size = state_dict["token_embedding.weight"].shape[0]
    transformer_width = state_dict["ln_final.weight"].shape[0]
    transformer_layers = _count_blocks(state_dict, "transformer.resblocks.")

    model = CLIP(embed_dim, image_resolution, vision_layers, vision_width, vision_patch_size,
                 context_length, vocab_size, transformer_width, transformer_width // HEAD_WIDTH, transformer_layers)
    convert_weights(model)
    model.load_state_dict(state_dict)
    return model.eval()
