"""The whole DPL pipeline in one command: zero-shot CLIP, search, subnet training, comparison.

Default (no network, no GPU, a few minutes on 2 CPU cores): the generated ``Toy`` dataset and a
small random-weight CLIP written once into ``.cache/demo/``; short runs. ``--real`` runs the same
pipeline with the release's configs on a real dataset and real CLIP weights:

    bash scripts/demo.sh
    bash scripts/demo.sh --real --dataset caltech101 --root /data --backbone ViT-B/16
    bash scripts/demo.sh --real --dataset caltech101 --root /data --weights ~/ViT-B-16.pt --shots 16

Every run is a plain ``python train.py ...`` command, printed before it starts. Each setting
(dataset, shots, seed, backbone) has its own folder, ``<output>/<dataset>/shots_<N>/seed<S>/<backbone>/``;
train.py skips a stage it has finished with the same settings (``--overwrite`` runs them again).
"""
import argparse
import json
import os
import re
import subprocess
import sys

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)

# Short runs sized for the tiny CLIP on Toy (32x32 images).
TOY_SEARCH_OPTS = [
    "INPUT.SIZE", "(32, 32)", "DATALOADER.NUM_WORKERS", "0", "OPTIM.MAX_EPOCH", "3",
    "TRAINER.TRAINERSUPERNET.N_CTX_VISION", "4", "TRAINER.TRAINERSUPERNET.N_CTX_TEXT", "4",
    "TRAINER.TRAINERSUPERNET.ALPHA_LR", "0.05", "TRAINER.TRAINERSUPERNET.VAL_BATCH_SIZE", "8",
    "TRAIN.PRINT_FREQ", "4",
]
TOY_TRAIN_OPTS = [
    "INPUT.SIZE", "(32, 32)", "DATALOADER.NUM_WORKERS", "0", "OPTIM.MAX_EPOCH", "10",
    "OPTIM.NAME", "adam", "OPTIM.LR", "0.003", "TRAINER.TRAINERSUBNET.CTX_INIT", "default",
    "TRAIN.PRINT_FREQ", "4",
]
TOY_ZS_OPTS = ["INPUT.SIZE", "(32, 32)", "DATALOADER.NUM_WORKERS", "0", "TRAINER.ZSCLIP.PREC", "fp32"]


def parse_args(argv=None):
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--real", action="store_true", help="real dataset and CLIP weights, the release's configs")
    p.add_argument("--dataset", default=os.environ.get("DEMO_DATASET", "toy"),
                   help="a configs/datasets stem, a registered name or a dataset YAML (default: toy)")
    p.add_argument("--root", default=os.environ.get("DATA", ""), help="dataset root (default: $DATA, or the cache)")
    p.add_argument("--backbone", default=os.environ.get("DEMO_BACKBONE", "ViT-B/16"), help="official CLIP name")
    p.add_argument("--weights", default=os.environ.get("CLIP_WEIGHTS", ""), help="local CLIP file (offline)")
    p.add_argument("--shots", type=int, default=int(os.environ.get("DEMO_SHOTS", 8)))
    p.add_argument("--seed", type=int, default=1)
    p.add_argument("--output", default=os.path.join(ROOT, "output", "demo"),
                   help="root of the outputs; each setting gets <dataset>/shots_<N>/seed<S>/<backbone>/ below it")
    p.add_argument("--overwrite", action="store_true", default=os.environ.get("OVERWRITE", "") == "1",
                   help="run every stage again (train.py --overwrite; also OVERWRITE=1)")
    p.add_argument("--cache", default=os.path.join(ROOT, ".cache", "demo"))
    return p.parse_args(argv)


def run(argv, log_hint):
    command = [sys.executable, os.path.join(ROOT, "train.py")] + [str(a) for a in argv]
    print("\n$ " + " ".join(command), flush=True)
    done = subprocess.run(command, cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    if done.returncode != 0:
        print(done.stdout[-4000:])
        sys.exit(f"demo: this step failed (exit {done.returncode}); its log is in {log_hint}")
    return done.stdout


def last_accuracy(directory):
    """The final test accuracy of the run in ``directory`` (its log.txt: a skipped, finished run
    prints nothing, so the log it wrote is read, not the command's output)."""
    try:
        with open(os.path.join(directory, "log.txt")) as f:
            values = re.findall(r"^\* accuracy: ([0-9.]+)%", f.read(), flags=re.M)
    except OSError:
        values = []
    return float(values[-1]) if values else float("nan")


def backbone_tag(args, weights):
    """The folder name of the backbone: the weights file's name, else the official model's name."""
    if weights:
        return os.path.splitext(os.path.basename(weights))[0]
    return args.backbone.replace("/", "-")


def main(argv=None):
    args = parse_args(argv)
    os.makedirs(args.cache, exist_ok=True)
    root = args.root or os.path.join(args.cache, "data")
    if args.real:
        if args.dataset.lower() == "toy":
            sys.exit("demo: --real needs --dataset (a configs/datasets stem, a registered name or a dataset YAML) "
                     "and --root (or $DATA)")
        weights = args.weights
        backbone = ["MODEL.BACKBONE.NAME", args.backbone] + (["MODEL.BACKBONE.PATH", weights] if weights else [])
        search_opts, train_opts, zs_opts = [], [], ["TRAINER.ZSCLIP.PREC", "fp32"]
    else:
        from clip.tiny import save_tiny_clip

        weights = args.weights or os.path.join(args.cache, "tiny_clip_vit.pt")
        if not os.path.isfile(weights):
            print(f"Writing a small random-weight CLIP to {weights} (once)")
            save_tiny_clip(weights, "ViT", seed=0)
        backbone = ["MODEL.BACKBONE.PATH", weights]
        search_opts, train_opts, zs_opts = TOY_SEARCH_OPTS, TOY_TRAIN_OPTS, TOY_ZS_OPTS

    sys.path.insert(0, os.path.join(ROOT, "scripts", "lib"))
    from launch import LaunchError, resolve_dataset

    try:
        dataset_tag, dataset_yaml, dataset_opts = resolve_dataset(args.dataset)
    except LaunchError as error:
        sys.exit(f"demo: {error}; see docs/DATASETS.md")
    common = ["--root", root, "--seed", args.seed, "--dataset-config-file", dataset_yaml]
    common += ["--overwrite"] if args.overwrite else []
    shots = ["DATASET.NUM_SHOTS", args.shots] + dataset_opts
    setting = os.path.join(args.output, dataset_tag, f"shots_{args.shots}", f"seed{args.seed}",
                           backbone_tag(args, weights))
    out = {k: os.path.join(setting, k) for k in ("zeroshot", "search", "train")}

    print("== 1/3 zero-shot CLIP ==")
    run(common + ["--trainer", "ZeroshotCLIP", "--output-dir", out["zeroshot"], "--eval-only",
                  "--config-file", os.path.join(ROOT, "configs", "trainers", "CoOp", "vit_b16.yaml")]
        + shots + backbone + zs_opts, out["zeroshot"])
    zero_shot = last_accuracy(out["zeroshot"])

    print("== 2/3 search (TrainerSupernet) ==")
    run(common + ["--trainer", "TrainerSupernet", "--output-dir", out["search"],
                  "--config-file", os.path.join(ROOT, "configs", "trainers", "TrainerSupernet", "fewshot.yaml")]
        + shots + backbone + search_opts, out["search"])
    config_path = os.path.join(out["search"], "searched_config.json")
    with open(config_path) as f:
        config = json.load(f)
    print(f"Searched configuration (epoch {config['epoch']}), prompt tokens per block:")
    for branch in ("image", "text"):
        print(f"  {branch:5s}: {config[branch]['prompt_lengths']}  confidence "
              f"{[round(c, 2) for c in config[branch]['confidence']]}")

    print("== 3/3 train the searched subnet (TrainerSubnet) ==")
    run(common + ["--trainer", "TrainerSubnet", "--output-dir", out["train"],
                  "--config-file", os.path.join(ROOT, "configs", "trainers", "TrainerSubnet", "fewshot.yaml")]
        + shots + backbone + train_opts + ["TRAINER.TRAINERSUBNET.PROMPT_CONFIG", config_path], out["train"])
    accuracy = last_accuracy(out["train"])

    print("\n== result ==")
    print(f"dataset {args.dataset}, {args.shots} shots, seed {args.seed}"
          f"{'' if args.real else ' (Toy with a random-weight CLIP: a smoke run, not a benchmark)'}")
    print(f"  zero-shot CLIP accuracy: {zero_shot:.1f}%")
    print(f"  DPL (searched subnet):   {accuracy:.1f}%")
    print(f"outputs: {setting}")
    print(f"  alpha files, searched_config.json, heat-maps: {out['search']}")
    print(f"  trained prompts and log: {out['train']}")
    return zero_shot, accuracy


if __name__ == "__main__":
    main()
