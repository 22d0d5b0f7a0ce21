import csv
import json
import math
import os

import numpy as np
import pytest

from tools import parse_results
from tools.parse_results import find_runs, summarize, t_critical

T_2DOF = 4.302653  # two-sided 95%, 2 degrees of freedom
T_1DOF = 12.706205


# Logs in the engine's format (a real tiny run's log.txt, shortened): the argument and config
# dumps, the trainer's progress lines, then the evaluator's result block.
def config_dump(trainer="TrainerSubnet", dataset="DescribableTextures", dept=False):
    return ("***************\n** Arguments **\n***************\n"
            f"opts: ['DATASET.NUM_SHOTS', '16']\nseed: 1\ntrainer: {trainer}\n"
            "************\n** Config **\n************\n"
            "DATALOADER:\n  K_TRANSFORMS: 1\nDATASET:\n  IMAGE_FOLDER:\n    CLASSNAMES: []\n"
            f"  NAME: {dataset}\n  NUM_SHOTS: 16\n  SUBSAMPLE_CLASSES: all\nSEED: 1\nTRAINER:\n  CDAC:\n"
            f"    CLASS_LR_MULTI: 10\n  DEPT:\n    ENABLED: {dept}\n    FUSION: logits\n  NAME: {trainer}\n"
            "VERSION: 1\nCollecting env info ...\n** System info **\nPyTorch version: 2.14.1\n\n"
            f"Loading trainer: {trainer}\nLoading dataset: {dataset}\n"
            "Loading evaluator: Classification\n")


def result_lines(accuracy, per_dataset=None):
    text = (f"=> result\n* total: 1,000\n* correct: {round(10 * accuracy):,}\n* accuracy: {accuracy:.1f}%\n"
            f"* error: {100 - accuracy:.1f}%\n* macro_f1: 69.0%\n")
    if per_dataset:  # PerDatasetClassification on a joined dataset
        text += "=> per-dataset result\n"
        for name, value in per_dataset.items():
            text += f"* accuracy on {name}: {value:.1f}% (total: 500, correct: {round(5 * value)})\n"
        text += f"* mean over datasets: {sum(per_dataset.values()) / len(per_dataset):.1f}%\n"
    return text


def progress(epoch, epochs):
    return (f"epoch [{epoch}/{epochs}] batch [1/1] time 0.284 (0.284) data 0.003 (0.003) loss 1.2548 (1.2548) "
            f"acc 25.0000 (25.0000) lr 2.0000e-03 eta 0:00:01\n")


def training_log(accuracy, val_accuracy=None, trainer="TrainerSubnet", dept=False, per_dataset=None):
    text = config_dump(trainer, dept=dept) + "No checkpoint found, train from scratch\n" + progress(1, 2)
    if val_accuracy is not None:  # TEST.FINAL_MODEL=best_val prints validation results while training
        text += "Evaluate on the *val* set\n" + result_lines(val_accuracy)
    text += progress(2, 2) + "Checkpoint saved to output/prompt_learner/model.pth.tar-2\n"
    return (text + "Finish training\nDeploy the last-epoch model\nEvaluate on the *test* set\n"
            + result_lines(accuracy, per_dataset) + "Elapsed: 0:00:02\n")


def unfinished_log():
    return config_dump() + "No checkpoint found, train from scratch\n" + progress(1, 40)


def eval_log(accuracy, trainer="TrainerSubnet", dept=False):
    return (config_dump(trainer, dept=dept) + "Loading weights to prompt_learner from \"output/prompt_learner/"
            "model.pth.tar-2\" (epoch = 2)\nEvaluate on the *test* set\n" + result_lines(accuracy))


def write(root, relative, name, text):
    folder = os.path.join(root, relative)
    os.makedirs(folder, exist_ok=True)
    with open(os.path.join(folder, name), "w") as f:
        f.write(text)


def sample_std(values):
    mean = sum(values) / len(values)
    return math.sqrt(sum((v - mean) ** 2 for v in values) / (len(values) - 1))


@pytest.fixture
def tree(tmp_path):
    root = str(tmp_path / "output")
    run = "fewshot/{}/shots_16/TrainerSubnet/vit_b16/seed{}"
    write(root, run.format("dtd", 1), "log.txt", training_log(70.0, val_accuracy=99.9))
    # seed 2 crashed once, then was resumed: the resumed log (log.txt-<time>) has the result
    write(root, run.format("dtd", 2), "log.txt", unfinished_log())
    write(root, run.format("dtd", 2), "log.txt-2024-05-01-10-00-00", training_log(72.5))
    write(root, run.format("dtd", 3), "log.txt", training_log(68.9))
    write(root, run.format("eurosat", 1), "log.txt", training_log(80.1))
    write(root, run.format("eurosat", 2), "log.txt", training_log(85.3))
    write(root, run.format("eurosat", 3), "log.txt", unfinished_log())
    b2n = "base2new/{}/dtd/shots_16/TrainerSubnet/vit_b16/seed{}"
    for seed, base, new in ((1, 80.0, 60.0), (2, 82.0, 62.0), (3, 81.0, 64.0)):
        write(root, b2n.format("train_base", seed), "log.txt", training_log(base))
        write(root, b2n.format("test_new", seed), "log.txt", eval_log(new))
    return root


def test_t_critical_matches_tables():
    assert t_critical(2) == pytest.approx(T_2DOF, abs=1e-6)
    assert t_critical(1) == pytest.approx(T_1DOF, abs=1e-6)
    # large samples approach the normal quantile 1.959964
    assert 1.96 < t_critical(2000) < 1.962


def test_means_stds_and_intervals_per_group(tree):
    summary = summarize(find_runs(tree))
    groups = {g["dataset"]: g for g in summary["groups"]}
    assert set(groups) == {"dtd", "eurosat"}

    dtd = [70.0, 72.5, 68.9]  # the validation result 99.9 and the crashed log are not used
    assert groups["dtd"]["seeds"] == [1, 2, 3]
    assert groups["dtd"]["mean"] == pytest.approx(sum(dtd) / 3)
    assert groups["dtd"]["std"] == pytest.approx(sample_std(dtd))
    assert groups["dtd"]["ci95"] == pytest.approx(T_2DOF * sample_std(dtd) / math.sqrt(3), rel=1e-6)

    eurosat = [80.1, 85.3]  # seed 3 unfinished: not averaged
    assert groups["eurosat"]["seeds"] == [1, 2]
    assert groups["eurosat"]["mean"] == pytest.approx(82.7)
    assert groups["eurosat"]["ci95"] == pytest.approx(T_1DOF * sample_std(eurosat) / math.sqrt(2), rel=1e-6)

    (average,) = summary["averages"]
    assert average["datasets"] == ["dtd", "eurosat"]
    assert average["mean"] == pytest.approx((sum(dtd) / 3 + 82.7) / 2)


def test_a_run_put_aside_by_overwrite_is_not_tabled(tree):
    """train.py --overwrite renames the old run to <dir>.overwritten-<time>: kept on disk, never a row."""
    aside = "fewshot/dtd/shots_16/TrainerSubnet/vit_b16/seed1.overwritten-20261202T101500Z"
    write(tree, aside, "log.txt", training_log(10.0))
    runs = find_runs(tree)
    assert not [r for r in runs if "overwritten" in r.path]
    dtd = [g for g in summarize(runs)["groups"] if g["dataset"] == "dtd"][0]
    assert 10.0 not in dtd["accuracies"]


def test_unfinished_runs_are_listed(tree):
    summary = summarize(find_runs(tree))
    paths = [u["path"] for u in summary["unfinished"]]
    assert len(paths) == 1 and paths[0].endswith(os.path.join("eurosat", "shots_16", "TrainerSubnet", "vit_b16",
                                                              "seed3"))
    assert "epoch [1/40]" in summary["unfinished"][0]["problem"]


def test_base_to_new_harmonic_mean(tree):
    summary = summarize(find_runs(tree))
    (row,) = summary["base2new"]
    assert (row["protocol"], row["dataset"]) == ("base2new", "dtd")
    assert row["base"]["mean"] == pytest.approx(81.0)
    assert row["new"]["mean"] == pytest.approx(62.0)
    assert row["new"]["ci95"] == pytest.approx(T_2DOF * 2.0 / math.sqrt(3), rel=1e-6)
    assert row["hm"] == pytest.approx(2 * 81.0 * 62.0 / (81.0 + 62.0))
    (average,) = summary["base2new_averages"]
    assert average["hm"] == pytest.approx(row["hm"])


def test_missing_new_half_is_reported(tree):
    os.remove(os.path.join(tree, "base2new/test_new/dtd/shots_16/TrainerSubnet/vit_b16/seed3/log.txt"))
    summary = summarize(find_runs(tree))
    (row,) = summary["base2new"]
    assert row["new_seeds"] == [1, 2]
    assert any("seed 3" in u["problem"] and "test_new" in u["path"] for u in summary["unfinished"])


def test_crash_during_testing_is_not_a_result():
    accuracy, problem = parse_results.result_of_log(unfinished_log() + "Finish training\nTraceback ...\n")
    assert accuracy is None and "no test result" in problem


def test_cli_writes_markdown_csv_json(tree, tmp_path, capsys):
    prefix = str(tmp_path / "tables" / "results")
    assert parse_results.main([tree, "--out", prefix]) == 0
    printed = capsys.readouterr().out
    # values as logged (one decimal): the seeds' accuracies, mean 70.47 shown as 70.5
    assert "| fewshot | TrainerSubnet | vit_b16 | 16 | dtd | 1,2,3 | 70.0 72.5 68.9 | 70.5 | 1.8 | 4.6 |" in printed
    assert "Unfinished" in printed and "seed3" in printed
    with open(prefix + ".csv") as f:
        rows = list(csv.DictReader(f))
    kinds = [r["kind"] for r in rows]
    assert kinds.count("dataset") == 2 and "average" in kinds and "base2new" in kinds
    b2n = next(r for r in rows if r["kind"] == "base2new")
    assert b2n["hm"] == "70.24"  # rounded: 2 x 81 x 62 / 143 = 70.2378
    dtd = next(r for r in rows if r["kind"] == "dataset" and r["dataset"] == "dtd")
    assert (dtd["mean"], dtd["std"], dtd["accuracies"]) == ("70.47", "1.84", "70.0 72.5 68.9")
    with open(prefix + ".json") as f:
        data = json.load(f)
    assert len(data["runs"]) == 12 and len(data["unfinished"]) == 1


def test_protocol_filter(tree, capsys):
    parse_results.main([tree, "--protocol", "base2new"])
    printed = capsys.readouterr().out
    assert "Base-to-new" in printed and "| fewshot |" not in printed


def test_missing_root_says_what_to_pass(tmp_path):
    with pytest.raises(FileNotFoundError, match="output tree"):
        find_runs(str(tmp_path / "nowhere"))


def test_protocol_is_named_by_the_folder_layout_when_the_root_is_the_protocol_folder(tree):
    summary = summarize(find_runs(os.path.join(tree, "fewshot")))  # root = the protocol folder itself
    assert {g["protocol"] for g in summary["groups"]} == {"fewshot"}
    summary = summarize(find_runs(os.path.join(tree, "base2new")))  # root = <protocol>, train_base / test_new below
    (row,) = summary["base2new"]
    assert row["protocol"] == "base2new" and row["hm"] == pytest.approx(2 * 81.0 * 62.0 / 143.0)
    printed = parse_results.to_markdown(summary)
    assert "| . |" not in printed and "| base2new | TrainerSubnet |" in printed


def test_plurals(tree):
    printed = parse_results.to_markdown(summarize(find_runs(tree)))
    assert "**average (2 datasets)**" in printed and "**average (1 dataset)**" in printed
    assert "(1 datasets)" not in printed


def test_runs_outside_the_layout_are_listed_apart(tree, capsys):
    write(tree, "scratch/try_lr", "log.txt", training_log(55.5))
    write(tree, "scratch/old/seed1", "log.txt", unfinished_log())
    runs = find_runs(tree)
    summary = summarize(runs)
    assert len(summary["groups"]) == 2 and not any("scratch" in g["protocol"] for g in summary["groups"])
    outside = {os.path.relpath(u["path"], tree): u for u in summary["outside_layout"]}
    assert set(outside) == {"scratch/try_lr", os.path.join("scratch", "old", "seed1")}
    assert outside["scratch/try_lr"]["accuracy"] == 55.5
    assert "not finished" in outside[os.path.join("scratch", "old", "seed1")]["problem"]
    assert not any("scratch" in u["path"] for u in summary["unfinished"])
    printed = parse_results.to_markdown(summary)
    section = printed[printed.index("## Runs outside the layout"):]
    assert "scratch/try_lr`: accuracy 55.5" in section and "scratch/old/seed1" in section


def test_per_dataset_accuracies_of_a_joined_dataset(tmp_path):
    root = str(tmp_path / "output")
    run = "multitask/caltech101,dtd/shots_4/TrainerSupernet/search/seed{}"
    for seed, (caltech, dtd) in enumerate(((90.0, 50.0), (92.0, 54.0)), start=1):
        write(root, run.format(seed), "log.txt",
              training_log(75.0 + seed, val_accuracy=99.0, per_dataset={"Caltech101": caltech, "DescribableTextures": dtd}))
    (run_1, run_2) = find_runs(root)
    assert run_1.per_dataset == {"Caltech101": 90.0, "DescribableTextures": 50.0}
    summary = summarize([run_1, run_2])
    members = {g["member"]: g for g in summary["per_dataset"]}
    assert set(members) == {"Caltech101", "DescribableTextures"}
    assert members["Caltech101"]["accuracies"] == [90.0, 92.0] and members["Caltech101"]["mean"] == pytest.approx(91.0)
    assert members["DescribableTextures"]["dataset"] == "caltech101,dtd"
    assert summary["groups"][0]["accuracies"] == [76.0, 77.0]  # the overall accuracy stays the run's result
    printed = parse_results.to_markdown(summary)
    assert "| multitask | TrainerSupernet | search | 4 | caltech101,dtd | Caltech101 | 1,2 | 90.0 92.0 | 91.0 |" in printed
    # the per-dataset lines of a validation result during training are not the run's
    assert parse_results.per_dataset_of_result(parse_results.final_result_of_log(
        training_log(70.0, per_dataset=None))[0]) == {}


def test_logged_config_value_reads_the_engine_config_dump():
    text = config_dump("CoOp", dataset="OxfordPets", dept=True)
    assert parse_results.logged_config_value(text, "TRAINER.DEPT.ENABLED") == "True"
    assert parse_results.logged_config_value(text, "DATASET.NAME") == "OxfordPets"
    assert parse_results.logged_config_value(text, "TRAINER.NAME") == "CoOp"
    assert parse_results.logged_config_value(text, "TRAINER.DEPT.MISSING") is None
    assert parse_results.logged_config_value("Loading trainer: CoOp\n", "TRAINER.DEPT.ENABLED") is None


def test_real_engine_log_of_a_tiny_run():
    """The log of a real two-epoch CoOp run on the toy dataset, cut to the lines read here."""
    tail = ("Loading evaluator: Classification\nNo checkpoint found, train from scratch\n" + progress(1, 2)
            + progress(2, 2) + "Checkpoint saved to /tmp/out/prompt_learner/model.pth.tar-2\nFinish training\n"
            "Deploy the last-epoch model\nEvaluate on the *test* set\n=> result\n* total: 28\n* correct: 1\n"
            "* accuracy: 3.6%\n* error: 96.4%\n* macro_f1: 1.7%\n"
            "Predictions saved to /tmp/out/predictions_test.npz\nElapsed: 0:00:02\n")
    assert parse_results.result_of_log(config_dump("CoOp", "Toy") + tail) == (3.6, None)


def b2n_pair(root, trainer, config, dataset, seeds_base_new, shots=16, settings=None, dept_logged=False):
    """train_base + test_new runs of one (trainer, config, dataset); settings: a run_settings.json config."""
    for seed, (base, new) in seeds_base_new.items():
        for stage, text in (("train_base", training_log(base, trainer=trainer, dept=dept_logged)),
                            ("test_new", eval_log(new, trainer=trainer, dept=dept_logged))):
            relative = f"base2new/{stage}/{dataset}/shots_{shots}/{trainer}/{config}/seed{seed}"
            write(root, relative, "log.txt", text)
            if settings is not None:
                write(root, relative, "run_settings.json", json.dumps({"config": settings}))


def test_dept_table_side_by_side_with_its_base_methods(tmp_path):
    root = str(tmp_path / "output")
    # the release's trainer over CoOp, same config name as the CoOp run
    b2n_pair(root, "CoOp", "vit_b16", "dtd", {1: (80.0, 60.0), 2: (82.0, 62.0)})
    b2n_pair(root, "ExtrasLinearProbeCoOp", "vit_b16", "dtd", {1: (84.0, 61.0), 2: (86.0, 63.0)})
    b2n_pair(root, "CoOp", "vit_b16", "eurosat", {1: (90.0, 70.0)})
    b2n_pair(root, "ExtrasLinearProbeCoOp", "vit_b16", "eurosat", {1: (93.0, 69.0)})
    # TRAINER.DEPT.ENABLED over KgCoOp: config folder <base config>_dept (the log's config dump says so)
    b2n_pair(root, "KgCoOp", "vit_b16_ep10", "dtd", {1: (81.0, 66.0)})
    b2n_pair(root, "KgCoOp", "vit_b16_ep10_dept", "dtd", {1: (83.0, 66.5)}, dept_logged=True)
    # MaPLe with DePT known only from run_settings.json (config name gives no hint): its only other config
    b2n_pair(root, "MaPLe", "vit_b16_c2", "dtd", {1: (82.5, 70.0)})
    b2n_pair(root, "MaPLe", "mine", "dtd", {1: (85.5, 70.5)}, settings={"TRAINER": {"DEPT": {"ENABLED": True}}})
    # CoCoOp with DePT but no CoCoOp run to compare with
    b2n_pair(root, "ExtrasLinearProbeCoCoOp", "vit_b16_c4", "dtd", {1: (83.0, 71.0)})
    summary = summarize(find_runs(root))

    rows = {(r["base_method"], r["dataset"]): r for r in summary["dept"]}
    assert set(rows) == {("CoOp", "dtd"), ("CoOp", "eurosat"), ("KgCoOp", "dtd"), ("MaPLe", "dtd"), ("CoCoOp", "dtd")}
    coop = rows[("CoOp", "dtd")]
    assert (coop["trainer"], coop["baseline_config"]) == ("ExtrasLinearProbeCoOp", "vit_b16")
    assert coop["without_dept"]["base"] == pytest.approx(81.0) and coop["with_dept"]["base"] == pytest.approx(85.0)
    assert coop["delta"]["new"] == pytest.approx(1.0)
    assert coop["delta"]["hm"] == pytest.approx(harmonic(85, 62) - harmonic(81, 61))
    kg = rows[("KgCoOp", "dtd")]
    assert (kg["config"], kg["baseline_config"]) == ("vit_b16_ep10_dept", "vit_b16_ep10")
    assert kg["delta"]["base"] == pytest.approx(2.0)
    assert rows[("MaPLe", "dtd")]["baseline_config"] == "vit_b16_c2"
    assert rows[("CoCoOp", "dtd")]["without_dept"] is None and "no finished" in rows[("CoCoOp", "dtd")]["problem"]
    # DePT runs are not baselines of anything, and the DePT flag reaches the base-to-new rows
    assert {r["config"] for r in summary["base2new"] if r["dept"]} == {"vit_b16", "vit_b16_ep10_dept", "mine",
                                                                     "vit_b16_c4"}

    averages = {a["base_method"]: a for a in summary["dept_averages"]}
    coop_average = averages["CoOp"]
    assert coop_average["datasets"] == ["dtd", "eurosat"]
    assert coop_average["without_dept"]["base"] == pytest.approx((81.0 + 90.0) / 2)
    assert coop_average["with_dept"]["new"] == pytest.approx((62.0 + 69.0) / 2)
    assert coop_average["with_dept"]["hm"] == pytest.approx(harmonic(89.0, 65.5))
    assert coop_average["delta"]["hm"] == pytest.approx(harmonic(89.0, 65.5) - harmonic(85.5, 65.5))
    assert averages["CoCoOp"]["datasets"] == [] and averages["CoCoOp"]["without_baseline"] == ["dtd"]

    printed = parse_results.to_markdown(summary)
    assert ("| base2new | CoOp | ExtrasLinearProbeCoOp/vit_b16 | CoOp/vit_b16 | 16 | dtd | 81.0 | 61.0 | 69.6 "
            "| 85.0 | 62.0 | 71.7 | +4.0 | +1.0 | +2.1 |") in printed
    assert "| 16 | **average (2 datasets)** | 85.5 | 65.5 | 74.2 | 89.0 | 65.5 | 75.5 | +3.5 | +0.0 | +1.3 |" in printed
    assert "Without a run to compare with" in printed and "average (0 datasets)" not in printed
    # DePT known from the log's config dump alone
    assert parse_results.dept_of_run(root, "CoOp", "ctx4", training_log(70.0, trainer="CoOp", dept=True)) == (
        True, "CoOp")
    assert parse_results.dept_of_run(root, "CoOp", "ctx4", training_log(70.0, trainer="CoOp")) == (False, "")


def harmonic(base, new):
    return 2 * base * new / (base + new)


def test_dept_baseline_is_ambiguous_without_the_naming_convention(tmp_path):
    root = str(tmp_path / "output")
    b2n_pair(root, "CoOp", "ctx4", "dtd", {1: (80.0, 60.0)})
    b2n_pair(root, "CoOp", "ctx16", "dtd", {1: (81.0, 61.0)})
    b2n_pair(root, "ExtrasLinearProbeCoOp", "vit_b16", "dtd", {1: (84.0, 61.0)})
    (row,) = summarize(find_runs(root))["dept"]
    assert row["without_dept"] is None and "several configs (ctx16, ctx4)" in row["problem"]
    # a recorded config that says DePT is off wins over the folder name
    b2n_pair(root, "CoOp", "ctx4_dept", "dtd", {1: (80.0, 60.0)}, settings={"TRAINER": {"DEPT": {"ENABLED": False}}})
    assert {r["config"] for r in summarize(find_runs(root))["dept"]} == {"vit_b16"}


def test_linear_probe_runs_sit_next_to_the_prompt_learners(tmp_path):
    root = str(tmp_path / "output")
    for seed, (coop, probe) in enumerate(((70.0, 60.0), (72.0, 62.0)), start=1):
        write(root, f"fewshot/dtd/shots_16/CoOp/vit_b16/seed{seed}", "log.txt", training_log(coop, trainer="CoOp"))
        write(root, f"fewshot/dtd/shots_16/LinearProbe/vit_b16/seed{seed}", "log.txt",
              training_log(probe, trainer="LinearProbe"))
    # a probe that fits in closed form logs no epochs: its log reads as an evaluation
    write(root, "fewshot/dtd/shots_16/LinearProbe/vit_b16/seed3", "log.txt", eval_log(64.0, trainer="LinearProbe"))
    summary = summarize(find_runs(root))
    groups = {g["trainer"]: g for g in summary["groups"]}
    assert set(groups) == {"CoOp", "LinearProbe"} and not summary["unfinished"] and not summary["dept"]
    assert groups["LinearProbe"]["accuracies"] == [60.0, 62.0, 64.0]
    printed = parse_results.to_markdown(summary)
    assert "| fewshot | LinearProbe | vit_b16 | 16 | dtd | 1,2,3 | 60.0 62.0 64.0 | 62.0 |" in printed
    assert printed.index("| fewshot | CoOp |") < printed.index("| fewshot | LinearProbe |")  # one table


# Target folders as our configs could name them; every one maps to its ELEVATER name.
MVLPT_FOLDERS = {"cifar-10": "CIFAR10", "cifar-100": "cifar100", "country211": "Country211", "fer-2013": "FER2013",
                 "gtsrb": "GTSRB", "hateful-memes": "HatefulMemes", "kitti-distance": "KITTI_Distance",
                 "mnist": "MNIST", "patch-camelyon": "PatchCamelyon", "rendered-sst2": "RenderedSST2",
                 "resisc45_clip": "RESISC45", "voc-2007-classification": "VOC2007"}


def test_elevater_names_map_by_lower_case_name_without_punctuation():
    assert set(parse_results.ELEVATER_TARGETS) == set(MVLPT_FOLDERS)
    for target, folder in MVLPT_FOLDERS.items():
        assert parse_results.elevater_target(folder) == target
    assert parse_results.elevater_target("resisc45_clip") == "resisc45_clip"
    assert parse_results.elevater_target("pcam") == "patch-camelyon"
    assert parse_results.elevater_target("dtd") is None and parse_results.elevater_target("cifar1000") is None


def test_mvlpt_per_target_table_with_the_12_target_average(tmp_path):
    root = str(tmp_path / "output")
    accuracy = {target: 40.0 + 2 * i for i, target in enumerate(MVLPT_FOLDERS)}
    for target, folder in MVLPT_FOLDERS.items():
        for shots in (1, 5):
            if shots == 5 and target in ("mnist", "gtsrb"):
                continue  # two targets without 5-shot runs: that average is incomplete
            for seed in (1, 2):
                write(root, f"mvlpt/target/{folder}/shots_{shots}/MVLPT/mcoop/seed{seed}", "log.txt",
                      training_log(accuracy[target] + shots + seed - 1.5, trainer="MVLPT"))
    write(root, "mvlpt/target/dtd/shots_1/MVLPT/mcoop/seed1", "log.txt", training_log(50.0, trainer="MVLPT"))
    summary = summarize(find_runs(root))

    rows = {(r["target"], r["shots"]): r for r in summary["mvlpt_targets"]}
    assert rows[("cifar-10", "1")]["dataset"] == "CIFAR10" and rows[("cifar-10", "1")]["mean"] == pytest.approx(41.0)
    assert rows[(None, "1")]["dataset"] == "dtd"  # a target outside the 12: shown, not averaged
    averages = {a["shots"]: a for a in summary["mvlpt_averages"]}
    assert averages["1"]["complete"] and averages["1"]["missing"] == []
    assert averages["1"]["mean"] == pytest.approx(sum(accuracy.values()) / 12 + 1)
    assert not averages["5"]["complete"] and averages["5"]["missing"] == ["gtsrb", "mnist"]
    assert averages["5"]["mean"] == pytest.approx(
        sum(v for t, v in accuracy.items() if t not in ("mnist", "gtsrb")) / 10 + 5)
    assert "20" not in averages

    printed = parse_results.to_markdown(summary)
    table = printed[printed.index("## MVLPT"):]
    assert "| target | folder | 1 shot | 5 shots | 20 shots |" in table
    assert "| cifar-10 | CIFAR10 | 41.0 ± 6.4 | 45.0 ± 6.4 | – |" in table
    assert "| mnist | MNIST | 55.0 ± 6.4 | – | – |" in table
    assert "| dtd (not one of the 12) | dtd | 50.0 | – | – |" in table
    assert (f"| **average (12 targets)** | | **{sum(accuracy.values()) / 12 + 1:.1f}** | "
            f"**{averages['5']['mean']:.1f}** (incomplete: 10/12) | – |") in table
    assert "- 5 shots: missing gtsrb, mnist" in table


def test_mvlpt_csv_rows(tmp_path):
    root = str(tmp_path / "output")
    write(root, "mvlpt/target/MNIST/shots_20/MVLPT/mvpt/seed1", "log.txt", training_log(91.25, trainer="MVLPT"))
    rows = parse_results.to_csv_rows(summarize(find_runs(root)))
    target = next(r for r in rows if r["kind"] == "mvlpt_target")
    average = next(r for r in rows if r["kind"] == "mvlpt_average")
    assert (target["target"], target["dataset"], target["shots"]) == ("mnist", "MNIST", "20")
    assert average["complete"] is False and average["missing"].split()[0] == "cifar-10" and average["n"] == 1


# ---------------------------------------------------------------------------- predictions files
# 7 samples, 4 classes ("fish" never a true label, predicted once). By hand:
#   correct: samples 0, 1, 3, 5 -> 4/7 = 57.142857%
#   confusion (row = true, column = predicted): cat [2 1 0 0], dog [1 1 0 0], bird [0 0 1 1], fish [0 0 0 0]
#   per class: cat 2/3, dog 1/2, bird 1/2 -> mean 55.555556% (fish has no sample: not listed)
#   F1 = 2TP / (2TP + FP + FN): cat 4/6, dog 2/4, bird 2/3 -> macro 61.111111%
CLASSNAMES = ["cat", "dog", "bird", "fish"]
LABELS = [0, 0, 0, 1, 1, 2, 2]
PREDICTED = [0, 0, 1, 1, 0, 2, 3]


def write_predictions(path):
    from dassl.evaluation.predictions import save_predictions

    logits = np.full((7, 4), -1.0, dtype=np.float32)
    logits[np.arange(7), PREDICTED] = 2.0
    logits[1, 3] = 2.0  # a tie: the first maximum wins, as in torch's max
    save_predictions(str(path), logits, LABELS, [f"img{i}.png" for i in range(7)], CLASSNAMES)
    return str(path)


def test_prediction_report_by_hand(tmp_path):
    report = parse_results.prediction_report(parse_results.load_predictions(write_predictions(tmp_path / "p.npz")))
    assert (report["total"], report["correct"], report["num_classes"]) == (7, 4, 4)
    assert report["accuracy"] == pytest.approx(400 / 7) and report["error_rate"] == pytest.approx(300 / 7)
    assert report["confusion_matrix"] == [[2, 1, 0, 0], [1, 1, 0, 0], [0, 0, 1, 1], [0, 0, 0, 0]]
    assert [(c["classname"], c["total"], c["correct"]) for c in report["per_class"]] == [
        ("cat", 3, 2), ("dog", 2, 1), ("bird", 2, 1)]
    assert report["perclass_accuracy"] == pytest.approx(100 * (2 / 3 + 1 / 2 + 1 / 2) / 3)
    assert report["macro_f1"] == pytest.approx(100 * (4 / 6 + 2 / 4 + 2 / 3) / 3)


def test_prediction_report_matches_the_engine_evaluator(tmp_path):
    import torch

    from dassl.config import get_cfg_default
    from dassl.evaluation import Classification

    path = write_predictions(tmp_path / "p.npz")
    saved = np.load(path)
    cfg = get_cfg_default()
    cfg.TEST.PER_CLASS_RESULT = True
    evaluator = Classification(cfg, lab2cname=dict(enumerate(CLASSNAMES)))
    evaluator.process(torch.from_numpy(saved["logits"]), torch.from_numpy(saved["labels"]))
    results = evaluator.evaluate()
    report = parse_results.prediction_report(parse_results.load_predictions(path))
    for key in ("accuracy", "error_rate", "macro_f1", "perclass_accuracy"):
        assert report[key] == pytest.approx(results[key]), key


def test_predictions_cli_prints_and_writes_the_report(tmp_path, capsys):
    first = write_predictions(tmp_path / "run1" / "predictions_test.npz")
    second = write_predictions(tmp_path / "run2" / "predictions_test.npz")
    prefix = str(tmp_path / "report" / "preds")
    assert parse_results.main(["--predictions", first, second, "--out", prefix]) == 0
    printed = capsys.readouterr().out
    assert f"## Predictions: `{first}`" in printed and f"## Predictions: `{second}`" in printed
    assert "| 7 | 4 | 4 | 57.14 | 42.86 | 61.11 | 55.56 |" in printed
    assert "| 0 | cat | 3 | 2 | 66.67 |" in printed and "| 2 | bird | 2 | 1 | 50.00 |" in printed
    assert "| 0 cat | 2 | 1 | 0 | 0 |" in printed and "| 3 fish | 0 | 0 | 0 | 0 |" in printed
    with open(prefix + "_confusion_2.csv") as f:
        rows = list(csv.reader(f))
    assert rows[0] == ["true_label", "true_class", "cat", "dog", "bird", "fish"]
    assert rows[3] == ["2", "bird", "0", "0", "1", "1"]
    with open(prefix + ".json") as f:
        data = json.load(f)
    assert [r["path"] for r in data] == [first, second] and data[0]["confusion_csv"] == prefix + "_confusion_1.csv"
    assert open(prefix + ".md").read().startswith(f"## Predictions: `{first}`")

    assert parse_results.main(["--predictions", first, "--max-cmat-classes", "3"]) == 0
    assert "Confusion matrix: 4 x 4, not printed" in capsys.readouterr().out


def test_predictions_cli_refuses_other_files_saying_why(tmp_path, capsys):
    log = tmp_path / "log.txt"
    log.write_text(result_lines(70.0))
    assert parse_results.main(["--predictions", str(log)]) == 2
    error = capsys.readouterr().err
    assert f"{log} is not a predictions file" in error and "TEST.SAVE_PREDICTIONS True" in error
    with pytest.raises(SystemExit):
        parse_results.main([])  # neither an output tree nor --predictions
    with pytest.raises(SystemExit):
        parse_results.main([str(tmp_path), "--predictions", str(log)])


def test_the_releases_few_shot_and_cross_dataset_layouts_are_read():
    from tools.parse_results import describe_run_path

    root = "/out"
    few = describe_run_path(root, "/out/oxford_pets/PromptSRC/vit_b16_c2_ep50_batch4_4+4ctx_few_shot_4shots/seed2")
    assert few == dict(protocol="out", dataset="oxford_pets", shots="4", trainer="PromptSRC",
                       config="vit_b16_c2_ep50_batch4_4+4ctx_few_shot", seed=2)
    source = describe_run_path(root, "/out/imagenet/MaPLe/vit_b16_c2_ep5_batch4_2ctx_cross_datasets_16shots/seed1")
    assert (source["dataset"], source["trainer"], source["shots"]) == ("imagenet", "MaPLe", "16")
    target = describe_run_path(root, "/out/evaluation/MaPLe/vit_b16_c2_ep5_batch4_2ctx_cross_datasets_16shots/"
                                     "imagenetv2/seed3")
    assert target == dict(protocol="evaluation", dataset="imagenetv2", shots="16", trainer="MaPLe",
                          config="vit_b16_c2_ep5_batch4_2ctx_cross_datasets", seed=3)
    base = describe_run_path(root, "/out/base2new/train_base/dtd/shots_16/IVLP/vit_b16_c2_ep5_batch4_2+2ctx/seed1")
    assert (base["protocol"], base["dataset"], base["shots"], base["trainer"]) == ("base2new/train_base", "dtd", "16",
                                                                                   "IVLP")


def test_the_launchers_elevater_folders_are_the_twelve_targets():
    """scripts/mvlpt/target.sh names a target's folder after its YAML stem (elevater_cifar10)."""
    from tools.parse_results import ELEVATER_TARGETS, elevater_target

    stems = [f[:-len(".yaml")] for f in os.listdir(os.path.join(os.path.dirname(parse_results.__file__), "..",
                                                                  "configs", "datasets")) if f.startswith("elevater_")]
    found = {elevater_target(stem) for stem in stems} - {None}
    assert found == set(ELEVATER_TARGETS)
    assert elevater_target("elevater_oxford_pets") is None and elevater_target("oxford_pets") is None
