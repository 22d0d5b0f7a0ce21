"""Smoke tests: each benchmark script runs with tiny settings and prints what it should.

No timing is asserted (these machines are shared); the memory meter's reset is checked because
the CPU figures in docs/benchmarks.md depend on it.
"""
import json
import os
import re
import subprocess
import sys

import numpy as np
import pytest
import torch

from benchmarks import search_step, text_memory, throughput
from benchmarks.machine import PeakMemory, describe_machine

REPO_ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
MiB = 2**20


def run_script(name, *args, timeout=600):
    done = subprocess.run([sys.executable, os.path.join(REPO_ROOT, "benchmarks", name), *map(str, args)],
                          capture_output=True, text=True, timeout=timeout, cwd=REPO_ROOT)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    return done.stdout


def test_peak_memory_ignores_a_larger_transient_before_start():
    transient = np.ones(300 * MiB // 8)  # touched pages: raises the RSS high-water mark
    del transient
    meter = PeakMemory(torch.device("cpu"))
    meter.start()
    kept = np.ones(60 * MiB // 8)
    peak = meter.peak_bytes()
    assert 50 * MiB < peak < 200 * MiB, (peak / MiB, meter.method)
    # A peak, not the current size: freeing the array (returned to the system: it is mmap-sized) keeps it.
    del kept
    assert meter.peak_bytes() >= peak - MiB, (meter.peak_bytes() / MiB, peak / MiB, meter.method)


def test_describe_machine_has_the_fields_the_doc_records():
    info = describe_machine("cpu")
    assert set(info) >= {"cpu", "logical_cpus", "torch_threads", "torch", "load_average"}
    assert info["torch"] == torch.__version__ and len(info["load_average"]) == 3


def test_search_step_child_arguments_drop_every_form_of_impl_and_json():
    argv = ["--impl=both", "--classes", "3", "--impl", "both", "--json", "--n-ctx", "2"]
    assert search_step.child_args(argv) == ["--classes", "3", "--n-ctx", "2"]


@pytest.mark.slow
def test_search_step_tiny_runs_both_implementations_and_prints_the_ratio():
    out = run_script("search_step.py", "--arch", "tiny", "--classes", 3, "--batch", 1, "--n-ctx", 2,
                     "--repeats", 1, "--warmup", 0)
    for impl in ("naive", "fused"):
        line = re.search(rf"^\s*{impl}: +([0-9.]+) ms/iteration \(median of 1\), +(-?[0-9.]+) MiB", out, re.M)
        assert line, out
        assert float(line.group(1)) > 0
    assert re.search(r"fused/naive: time [0-9.]+x, peak memory -?[0-9.]+x", out), out
    assert json.loads(out.split("machine: ", 1)[1].splitlines()[0])["logical_cpus"] >= 1


def test_throughput_parses_the_per_batch_lines_after_the_first_epoch():
    log = "\n".join(
        f"epoch [{e}/3] batch [{b}/2] time {t:.3f} (0.000) data 0.001 (0.001) loss 1.0 lr 1e-3 eta 0:00:01"
        for e, b, t in [(1, 1, 9.0), (1, 2, 9.0), (2, 1, 0.5), (2, 2, 0.5), (3, 1, 1.0), (3, 2, 1.0)]
    )
    r = throughput.parse_log(log, k=2, batch=4, val_batch=4)
    assert r["batches"] == 4
    assert r["train_images_per_s"] == pytest.approx(4 * 2 * 4 / 3.0)
    assert r["all_images_per_s"] == pytest.approx(4 * 2 * 8 / 3.0)
    with pytest.raises(ValueError, match="epochs >= 2"):
        throughput.parse_log(log.split("\n")[0], k=1, batch=4, val_batch=0)


@pytest.mark.slow
def test_throughput_tiny_runs_both_stages_through_torchrun(tmp_path):
    out = run_script("throughput.py", "--nproc", "1", "--epochs", 2, "--classes", 2, "--shots", 2, "--batch", 2,
                     "--val-batch", 2, "--n-ctx", 2, "--image-size", 32, "--patch", 16, "--vision-width", 64,
                     "--vision-layers", 1, "--text-width", 64, "--text-layers", 1,
                     "--work-dir", tmp_path / "work", "--json-out", tmp_path / "r.json")
    rows = re.findall(r"^(search|train)\s+1\s+\d+\s+(\d+)\s+[0-9.]+\s+([0-9.]+)\s+([0-9.]+)", out, re.M)
    assert [r[0] for r in rows] == ["search", "train"], out
    assert all(int(r[1]) >= 1 and float(r[2]) > 0 for r in rows)
    saved = json.loads((tmp_path / "r.json").read_text())
    assert [r["stage"] for r in saved["results"]] == ["search", "train"]
    assert (tmp_path / "work" / "search_k1" / "log.txt").is_file()


@pytest.mark.slow
def test_text_memory_tiny_measures_and_skips_what_would_not_fit(tmp_path):
    out = run_script("text_memory.py", "--classes", "4,8", "--chunks", "0,4", "--n-ctx", 2, "--text-layers", 1,
                     "--max-gb", 1e-9, "--json-out", tmp_path / "r.json")
    results = json.loads((tmp_path / "r.json").read_text())["results"]
    assert [(r["classes"], r["chunk"]) for r in results] == [(4, 0), (4, 4), (8, 0), (8, 4)]
    measured, skipped = results[:2], results[2:]
    assert all(r["grad_norm"] > 0 and r["peak_bytes"] >= 0 for r in measured)
    assert all("exceeds the limit" in r["skipped"] for r in skipped), skipped
    assert out.count("not measured") == 2 and "MiB peak" in out


def test_text_memory_chunked_prediction_stops_growing_at_the_chunk_size():
    args = text_memory.parse_args(["--max-gb", "1"])
    done = [{"classes": 100, "chunk": 100, "peak_bytes": 0.6 * 2**30}, {"classes": 100, "chunk": 0, "peak_bytes": 0.6 * 2**30}]
    assert text_memory.skip_reason(args, 1000, 100, done) is None  # one chunk of 100 at a time
    assert "exceeds the limit" in text_memory.skip_reason(args, 1000, 0, done)  # 6 GiB predicted


def test_steps_tiny_measures_the_cut_and_the_cache_and_prints_their_ratios():
    out = run_script("steps.py", "--arch", "tiny", "--trainers", "CoOp", "--classes", 5, "--repeats", 1,
                     "--warmup", 0)
    results = [json.loads(line) for line in out.splitlines() if line.startswith("{")]
    assert [(r["trainer"], r["classes"], r["setting"]) for r in results] == [("CoOp", 5, "on"), ("CoOp", 5, "off")]
    assert all(r["median_s"] > 0 and r["peak_bytes"] > 0 for r in results)
    assert re.search(r"^\| CoOp \| 5 \| .* s/step, .* MiB \| .* s/step, .* MiB \| time [0-9.]+x, memory [0-9.]+x \|$",
                     out, re.M), out
    out = run_script("steps.py", "--arch", "tiny", "--mode", "eval", "--trainers", "TrainerSubnet", "--classes", 5,
                     "--repeats", 1, "--warmup", 0, "--eval-batch", 4, "--eval-batches", 2)
    assert re.search(r"^\| TrainerSubnet \| 5 \| [0-9.]+ img/s .* \| [0-9.]+ img/s .* \| throughput [0-9.]+x \|$",
                     out, re.M), out


def test_gpu_set_plans_every_required_row_and_writes_one_table(tmp_path):
    from benchmarks import gpu

    rows = gpu.plan([100, 1000])
    search = [(r[3], r[6]) for r in rows if r[0].startswith("search: fused + cut")]
    assert sorted(search) == sorted((p, n) for p in ("fp32", "amp", "bf16") for n in (100, 1000))
    groups = {r[0] for r in rows}
    assert any(g.startswith("TrainerSubnet step") for g in groups) and any(g.startswith("CoOp step") for g in groups)
    assert any("evaluation" in g for g in groups)
    out = tmp_path / "table.md"
    run_script("gpu.py", "--device", "cpu", "--arch", "tiny", "--classes", 5, "--repeats", 1, "--rows", "0",
               "--out", out)
    text = out.read_text()
    assert text.startswith("Device: cpu;") and "| search: fused + cut vs naive + no cut (release) | fp32 | 5 |" in text
