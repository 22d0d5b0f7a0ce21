"""Prompt interpretation (tools/interpret_prompts.py): a word planted in a prompt comes back first."""
import json
import os
import sys

import pytest
import torch

from tools import interpret_prompts
from tools.interpret_prompts import Vocabulary, interpret

REPO_ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
TOY_YAML = os.path.join(REPO_ROOT, "configs", "datasets", "toy.yaml")
FAST = ["INPUT.SIZE", "(32, 32)", "DATALOADER.NUM_WORKERS", "0", "DATASET.NUM_SHOTS", "1", "USE_CUDA", "False"]


@pytest.fixture(scope="module")
def clip_path(tmp_path_factory):
    from clip.tiny import save_tiny_clip

    return save_tiny_clip(str(tmp_path_factory.mktemp("interp_clip") / "tiny_vit.pt"), arch="ViT")


@pytest.fixture(scope="module")
def vocabulary(clip_path):
    return Vocabulary.from_weights(clip_path)


def saved_run(tmp_path, clip_path, trainer, *opts):
    """A run folder as train.py writes it (log.txt, <model>/model.pth.tar-1) of an untrained ``trainer``."""
    import train
    from dassl.utils import Logger

    out = tmp_path / trainer
    argv = ["--root", str(tmp_path / "data"), "--output-dir", str(out), "--seed", "1", "--trainer", trainer,
            "--dataset-config-file", TOY_YAML, "--no-train", *FAST, "MODEL.BACKBONE.PATH", clip_path, *opts]
    old_stdout = sys.stdout
    try:
        built = train.main(train.get_parser().parse_args(argv))
        built.save_model(0, str(out))
    finally:
        if isinstance(sys.stdout, Logger):
            sys.stdout.close()
        sys.stdout = old_stdout
    return out, built


def word_id(word):
    from clip.simple_tokenizer import SimpleTokenizer

    ids = SimpleTokenizer().encode(word)
    assert len(ids) == 1, word
    return ids[0]


def plant(checkpoint_file, key, index, embedding):
    """Write ``embedding`` into token ``index`` of ``key`` in a saved checkpoint."""
    checkpoint = torch.load(checkpoint_file, map_location="cpu", weights_only=True)
    checkpoint["state_dict"][key][index] = embedding.to(checkpoint["state_dict"][key].dtype)
    torch.save(checkpoint, checkpoint_file)


def first_words(report, key):
    entry = next(e for c in report["checkpoints"] for e in c["prompts"] if e["key"] == key)
    return [(t["cosine"][0]["word"], t["l2"][0]["word"]) for t in entry["tokens"]], entry


def test_planted_words_in_the_input_context_and_a_deep_text_prompt(tmp_path, clip_path, vocabulary):
    """IVLP (text depth 2): 'dog' planted in ctx token 1, 'guitar' in text_deep.1 token 0."""
    run, _ = saved_run(tmp_path, clip_path, "IVLP", "TRAINER.IVLP.PROMPT_DEPTH_TEXT", "2",
                       "TRAINER.IVLP.PROMPT_DEPTH_VISION", "2", "TRAINER.IVLP.PREC", "fp32")
    file = run / "VLPromptLearner" / "model.pth.tar-1"
    dog, guitar = word_id("dog"), word_id("guitar")
    plant(file, "ctx", 1, vocabulary.embedding[dog])
    plant(file, "text_deep.1", 0, vocabulary.embedding[guitar] * 3.0)  # cosine ignores the scale
    report = interpret(str(run), vocabulary, topk=3)  # backbone given: no log needed

    words, entry = first_words(report, "ctx")
    assert entry["where"] == "input" and entry["comparable"]
    assert words[1] == ("dog", "dog")
    assert entry["tokens"][1]["l2"][0]["distance"] == pytest.approx(0.0, abs=1e-5)
    assert entry["tokens"][1]["cosine"][0]["id"] == dog
    words, entry = first_words(report, "text_deep.1")
    assert entry["where"] == "block 1" and words[0][0] == "guitar"  # by cosine
    assert entry["tokens"][0]["cosine"][0]["cosine"] == pytest.approx(1.0, abs=1e-5)
    assert entry["tokens"][0]["l2"][0]["distance"] == pytest.approx(2.0 * vocabulary.embedding[guitar].norm().item(),
                                                                    rel=1e-4)  # L2 sees the scale: 2 norms away
    # vision prompts: listed, not compared
    image = [e for e in report["checkpoints"][0]["prompts"] if e["branch"] == "image"]
    assert {e["key"] for e in image} == {"vpt", "vision_deep.1"}
    assert all(not e["comparable"] and "cosine" not in e["tokens"][0] for e in image)


def test_cli_reads_the_backbone_from_the_log_and_writes_markdown_and_json(tmp_path, clip_path, vocabulary, capsys):
    run, _ = saved_run(tmp_path, clip_path, "CoOp", "TRAINER.COOP.N_CTX", "4", "TRAINER.COOP.PREC", "fp32")
    file = run / "prompt_learner" / "model.pth.tar-1"
    plant(file, "ctx", 2, vocabulary.embedding[word_id("photo")])
    prefix = str(tmp_path / "report" / "coop")
    assert interpret_prompts.main([str(run), "--topk", "2", "--out", prefix]) == 0
    printed = capsys.readouterr().out
    assert "| text | input | `ctx` | 2 |" in printed and "photo (1.000)" in printed
    data = json.load(open(prefix + ".json"))
    assert data["vocabulary"]["source"] == clip_path  # from log.txt's "Loading CLIP (backbone: ...)"
    tokens = data["checkpoints"][0]["prompts"][0]["tokens"]
    assert len(tokens) == 4 and all(len(t["cosine"]) == 2 and len(t["l2"]) == 2 for t in tokens)
    assert tokens[2]["l2"][0]["word"] == "photo"
    assert open(prefix + ".md").read().startswith("# Nearest vocabulary words")


def synthetic(tmp_path, model, state_dict, epoch=3):
    from dassl.utils import save_checkpoint

    save_checkpoint({"state_dict": state_dict, "epoch": epoch, "optimizer": None, "scheduler": None},
                    str(tmp_path / "run" / model))
    return tmp_path / "run"


def test_dpl_deep_prompts_per_block_and_branch(tmp_path, vocabulary):
    """A DPL subnet's layout: ctx_txt_lst.<block> (empty for 0 tokens) and ctx_img_lst.<block>."""
    width = vocabulary.width
    cat = vocabulary.embedding[word_id("cat")]
    text = [torch.randn(2, width) * 0.01, torch.zeros(0, width), torch.randn(1, width) * 0.01]
    text[2][0] = cat
    state = {f"ctx_txt_lst.{b}": t for b, t in enumerate(text)}
    state.update({"ctx_img_lst.0": torch.randn(3, 128), "ctx_img_lst.1": torch.zeros(0, 128)})
    run = synthetic(tmp_path, "MultiModalPromptLearner", state)
    report = interpret(str(run), vocabulary, topk=1)
    words, entry = first_words(report, "ctx_txt_lst.2")
    assert entry["where"] == "block 2" and words == [("cat", "cat")]
    assert first_words(report, "ctx_txt_lst.1")[1]["num_tokens"] == 0
    markdown = interpret_prompts.to_markdown(report)
    assert "(0 tokens: plain block)" in markdown and "`ctx_img_lst.0` | 3 x 128" in markdown
    assert report["checkpoints"][0]["epoch"] == 3
    # the supernet's options: ctx_txt_lst.<block>.<i> holds option i + 1 (i + 1 tokens)
    supernet = {"ctx_txt_lst.3.1": torch.zeros(2, width), "alphas_txt": torch.zeros(4, 3)}
    prompts, _ = interpret_prompts.prompt_tensors(supernet)
    assert [(p["where"], p["option"], len(p["rows"])) for p in prompts] == [("block 3, option 2", 2, 2)]


def test_release_whole_model_maple_checkpoint(tmp_path, vocabulary):
    """The MaPLe release's file: prompt_learner.* beside the frozen CLIP; image prompts are computed."""
    width = vocabulary.width
    ctx = torch.randn(2, width) * 0.02
    deep = torch.randn(2, width) * 0.02
    deep[1] = vocabulary.embedding[word_id("bird")]
    state = {"prompt_learner.ctx": ctx.half(), "prompt_learner.compound_prompts_text.0": deep,
             "prompt_learner.proj.weight": torch.randn(128, width), "prompt_learner.proj.bias": torch.zeros(128),
             "prompt_learner.compound_prompt_projections.0.weight": torch.randn(128, width),
             "prompt_learner.compound_prompt_projections.0.bias": torch.zeros(128),
             "prompt_learner.token_prefix": torch.zeros(4, 1, width),
             "text_encoder.positional_embedding": torch.zeros(77, width)}
    report = interpret(str(synthetic(tmp_path, "MultiModalPromptLearner", state)), vocabulary, topk=1)
    words, entry = first_words(report, "prompt_learner.compound_prompts_text.0")
    assert entry["where"] == "block 1" and words[1] == ("bird", "bird")
    image = {e["key"]: e for e in report["checkpoints"][0]["prompts"] if e["branch"] == "image"}
    assert set(image) == {"proj(ctx)", "compound_prompt_projections.0(compound_prompts_text.0)"}
    assert image["proj(ctx)"]["where"] == "input" and image["proj(ctx)"]["width"] == 128
    assert "prompt_learner.token_prefix" in report["checkpoints"][0]["other_keys"]


def test_a_folder_without_prompts_names_what_was_expected(tmp_path, vocabulary, capsys):
    from dassl.utils import CheckpointError, MissingFileError

    run = synthetic(tmp_path, "head", {"fc.weight": torch.zeros(4, 32), "fc.bias": torch.zeros(4)})
    with pytest.raises(CheckpointError) as error:
        interpret(str(run), vocabulary)
    message = str(error.value)
    assert "No learned prompt" in message and "`ctx`" in message and "ctx_txt_lst.<block>" in message
    assert "fc.weight" in message  # what was found
    empty = tmp_path / "empty"
    empty.mkdir()
    with pytest.raises(MissingFileError, match=r"model\.pth\.tar-<epoch> or model-best\.pth\.tar"):
        interpret(str(empty), vocabulary)
    assert interpret_prompts.main([str(empty)]) == 2  # the CLI: one error line, no backbone found
    assert "--backbone" in capsys.readouterr().err


def test_epoch_choice(tmp_path, vocabulary):
    from dassl.utils import MissingFileError, save_checkpoint

    folder = tmp_path / "run" / "prompt_learner"
    for epoch in (1, 2):
        save_checkpoint({"state_dict": {"ctx": torch.full((1, vocabulary.width), float(epoch))}, "epoch": epoch},
                        str(folder))
    assert interpret(str(tmp_path / "run"), vocabulary)["checkpoints"][0]["epoch"] == 2  # the last saved
    assert interpret(str(tmp_path / "run"), vocabulary, epoch=1)["checkpoints"][0]["epoch"] == 1
    with pytest.raises(MissingFileError, match=r"has the epochs \[1, 2\]"):
        interpret(str(tmp_path / "run"), vocabulary, epoch=7)
