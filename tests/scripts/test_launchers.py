"""Every launcher under scripts/, run against a stand-in train.py (conftest.STUB) that records its
command lines: overrides, environment and dataset forms reach train.py; the layouts are the
documented ones; mistakes stop before anything runs, with a "did you mean"."""
import glob
import os
import subprocess

import pytest

from conftest import REPO_ROOT, calls, option

OVERRIDES = ["TRAIN.PRINT_FREQ", "3", "OPTIM.MAX_EPOCH", "2"]
LIBRARIES = {"lib/launch.sh", "dpl/common.sh", "dept/variants.sh", "mvlpt/sources.sh"}  # sourced, not run
NOT_TRAIN_PY = {"demo.sh",  # runs scripts/demo.py (tests/test_demo.py), takes no KEY VALUE overrides
                "lpclip/linear_probe.sh"}  # runs tools/linear_probe.py (tests/tools/test_linear_probe.py)

IVLP, LP, VPT = "vit_b16_c2_ep5_batch4_2+2ctx", "vit_b16_c2_ep5_batch4_4ctx_language_only", "vit_b16_c2_ep5_batch4_4"

# (launcher, its arguments before the overrides, separator before the overrides); in an order where
# every evaluation finds the training run it loads ({w} is the fake release weights folder).
LAUNCHERS = [
    ("trainersupernet/launch_nas.sh", ["toy", "{out}/search", "1", "4"]),
    ("trainersubnet/launch_train.sh", ["toy", "{out}/train_a", "{out}/a_img.npy", "{out}/a_txt.npy", "1", "4"]),
    ("dpl/search_then_train.sh", ["toy", "1", "4"]),
    ("dpl/base2new.sh", ["toy", "1"]),
    ("dpl/transfer.sh", ["xd", "1"]),
    ("zsclip/zeroshot.sh", ["toy", "vit_b16", "ZeroshotCLIP2"]),
    ("coop/main.sh", ["imagenet", "vit_b16", "end", "16", "16", "False"]),
    ("coop/eval.sh", ["imagenet_sketch", "vit_b16"]),
    ("cocoop/base2new_train.sh", ["toy", "1"]),
    ("cocoop/base2new_test.sh", ["toy", "1"]),
    ("cocoop/xd_train.sh", ["1"]),
    ("cocoop/xd_test.sh", ["dtd", "1"]),
    ("kgcoop/base2new_train.sh", ["toy", "8.0"]),
    ("kgcoop/base2new_test.sh", ["toy", "8.0"]),
    ("kgcoop/xd_train.sh", ["toy", "dtd", "--"]),
    ("kgcoop/dg.sh", ["2.0"]),
    ("maple/base2new_train_maple.sh", ["toy", "1"]),
    ("maple/base2new_test_maple.sh", ["toy", "1"]),
    ("maple/xd_train_maple.sh", ["imagenet", "1"]),
    ("maple/xd_test_maple.sh", ["dtd", "1"]),
    ("maple/reproduce_maple.sh", ["toy", "1", "{w}/maple"]),
    ("maple/reproduce_maple_xd.sh", ["dtd", "1", "{w}/maple_xd"]),
    ("promptsrc/base2new_train.sh", ["toy", "1"]),
    ("promptsrc/base2new_test.sh", ["toy", "1"]),
    ("promptsrc/few_shot.sh", ["toy", "4"]),
    ("promptsrc/xd_train.sh", ["imagenet", "1"]),
    ("promptsrc/xd_test.sh", ["dtd", "1"]),
    ("promptsrc/reproduce_base2novel_setting.sh", ["toy", "1", "{w}/promptsrc"]),
    ("promptsrc/reproduce_few_shot.sh", ["toy", "4", "{w}/promptsrc_fs"]),
    ("promptsrc/reproduce_xd.sh", ["dtd", "1", "{w}/promptsrc_xd"]),
] + [
    (f"{folder}/{name}_{suffix}.sh", args)
    for folder, suffix, weights in [("independent-vlp", "ivlp", "ivlp"), ("language-prompting", "lp", "lp"),
                                    ("vpt", "vpt", "vpt")]
    for name, args in [("base2new_train", ["toy", "1"]), ("base2new_test", ["toy", "1"]), ("few_shot", ["toy", "4"]),
                       ("xd_train", ["1"]), ("xd_test", ["dtd", "1"]), ("reproduce", ["toy", "1", "{w}/" + weights])]
] + [
    ("mvlpt/source.sh", ["16"]),
    ("mvlpt/target.sh", ["toy"]),
    ("dept/base2new_train.sh", ["coop", "toy", "1"]),
    ("dept/base2new_test.sh", ["coop", "toy", "1"]),
    ("dept/xd_train.sh", ["coop", "1"]),
    ("dept/xd_test.sh", ["coop", "dtd", "1"]),
]


def checkpoint(path, epoch):
    os.makedirs(path, exist_ok=True)
    open(os.path.join(path, f"model.pth.tar-{epoch}"), "w").close()


def release_weights(root):
    """Folders in the layouts the reproduce scripts read."""
    checkpoint(f"{root}/maple/base/seed1/MultiModalPromptLearner", 5)
    checkpoint(f"{root}/maple_xd/seed1/MultiModalPromptLearner", 2)
    checkpoint(f"{root}/promptsrc/base/seed1/VLPromptLearner", 20)
    checkpoint(f"{root}/promptsrc_xd/seed1/VLPromptLearner", 20)
    for seed in (1, 2, 3):
        checkpoint(f"{root}/promptsrc_fs/4shot/seed{seed}/VLPromptLearner", 50)
    for name, trainer, cfg in [("ivlp", "IVLP", IVLP), ("lp", "IVLP", LP), ("vpt", "VPT", VPT)]:
        checkpoint(f"{root}/{name}/base2new/train_base/toy/shots_16/{trainer}/{cfg}/seed1/VLPromptLearner", 5)


def launch(script, args, env, cwd=None):
    return subprocess.run(["bash", os.path.join(REPO_ROOT, "scripts", script), *map(str, args)],
                          capture_output=True, text=True, env=env, cwd=cwd, timeout=300)


def test_the_table_names_every_launcher():
    found = {os.path.relpath(p, os.path.join(REPO_ROOT, "scripts"))
             for p in glob.glob(os.path.join(REPO_ROOT, "scripts", "**", "*.sh"), recursive=True)}
    assert found - LIBRARIES - NOT_TRAIN_PY == {script for script, _ in LAUNCHERS}


@pytest.mark.slow
def test_every_launcher_passes_overrides_environment_and_overwrite(tmp_path, stub_env):
    env = dict(stub_env, OVERWRITE="1")
    for folder in ("dtd", "imagenetv2"):  # present transfer targets (the others are missing)
        os.makedirs(os.path.join(env["DATA"], folder))
    release_weights(str(tmp_path / "w"))
    for script, args in LAUNCHERS:
        args = [a.format(out=env["OUTPUT"], w=tmp_path / "w") for a in args]
        done = launch(script, args + OVERRIDES, env)
        assert done.returncode == 0, (script, done.stdout[-1500:], done.stderr[-1500:])
        recorded = calls(env)
        assert recorded, script
        for argv in recorded:
            assert argv[-len(OVERRIDES):] == OVERRIDES, (script, argv)
            assert option(argv, "--root") == env["DATA"], script
            assert option(argv, "MODEL.BACKBONE.PATH") == env["CLIP_WEIGHTS"], script
            assert "--overwrite" in argv and argv.index("--overwrite") < argv.index("MODEL.BACKBONE.PATH"), script
            assert option(argv, "--output-dir").startswith(env["OUTPUT"] + os.sep), script
            if "--model-dir" in argv:  # the latest checkpoint of the run it evaluates
                model_dir = option(argv, "--model-dir")
                assert glob.glob(os.path.join(model_dir, "*", "model.pth.tar-" + option(argv, "--load-epoch"))), script


def test_without_overwrite_no_overwrite_flag(stub_env):
    done = launch("maple/base2new_train_maple.sh", ["toy", "1"], stub_env)
    assert done.returncode == 0, done.stderr
    [argv] = calls(stub_env)
    assert "--overwrite" not in argv


@pytest.mark.parametrize("form", ["toy", "TOY", "Toy", "yaml_here", "yaml_abs"])
def test_dataset_forms(tmp_path, stub_env, form):
    own = tmp_path / "my_toy.yaml"
    own.write_text('DATASET:\n  NAME: "Toy"\n')
    spec = {"yaml_here": "my_toy.yaml", "yaml_abs": str(own)}.get(form, form)
    done = launch("zsclip/zeroshot.sh", [spec, "vit_b16"], stub_env, cwd=str(tmp_path))  # relative to the caller
    assert done.returncode == 0, done.stderr
    [argv] = calls(stub_env)
    expected = str(own) if form.startswith("yaml") else os.path.join(REPO_ROOT, "configs", "datasets", "toy.yaml")
    assert os.path.samefile(option(argv, "--dataset-config-file"), expected)
    tag = "my_toy" if form.startswith("yaml") else "toy"
    assert option(argv, "--output-dir") == os.path.join(stub_env["OUTPUT"], "ZeroshotCLIP", "vit_b16", tag)
    assert "DATASET.NAME" not in argv


def test_several_datasets_with_an_image_folder_yaml(tmp_path, stub_env):
    flowers = tmp_path / "flowers.yaml"
    flowers.write_text('DATASET:\n  NAME: "ImageFolder"\n  IMAGE_FOLDER:\n    DIR: "my_flowers"\n')
    done = launch("trainersupernet/launch_nas.sh", ["caltech101,OXFORD_PETS,flowers.yaml", "o", "1", "16"],
                  stub_env, cwd=str(tmp_path))
    assert done.returncode == 0, done.stderr
    [argv] = calls(stub_env)
    assert option(argv, "DATASET.NAME") == "Caltech101,OxfordPets,ImageFolder"
    assert option(argv, "--dataset-config-file") == str(flowers)  # it carries the ImageFolder keys
    assert option(argv, "--output-dir") == str(tmp_path / "o")

    done = launch("dpl/search_then_train.sh", ["caltech101,oxford_pets", "1", "4"], stub_env)
    assert done.returncode == 0, done.stderr
    search, train = calls(stub_env)
    assert option(search, "--output-dir").endswith("search/caltech101+oxford_pets/shots_4/TrainerSupernet/fewshot/seed1")
    assert option(train, "DATASET.NAME") == "Caltech101,OxfordPets"


@pytest.mark.parametrize("script, args, env_extra, message", [
    ("maple/base2new_train_maple.sh", ["caltek101", "1"], {}, 'unknown dataset \'caltek101\' (did you mean "Caltech101"?)'),
    ("dpl/base2new.sh", ["nosuch.yaml", "1"], {}, "dataset YAML"),
    ("dpl/search_then_train.sh", ["toy", "1", "4", "OPTIM.MAX_EPOHC", "1"], {},
     'unknown config key "OPTIM.MAX_EPOHC" in the overrides (did you mean "OPTIM.MAX_EPOCH"?)'),
    ("promptsrc/few_shot.sh", ["toy", "4", "OPTIM.LR"], {}, "KEY VALUE pairs"),
    ("maple/base2new_train_maple.sh", ["toy", "1"], {"CFG": "vit_b16_c2_ep5_batch4_2ct"},
     'no config \'vit_b16_c2_ep5_batch4_2ct\' for MaPLe (did you mean "vit_b16_c2_ep5_batch4_2ctx"?)'),
    ("dpl/base2new.sh", ["toy", "1"], {"SEARCH_CFG": "fewshto"}, 'did you mean "fewshot"?'),
    ("dept/base2new_train.sh", ["coopp", "toy", "1"], {}, "unknown DePT variant 'coopp'"),
    ("maple/base2new_test_maple.sh", ["toy", "1"], {}, "run the base2new training stage first"),
])
def test_mistakes_stop_before_train_py(stub_env, script, args, env_extra, message):
    done = launch(script, args, dict(stub_env, **env_extra))
    assert done.returncode == 2, done.stdout + done.stderr
    assert message in done.stderr, done.stderr
    assert calls(stub_env) == []


def test_usage_names_the_config_variables():
    for script, variable in [("dpl/search_then_train.sh", "SEARCH_CFG"), ("dpl/search_then_train.sh", "TRAIN_CFG"),
                             ("dpl/base2new.sh", "TRAIN_CFG_B2N"), ("dpl/transfer.sh", "TARGETS"),
                             ("maple/base2new_train_maple.sh", "CFG")]:
        done = launch(script, [], dict(os.environ))
        assert done.returncode == 2 and variable in done.stderr and "usage:" in done.stderr, script


def test_transfer_evaluates_present_targets_and_lists_missing(stub_env):
    for folder in ("caltech-101", "dtd"):
        os.makedirs(os.path.join(stub_env["DATA"], folder))
    done = launch("dpl/transfer.sh", ["xd", "1"], stub_env)
    assert done.returncode == 0, done.stderr
    search, train, *evaluations = calls(stub_env)
    assert option(search, "--trainer") == "TrainerSupernet" and option(train, "--trainer") == "TrainerSubnet"
    assert [os.path.basename(option(a, "--dataset-config-file")) for a in evaluations] == ["caltech101.yaml", "dtd.yaml"]
    assert option(evaluations[1], "--output-dir") == os.path.join(
        stub_env["OUTPUT"], "xd", "dtd", "shots_16", "TrainerSubnet", "fewshot", "seed1")
    missing = done.stdout.split("Not evaluated")[1]
    for name in ("oxford_pets", "stanford_cars", "oxford_flowers", "food101", "fgvc_aircraft", "sun397", "eurosat",
                 "ucf101"):
        assert name in missing
    assert "caltech101" not in missing and "dtd (" not in missing

    chosen = launch("dpl/transfer.sh", ["xd", "1"], dict(stub_env, TARGETS="dtd,eurosat"))
    assert chosen.returncode == 1  # a target asked for by name was not evaluated
    assert [os.path.basename(option(a, "--dataset-config-file")) for a in calls(stub_env)[2:]] == ["dtd.yaml"]
    assert "eurosat (no " in chosen.stdout.split("Not evaluated")[1]

    none = launch("dpl/transfer.sh", ["dg", "1"], stub_env)
    assert none.returncode == 2 and "no target has its data" in none.stderr
    assert calls(stub_env) == []


DEPT = {  # method: (trainer, base-to-new config folder, cross-dataset config folder, DePT switched on by option)
    "coop": ("ExtrasLinearProbeCoOp", "vit_b16_ep10_bs4_lr35", "vit_b16_ep10_bs4_lr35", False),
    "cocoop": ("ExtrasLinearProbeCoCoOp", "vit_b16_c4_ep10_batch1_ctxv1", "vit_b16_c4_ep10_batch1_ctxv1", False),
    "kgcoop": ("ExtrasLinearProbeKgCoOp", "vit_b16_ep10_ctxv1_bs4_lr35", "vit_b16_ep10_ctxv1_bs4_lr35", False),
    "maple": ("ExtrasLinearProbeMaPLe", "vit_b16_c2_ep10_batch4_2ctx", "vit_b16_c2_ep10_batch4_2ctx", False),
    "promptsrc": ("PromptSRC", "vit_b16_c2_ep20_batch4_4+4ctx_dept", "vit_b16_c2_ep20_batch4_4+4ctx_cross_datasets_dept",
                  True),
    "dpl": ("TrainerSubnet", "base2new_dept", "fewshot_dept", True),
}


@pytest.mark.parametrize("method", sorted(DEPT))
def test_dept_scripts_layout(stub_env, method):
    trainer, b2n_cfg, xd_cfg, by_option = DEPT[method]
    out = stub_env["OUTPUT"]
    runs = []
    for script, args in [("base2new_train", [method, "toy", "1"]), ("base2new_test", [method, "TOY", "1"]),
                         ("xd_train", [method, "1"]), ("xd_test", [method, "dtd", "1"])]:
        done = launch(f"dept/{script}.sh", args, stub_env)
        assert done.returncode == 0, (script, done.stderr)
        runs += calls(stub_env)
    if method == "dpl":  # each training stage is preceded by its search
        search_b2n, train, test, search_xd, xd, xd_test = runs
        assert option(search_b2n, "--output-dir") == f"{out}/base2new/search/toy/shots_16/TrainerSupernet/fewshot/seed1"
        assert option(search_b2n, "DATASET.SUBSAMPLE_CLASSES") == "base"
        assert option(search_xd, "--output-dir") == f"{out}/search/imagenet/shots_16/TrainerSupernet/fewshot/seed1"
        for argv, search in [(train, search_b2n), (test, search_b2n), (xd, search_xd), (xd_test, search_xd)]:
            assert option(argv, "TRAINER.TRAINERSUBNET.PROMPT_CONFIG") == option(search, "--output-dir") + \
                "/searched_config.json"
    else:
        train, test, xd, xd_test = runs
    for argv in (train, test, xd, xd_test):
        assert option(argv, "--trainer") == trainer
        assert (option(argv, "TRAINER.DEPT.ENABLED") == "True") if by_option else "TRAINER.DEPT.ENABLED" not in argv
    config = os.path.basename(option(train, "--config-file"))[:-len(".yaml")]
    assert b2n_cfg == config + ("_dept" if by_option else "")
    b2n = f"toy/shots_16/{trainer}/{b2n_cfg}/seed1"
    assert option(train, "--output-dir") == f"{out}/base2new/train_base/{b2n}"
    assert option(train, "DATASET.SUBSAMPLE_CLASSES") == "base" and "--eval-only" not in train
    assert option(test, "--output-dir") == f"{out}/base2new/test_new/{b2n}"
    assert option(test, "--model-dir") == f"{out}/base2new/train_base/{b2n}"
    assert option(test, "DATASET.SUBSAMPLE_CLASSES") == "new" and "--eval-only" in test
    assert option(test, "--load-epoch") == "1"  # the stand-in's last checkpoint
    assert option(xd, "--output-dir") == f"{out}/imagenet/{trainer}/{xd_cfg}_16shots/seed1"
    assert option(xd_test, "--output-dir") == f"{out}/evaluation/{trainer}/{xd_cfg}_16shots/dtd/seed1"
    assert option(xd_test, "--model-dir") == option(xd, "--output-dir")


def test_dept_dpl_takes_a_given_subnet(tmp_path, stub_env):
    done = launch("dept/base2new_train.sh", ["dpl", "toy", "1"], dict(stub_env, PROMPT_CONFIG="s.json"),
                  cwd=str(tmp_path))
    assert done.returncode == 0, done.stderr
    [train] = calls(stub_env)  # no search
    assert option(train, "TRAINER.TRAINERSUBNET.PROMPT_CONFIG") == str(tmp_path / "s.json")
