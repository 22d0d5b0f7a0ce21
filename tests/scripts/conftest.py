"""Fixtures for the launcher tests: a stand-in for train.py that records its command lines."""
import json
import os
import stat
import sys

import pytest

REPO_ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

# What the launchers get as $PYTHON: train.py calls are recorded (and leave a checkpoint and a
# completion marker, so the next stage finds its input); `-m dassl.engine.run_record finished DIR`
# answers from that marker; `-m tools.average_checkpoints OUT ...` makes OUT; anything else (the launchers' own helper) runs in the real interpreter.
STUB = r'''#!{python}
import json, os, sys
args = sys.argv[1:]
if args and args[0].endswith("train.py"):
    opts = args[1:]
    out = opts[opts.index("--output-dir") + 1]
    with open(os.environ["STUB_LOG"], "a") as f:
        f.write(json.dumps(opts) + "\n")
    os.makedirs(out, exist_ok=True)
    if "--eval-only" not in opts:
        epoch = opts[len(opts) - 1 - opts[::-1].index("OPTIM.MAX_EPOCH") + 1] if "OPTIM.MAX_EPOCH" in opts else "1"
        os.makedirs(os.path.join(out, "prompt_learner"), exist_ok=True)
        open(os.path.join(out, "prompt_learner", "model.pth.tar-" + epoch), "w").close()
    open(os.path.join(out, "stub_finished"), "w").close()
    sys.exit(0)
if args[:2] == ["-m", "tools.average_checkpoints"]:  # scripts/mvlpt/source.sh: the averaged folder appears
    os.makedirs(args[2], exist_ok=True)
    sys.exit(0)
if args[:2] == ["-m", "dassl.engine.run_record"]:
    sys.exit(0 if os.path.isfile(os.path.join(args[-1], "stub_finished")) else 1)
os.execv(sys.executable, [sys.executable] + args)
'''


@pytest.fixture(scope="session")
def launch_cache(tmp_path_factory):
    """One cache of the config keys for the session (computing it imports every trainer: seconds)."""
    return str(tmp_path_factory.mktemp("launch_cache"))


@pytest.fixture
def stub_env(tmp_path, launch_cache):
    """Environment whose PYTHON records train.py calls in tmp_path/calls.jsonl (read with `calls`)."""
    stub = tmp_path / "python_stub"
    stub.write_text(STUB.format(python=sys.executable))
    stub.chmod(stub.stat().st_mode | stat.S_IEXEC)
    (tmp_path / "data").mkdir()
    return dict(os.environ, PYTHON=str(stub), STUB_LOG=str(tmp_path / "calls.jsonl"), DATA=str(tmp_path / "data"),
                OUTPUT=str(tmp_path / "out"), CLIP_WEIGHTS=str(tmp_path / "clip.pt"),
                LAUNCH_CACHE=launch_cache)


def calls(env):
    """The recorded train.py command lines (lists of arguments), oldest first; then forgets them."""
    path = env["STUB_LOG"]
    if not os.path.isfile(path):
        return []
    with open(path) as f:
        recorded = [json.loads(line) for line in f]
    os.remove(path)
    return recorded


def option(argv, name):
    """The value after ``name`` in a command line (the last one when repeated)."""
    return argv[len(argv) - 1 - argv[::-1].index(name) + 1]
