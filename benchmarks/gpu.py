"""The GPU benchmark set: one command, one Markdown table with the GPU's name (run by gpu.sh).

Rows (CLIP with ViT-B/16's architecture, random weights; batch 4, N_CTX 6; each measurement in its
own process, through benchmarks/steps.py):
  * search iteration (alpha step + prompt step), fp32 / amp / bf16, 100 and 1000 classes:
    ours (IMPL fused, text cut on) against the release's path (IMPL naive, all 77 positions);
    plus, in fp32, the fused formulation with materialised scores (fused_math) against the
    kernel one (fused, i.e. fused_kernel on CUDA), both with the cut;
  * subnet and CoOp train steps, fp32, 100 and 1000 classes: cut on against off;
  * evaluation throughput (batch 100, 3 batches), CoOp and the subnet, 100 and 1000 classes:
    the cut and the text cache on against both off.
A deadline (``--budget-s``, default 450 s) keeps the whole set under 8 minutes: rows not reached
are listed as skipped.

    python benchmarks/gpu.py --out gpu_results.md
    python benchmarks/gpu.py --device cpu --arch tiny --out /tmp/smoke.md   # checks the script only
"""
import argparse
import json
import os
import subprocess
import sys
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
STEPS = os.path.join(ROOT, "benchmarks", "steps.py")


def parse_args(argv=None):
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--out", default="gpu_results.md", help="the Markdown table is written here")
    p.add_argument("--device", choices=["cuda", "cpu"], default="cuda")
    p.add_argument("--arch", choices=["vit-b16", "tiny"], default="vit-b16")
    p.add_argument("--classes", default="100,1000")
    p.add_argument("--repeats", type=int, default=5)
    p.add_argument("--budget-s", type=float, default=450.0)
    p.add_argument("--child-timeout-s", type=float, default=120.0)
    p.add_argument("--rows", default="", help="comma-separated row numbers of the plan to run (default: all)")
    return p.parse_args(argv)


def plan(classes):
    """[(group, trainer, mode, precision, impl, baseline_impl, classes)]: one row each."""
    rows = []
    for precision in ("fp32", "amp", "bf16"):
        for n in classes:
            rows.append(("search: fused + cut vs naive + no cut (release)", "TrainerSupernet", "train", precision,
                         "fused", "naive", n))
    for n in classes:
        rows.append(("search: fused_math vs fused (kernel), both cut", "TrainerSupernet", "train", "fp32",
                     "fused_math", "fused", n))
    for trainer in ("TrainerSubnet", "CoOp"):
        for n in classes:
            rows.append((f"{trainer} step: cut on vs off", trainer, "train", "fp32", "fused", "naive", n))
    for trainer in ("CoOp", "TrainerSubnet"):
        for n in classes:
            rows.append((f"{trainer} evaluation: cut + text cache on vs off", trainer, "eval", "fp32", "fused", "naive",
                         n))
    return rows


def child(args, row, setting):
    """One steps.py measurement: setting "on" (ours) or "off" (the baseline) of ``row``."""
    group, trainer, mode, precision, impl, baseline, n = row
    if group.startswith("search: fused_math"):
        # both with the cut (steps.py's "on"); only the formulation differs
        run_as, impl = "on", (impl if setting == "on" else baseline)
        baseline = impl
    else:
        run_as = setting
    cmd = [sys.executable, STEPS, "--device", args.device, "--arch", args.arch, "--mode", mode,
           "--precision", precision, "--repeats", str(args.repeats), "--impl", impl, "--baseline-impl", baseline,
           "--json", f"{trainer}:{n}:{run_as}"]
    done = subprocess.run(cmd, capture_output=True, text=True, cwd=ROOT, timeout=args.child_timeout_s)
    if done.returncode != 0:
        return {"error": (done.stderr.strip().splitlines() or ["no output"])[-1][:150]}
    return json.loads(done.stdout.strip().splitlines()[-1])


def cell(result, mode):
    if result is None:
        return "skipped (time)"
    if "error" in result:
        return f"failed: {result['error']}"
    if mode == "train":
        return f"{result['median_s'] * 1000:.1f} ms, {result['peak_bytes'] / 2 ** 20:,.0f} MiB"
    return f"{result['images_per_s']:.0f} img/s"


def ratio(on, off, mode):
    if not on or not off or "error" in on or "error" in off:
        return "-"
    if mode == "train":
        return (f"time {on['median_s'] / off['median_s']:.3f}x, "
                f"memory {on['peak_bytes'] / max(off['peak_bytes'], 1):.3f}x")
    return f"throughput {on['images_per_s'] / off['images_per_s']:.2f}x"


def main(argv=None):
    args = parse_args(argv)
    start = time.time()
    lines = ["| measurement | precision | classes | ours | baseline | ours / baseline |", "|---|---|---|---|---|---|"]
    device_name, torch_version = args.device, ""
    rows = plan([int(c) for c in args.classes.split(",")])
    if args.rows:
        rows = [rows[int(i)] for i in args.rows.split(",")]
    for row in rows:
        results = {}
        for setting in ("on", "off"):
            if time.time() - start > args.budget_s:
                results[setting] = None
                continue
            try:
                results[setting] = child(args, row, setting)
            except subprocess.TimeoutExpired:
                results[setting] = {"error": f"over {args.child_timeout_s:.0f} s"}
            found = results[setting]
            if found and "device" in found:
                device_name = found["device"]
                torch_version = found.get("machine", {}).get("torch", "")
        group, _, mode, precision, _, _, n = row
        lines.append(f"| {group} | {precision} | {n} | {cell(results['on'], mode)} | {cell(results['off'], mode)} "
                     f"| {ratio(results['on'], results['off'], mode)} |")
        print(lines[-1], flush=True)
    header = (f"Device: {device_name}; torch {torch_version}; CLIP ViT-B/16 architecture ({args.arch}), random "
              f"weights; train steps batch 4, N_CTX 6; evaluation batch 100 x 3; median of {args.repeats} after 1 "
              f"warm-up; {time.time() - start:.0f} s in all.")
    text = header + "\n\n" + "\n".join(lines) + "\n"
    tmp = args.out + ".tmp"
    with open(tmp, "w") as f:
        f.write(text)
    os.replace(tmp, args.out)
    print(header)
    print(f"wrote {args.out}")
    return text


if __name__ == "__main__":
    main()
