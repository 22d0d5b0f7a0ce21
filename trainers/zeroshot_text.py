"""Zero-shot class text from prompt templates (class names x templates), one builder, two recipes.

* ``"features"``: encode every (template, class) prompt, normalise, average over templates,
  renormalise. CLIP's recipe: zero-shot CLIP (ZeroshotCLIP2) and DPL's KD teacher use it.
* ``"embeddings"``: average the prompts' TOKEN EMBEDDINGS position by position over templates and
  read the result at the end-of-text position of the LAST template. The official DPL release's
  ``ensemble`` text input of the subnet: templates of different lengths put their EOT tokens at
  different positions, and the release keeps only the last one (docs/dpl.md, release defects).
"""
import torch
from tqdm import tqdm

from trainers.common import clean_classname, is_main_process, tokenize

RECIPES = ("features", "embeddings")


def template_text_input(clip_model, classnames, templates):
    """("embeddings" recipe) -> (n_cls, n_tokens, width) float32 embeddings, (n_cls, n_tokens) ids.

    The ids are the LAST template's: its EOT position is where the text features are read.
    """
    names = [clean_classname(name) for name in classnames]
    device = clip_model.token_embedding.weight.device
    with torch.no_grad():
        embeddings = 0.0
        for template in templates:
            token_ids = tokenize([template.format(name) for name in names], clip_model).to(device)
            embeddings = embeddings + clip_model.token_embedding(token_ids).float()
    return embeddings / len(templates), token_ids


def zeroshot_text_features(model, clip_model, classnames, templates, recipe="features"):
    """Normalised (n_cls, embed) float32 class features from ``templates``, without gradient.

    model: a ``PromptedCLIP`` (its text encoder runs without prompts); clip_model: the CLIP it
    wraps (token embedding, context length). Call under the trainer's autocast.
    """
    if recipe not in RECIPES:
        raise ValueError(f"Unknown zero-shot text recipe {recipe!r}; expected one of {list(RECIPES)}.")
    if not templates:
        raise ValueError("No prompt templates given: expected strings with one '{}' for the class name.")
    with torch.no_grad():
        if recipe == "embeddings":
            return model.encode_text(*template_text_input(clip_model, classnames, templates)).float()
        names = [clean_classname(name) for name in classnames]
        device = clip_model.token_embedding.weight.device
        total = 0.0
        # 60 templates x 1000 ImageNet classes take a while: a bar when it lasts more than a second
        for template in tqdm(templates, desc="Zero-shot text features", unit="template", delay=1,
                             disable=not is_main_process()):
            token_ids = tokenize([template.format(name) for name in names], clip_model).to(device)
            total = total + model.encode_text(clip_model.token_embedding(token_ids), token_ids).float()
        mean = total / len(templates)
        return mean / mean.norm(dim=-1, keepdim=True)
