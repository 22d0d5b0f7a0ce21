"""tools/average_checkpoints.py: the uniform element-wise mean of several runs' prompt checkpoints."""
import pytest
import torch

from dassl.errors import CheckpointError
from dassl.utils import save_checkpoint
from tools.average_checkpoints import average_checkpoints, main


def run_folder(root, seed, epoch, shape=(2, 3), record=None):
    g = torch.Generator().manual_seed(seed)
    state = {"ctx": torch.randn(shape, generator=g), "vpt_embeddings": torch.randn(1, 2, 4, generator=g).half()}
    extra = {"mvlpt": record} if record else {}
    save_checkpoint({"state_dict": state, "epoch": epoch, "val_result": 10.0 * seed, **extra},
                    str(root / f"seed{seed}" / "prompt_learner"), is_best=True)
    return state


def test_the_average_is_the_element_wise_mean(tmp_path):
    record = {"variant": "MUPT", "upt_mixing": "mixed"}
    states = [run_folder(tmp_path, s, e, record=record) for s, e in ((1, 200), (2, 200), (3, 199))]
    assert main([str(tmp_path / "avg")] + [str(tmp_path / f"seed{s}") for s in (1, 2, 3)]) == 0
    out = torch.load(tmp_path / "avg" / "prompt_learner" / "model-best.pth.tar", weights_only=True)
    for key in ("ctx", "vpt_embeddings"):
        expected = sum(s[key].double() for s in states) / 3
        assert out["state_dict"][key].dtype == states[0][key].dtype
        torch.testing.assert_close(out["state_dict"][key].double(), expected.to(states[0][key].dtype).double())
    assert out["epoch"] == 199 and out["val_result"] == pytest.approx(20.0) and out["mvlpt"] == record
    assert (tmp_path / "avg" / "prompt_learner" / "model.pth.tar-199").is_file()


def test_runs_of_other_shapes_are_refused(tmp_path):
    run_folder(tmp_path, 1, 5)
    run_folder(tmp_path, 2, 5, shape=(4, 3))
    with pytest.raises(CheckpointError, match="shapes of"):
        average_checkpoints([str(tmp_path / "seed1"), str(tmp_path / "seed2")], str(tmp_path / "avg"))
