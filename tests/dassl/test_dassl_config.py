"""dassl.config defaults, yacs behaviour users rely on, and train.py's config assembly."""

import argparse

import pytest
from yacs.config import CfgNode

import train
from dassl.config import clean_cfg, get_cfg_default


def test_default_tree_is_fresh_mutable_copy():
    a, b = get_cfg_default(), get_cfg_default()
    assert isinstance(a, CfgNode) and not a.is_frozen()
    a.OPTIM.LR = 1.0
    assert b.OPTIM.LR == 0.0003


def test_default_values_and_types():
    cfg = get_cfg_default()
    assert cfg.INPUT.SIZE == (224, 224) and isinstance(cfg.INPUT.SIZE, tuple)
    assert cfg.INPUT.TRANSFORMS == () and cfg.INPUT.PIXEL_MEAN == [0.485, 0.456, 0.406]
    assert cfg.OPTIM.STEPSIZE == (-1,) and cfg.OPTIM.SGD_DAMPNING == 0
    assert cfg.OPTIM.WARMUP_CONS_LR == 1e-5 and cfg.OPTIM.WEIGHT_DECAY == 5e-4
    assert cfg.DATALOADER.TRAIN_X.SAMPLER == "RandomSampler" and cfg.DATALOADER.NUM_WORKERS == 4
    assert cfg.TEST.FINAL_MODEL == "last_step" and cfg.TEST.EVALUATOR == "Classification"
    assert cfg.DATASET.SUBSAMPLE_CLASSES == "all" and cfg.DATASET.LABEL_SPACE == "concatenated"
    assert cfg.TRAINER.FIXMATCH.STRONG_TRANSFORMS == ()
    # User trainer nodes are defined by train.py, not by the engine
    assert "COOP" not in cfg.TRAINER and "USE_WRITER" not in cfg


def test_yaml_and_list_merges_coerce_types(tmp_path):
    cfg = get_cfg_default()
    path = tmp_path / "t.yaml"
    path.write_text("INPUT:\n  SIZE: (32, 32)\n  TRANSFORMS: [\"random_flip\"]\nOPTIM:\n  WARMUP_CONS_LR: 1e-6\n")
    cfg.merge_from_file(str(path))
    assert cfg.INPUT.SIZE == (32, 32) and cfg.INPUT.TRANSFORMS == ("random_flip",)
    assert isinstance(cfg.OPTIM.WARMUP_CONS_LR, float) and cfg.OPTIM.WARMUP_CONS_LR == 1e-6
    cfg.merge_from_list(["DATASET.NUM_SHOTS", "16", "DATASET.SUBSAMPLE_CLASSES", "new"])
    assert cfg.DATASET.NUM_SHOTS == 16 and cfg.DATASET.SUBSAMPLE_CLASSES == "new"


def test_clean_cfg_keeps_only_named_trainer():
    cfg = get_cfg_default()
    clean_cfg(cfg, "fixmatch")
    assert set(cfg.TRAINER.keys()) == {"NAME", "FIXMATCH"}


def assert_has(node, expected):
    """Every expected key with its default (sections may grow keys later)."""
    for key, value in expected.items():
        assert key in node, "missing config key {}".format(key)
        assert node[key] == value and type(node[key]) is type(value), key


def test_extend_cfg_defaults():
    cfg = get_cfg_default()
    train.extend_cfg(cfg)
    assert cfg.MODEL.BACKBONE.PATH == ""
    assert_has(cfg.TRAINER.COOP, {"N_CTX": 16, "CSC": False, "CTX_INIT": "", "PREC": "fp16",
                                      "CLASS_TOKEN_POSITION": "end"})
    assert_has(cfg.TRAINER.COCOOP, {"N_CTX": 16, "CTX_INIT": "", "PREC": "fp16"})
    assert_has(cfg.TRAINER.ZSCLIP, {"PREC": "fp16"})
    assert_has(cfg.TRAINER.TRAINERSUPERNET, {
        "N_CTX_VISION": 6, "N_CTX_TEXT": 6, "CTX_INIT": "a photo of a", "PREC": "fp32", "IMPL": "fused",
        "ALPHA_LR": 0.0035, "ALPHA_BETAS": (0.5, 0.999), "ALPHA_WEIGHT_DECAY": 0.0, "ALPHA_INIT_STD": 1e-3,
        "VAL_BATCHES": "cycle", "INIT_IMG": "normal", "INIT_TXT": "uniform", "DOMINANCE_MARGIN": 0.1})
    assert_has(cfg.TRAINER.TRAINERSUBNET, {
        "IMG_ALPHA_PATH": "", "TXT_ALPHA_PATH": "", "PROMPT_CONFIG": "", "CTX_INIT": "ensemble", "PREC": "fp32",
        "KD_WEIGHT": 0.0, "KD_TEMP": 1.0, "INIT_STD": 0.02})
    assert_has(cfg.DATASET.IMAGE_FOLDER, {
        "DIR": "", "LAYOUT": "auto", "SPLIT_FILE": "split.json", "TRAIN_RATIO": 0.5, "VAL_RATIO": 0.2,
        "SPLIT_SEED": 1, "CLASSNAMES": [], "TEMPLATE": "a photo of a {}."})
    assert_has(cfg.DATASET.TOY, {"NUM_CLASSES": 4, "IMAGES_PER_CLASS": 24, "IMAGE_SIZE": 32, "SEED": 0})
    assert cfg.DATASET.SUBSAMPLE_CLASSES == "all" and cfg.USE_WRITER is False


def _args(argv):
    return train.get_parser().parse_args(argv)


def test_setup_cfg_applies_cli_and_overrides():
    cfg = train.setup_cfg(_args(["--root", "/data", "--trainer", "CoOp", "--seed", "0", "--output-dir", "out",
                                 "TRAINER.COOP.N_CTX", "4", "TRAINER.COOP.CLASS_TOKEN_POSITION", "middle"]))
    assert cfg.is_frozen()
    assert (cfg.DATASET.ROOT, cfg.TRAINER.NAME, cfg.SEED, cfg.OUTPUT_DIR) == ("/data", "CoOp", 0, "out")
    assert cfg.TRAINER.COOP.N_CTX == 4 and cfg.TRAINER.COOP.CLASS_TOKEN_POSITION == "middle"


def test_unknown_override_key_names_the_key():
    with pytest.raises(KeyError, match=r"TRAINER\.COOP\.N_CTXX.*did you mean \"TRAINER\.COOP\.N_CTX\""):
        train.setup_cfg(_args(["TRAINER.COOP.N_CTXX", "4"]))


def test_odd_number_of_overrides_is_explained():
    with pytest.raises(ValueError, match="KEY VALUE pairs"):
        train.setup_cfg(_args(["OPTIM.LR"]))


def test_unknown_key_in_config_file_names_file_and_key(tmp_path):
    path = tmp_path / "bad.yaml"
    path.write_text("OPTIM:\n  LRR: 0.1\n")
    with pytest.raises(KeyError, match=r"bad\.yaml.*OPTIM\.LRR"):
        train.setup_cfg(_args(["--config-file", str(path)]))


def test_parser_has_coop_options():
    parser = train.get_parser()
    assert isinstance(parser, argparse.ArgumentParser)
    args = parser.parse_args(["--eval-only", "--model-dir", "m", "--load-epoch", "5", "--no-train",
                              "--source-domains", "a", "b", "--transforms", "random_flip", "--backbone", "RN50",
                              "--head", "mlp", "--resume", "r", "OPTIM.LR", "0.1"])
    assert args.eval_only and args.no_train and args.load_epoch == 5 and args.source_domains == ["a", "b"]
    assert args.opts == ["OPTIM.LR", "0.1"]
