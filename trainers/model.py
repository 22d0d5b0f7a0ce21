"""One model for every method: frozen CLIP encoders + a prompt *provider* + a *head*.

    PromptedCLIP(clip_model, prompt_learner, head)
      forward_features(image) -> Features(image, text, logit_scale, extras)
      forward(image)          -> head.logits(features)            (batch, n_cls), float32

A method is a provider (``PromptLearner``, a ``PromptProvider``) of
  * the text input: token embeddings and token ids of every class prompt (it may depend on the
    image features, as CoCoOp's does: ``image_conditioned = True``),
  * the per-block prompt entries of each encoder (``image_prompts`` / ``text_prompts``: None, or
    one entry per block in the form ``clip/model.py`` documents: extra keys/values, or tokens
    that replace positions), and optional extra input tokens of the image tower,
plus a head (``trainers/heads.py``) that turns the features into logits and named loss terms.
The provider is stored as ``prompt_learner`` (CoOp's attribute name), so the state-dict keys of
every method stay those of its release. The model holds no copy of CLIP's weights.
"""
import contextlib
from dataclasses import dataclass, field
from typing import Optional

import torch
import torch.nn as nn
from torch.utils.checkpoint import checkpoint

from trainers.common import TextEncoder
from trainers.heads import ClassificationHead


@dataclass
class Features:
    """What ``PromptedCLIP.forward_features`` returns; heads read it.

    image: (batch, embed) normalised; text: (n_cls, embed), or (batch, n_cls, embed) when the text
    depends on the image; logit_scale: exp of CLIP's learned temperature (a scalar tensor);
    extras: what the head asked for (``Head.wants``), e.g. ``"zeroshot_image"``: (batch, embed),
    the normalised features of the same images without any prompt.
    """

    image: torch.Tensor
    text: torch.Tensor
    logit_scale: torch.Tensor
    extras: dict = field(default_factory=dict)


class PromptProvider(nn.Module):
    """What a method feeds the frozen encoders. Subclasses override what they use.

    ``text_input`` must be implemented unless ``class_text_features`` is (fixed class features,
    e.g. zero-shot CLIP's template ensemble).
    """

    image_conditioned = False  # True: text_input needs the image features (CoCoOp)

    def text_input(self, image_features=None):
        """-> (embeddings, token_ids): (n_cls, n_tokens, width) or, image-conditioned,
        (batch, n_cls, n_tokens, width); ids (n_cls, n_tokens) locate each prompt's EOT token."""
        raise NotImplementedError(f"{type(self).__name__} gives no text input")

    def image_prompts(self, dtype):
        return None

    def text_prompts(self, dtype):
        return None

    def image_extra_tokens(self, dtype):
        """None, or (n, width) / (batch, n, width) tokens appended to the image tower's input."""
        return None

    def class_text_features(self, model, image_features):
        """Normalised class text features: (n_cls, embed) or (batch, n_cls, embed)."""
        embeddings, token_ids = self.text_input(image_features if self.image_conditioned else None)
        prompts = self.text_prompts(model.dtype)
        if not self.image_conditioned:
            return model.encode_text(embeddings, token_ids, prompts)
        # One text pass per image (CoCoOp): (batch, n_cls, embed)
        return torch.stack([model.encode_text(e, token_ids, prompts) for e in embeddings])


class PromptedCLIP(nn.Module):
    """The frozen CLIP encoders run with a provider's prompts; the head makes logits and losses.

    ``PromptedCLIP(clip_model)`` alone (no provider) is the bare encoder pair that tests and
    benchmarks drive with explicit prompts through ``encode_image`` / ``encode_text``.
    """

    def __init__(self, clip_model, prompt_learner: Optional[PromptProvider] = None, head=None, text_chunk_size=0):
        super().__init__()
        self.prompt_learner = prompt_learner
        self.image_encoder = clip_model.visual
        self.text_encoder = TextEncoder(clip_model)
        self.logit_scale = clip_model.logit_scale
        self.head = head if head is not None else ClassificationHead()
        # > 0: encode the class prompts in chunks of this many classes with activation
        # checkpointing (the text branch holds every class's activations: ImageNet's memory hog).
        self.text_chunk_size = int(text_chunk_size)
        self._text_cache = None  # a dict while ``cached_text_features`` is active
        # (rank, world size) under torchrun with MODEL.TEXT_SHARD_CLASSES: each process encodes a
        # slice of the class prompts and the features are all-gathered with their gradients.
        self.text_shard = None
        self._raw = False  # True inside forward_features for a head that wants the raw features

    @contextlib.contextmanager
    def cached_text_features(self):
        """Within the block, class text features that do not depend on the image are computed once
        and reused (an evaluation: the prompts do not change between test batches). The cache is
        dropped on exit, so training goes on with fresh features."""
        previous, self._text_cache = self._text_cache, {}
        try:
            yield
        finally:
            self._text_cache = previous

    def class_text_features(self, image_features):
        """The provider's class text features, from the cache while one is active."""
        provider = self.prompt_learner
        cache = self._text_cache
        if cache is None or provider.image_conditioned:
            return provider.class_text_features(self, image_features)
        key = "raw_text" if self._raw else "text"
        if key not in cache:
            cache[key] = provider.class_text_features(self, image_features)
        return cache[key]

    @property
    def dtype(self):
        return self.image_encoder.conv1.weight.dtype

    # ---- encoders ----
    def encode_image(self, image, image_prompts=None, extra_tokens=None):
        """(batch, 3, H, W) -> normalised (batch, embed)."""
        image = image.type(self.dtype)
        if image_prompts is None and extra_tokens is None:
            features = self.image_encoder(image)  # any tower, ResNets included
        elif extra_tokens is None:
            features = self.image_encoder(image, image_prompts)
        else:
            features = self.image_encoder(image, image_prompts, extra_tokens=extra_tokens)
        return features if self._raw else features / features.norm(dim=-1, keepdim=True)

    def encode_text(self, text_embeddings, token_ids, text_prompts=None):
        """(n_prompts, n_tokens, width) embeddings -> normalised (n_prompts, embed)."""
        if self.text_shard is not None and len(text_embeddings) >= self.text_shard[1]:
            return self._encode_text_sharded(text_embeddings, token_ids, text_prompts, *self.text_shard)
        return self._encode_text_local(text_embeddings, token_ids, text_prompts)

    def _encode_text_sharded(self, text_embeddings, token_ids, text_prompts, rank, world):
        """Rank r encodes prompts [r n // world, (r + 1) n // world) (n >= world: none is empty);
        all_gather keeps the gradient.

        The all_gather's backward sums, over the processes, the gradient of every process's loss
        with respect to this process's slice; averaging the prompt gradients over the processes
        (``optimizer_step``) then gives what every process encoding all classes would. Collective:
        every process must encode the same prompts at the same time (the text side does not
        depend on the image: not CoCoOp).
        """
        from torch.distributed.nn.functional import all_gather

        n = len(text_embeddings)
        bounds = [r * n // world for r in range(world + 1)]
        size = max(bounds[r + 1] - bounds[r] for r in range(world))
        start, end = bounds[rank], bounds[rank + 1]
        local = self._encode_text_local(text_embeddings[start:end], token_ids[start:end], text_prompts)
        if end - start < size:  # slices differ by one at most: pad to the common size
            local = torch.cat([local, local.new_zeros(size - (end - start), local.shape[1])])
        gathered = all_gather(local.contiguous())
        return torch.cat([g[: bounds[r + 1] - bounds[r]] for r, g in enumerate(gathered)])

    def _encode_text_local(self, text_embeddings, token_ids, text_prompts=None):
        embeddings = text_embeddings.type(self.dtype)
        chunk = self.text_chunk_size
        if chunk <= 0 or len(embeddings) <= chunk or not torch.is_grad_enabled():
            features = self.text_encoder(embeddings, token_ids, text_prompts)
        else:
            # Recomputed in the backward pass: only one chunk's activations are alive at a time.
            features = torch.cat([
                checkpoint(self.text_encoder, embeddings[i : i + chunk], token_ids[i : i + chunk],
                           text_prompts, use_reentrant=False)
                for i in range(0, len(embeddings), chunk)
            ])
        return features if self._raw else features / features.norm(dim=-1, keepdim=True)

    def logits(self, image_features, text_features):
        """Cosine logits in float32 (every method's convention): (batch, n_cls)."""
        return self.head.logits(Features(image_features, text_features, self.logit_scale.exp()))

    # ---- the method ----
    def forward_features(self, image, extras=()):
        """``extras`` may ask for ``"raw_features"``: (image, text) before L2 normalisation (DePT's head)."""
        provider = self.prompt_learner
        dtype = self.dtype
        raw = "raw_features" in extras
        self._raw = raw  # the encoders skip the normalisation; it is done here, with the same operation
        try:
            image_features = self.encode_image(image, provider.image_prompts(dtype), provider.image_extra_tokens(dtype))
            raw_image = image_features
            if raw:
                image_features = raw_image / raw_image.norm(dim=-1, keepdim=True)
            text_features = self.class_text_features(image_features)
        finally:
            self._raw = False
        raw_text = text_features
        if raw:
            text_features = raw_text / raw_text.norm(dim=-1, keepdim=True)
        features = Features(image_features, text_features, self.logit_scale.exp())
        for name in extras:
            features.extras[name] = (raw_image, raw_text) if name == "raw_features" else self._extra(name, image)
        return features

    def _extra(self, name, image):
        if name == "zeroshot_image":
            with torch.no_grad():  # the frozen encoder without prompts: a teacher, no gradient
                return self.encode_image(image)
        raise ValueError(f"Unknown feature {name!r} requested by the head; known: ['zeroshot_image']")

    def forward(self, image):
        return self.head.logits(self.forward_features(image, extras=getattr(self.head, "wants_at_test", ())))
