import json
import os

import numpy as np
import pytest
import torch
from PIL import Image

from tools import plot_alpha
from tools.plot_alpha import (DPI, load_search_alphas, plot_alpha_evolution, plot_alpha_heatmaps, plot_convergence,
                              plot_searched_configs, save_alpha_gif)


def fake_search(folder, epochs=4, blocks=3, options=4, seed=0):
    rng = np.random.default_rng(seed)
    os.makedirs(folder, exist_ok=True)
    for epoch in range(epochs):
        np.save(os.path.join(folder, f"alpha_e{epoch}_img.npy"), rng.normal(size=(blocks, options)).astype("f4"))
        np.save(os.path.join(folder, f"alpha_e{epoch}_txt.npy"), rng.normal(size=(blocks, options)).astype("f4"))
    return str(folder)


def test_softmax_rows_accepts_tensors_and_sums_to_one():
    weights = plot_alpha.softmax_rows(torch.tensor([[0.0, np.log(3.0)], [5.0, 5.0]], requires_grad=True))
    np.testing.assert_allclose(weights, [[0.25, 0.75], [0.5, 0.5]], rtol=1e-6)
    with pytest.raises(ValueError, match="blocks, N \\+ 1"):
        plot_alpha.softmax_rows(np.zeros(3))


def test_heatmaps_png(tmp_path):
    path = plot_alpha_heatmaps(np.zeros((12, 7)), torch.randn(12, 7), str(tmp_path / "sub" / "alpha.png"),
                               title="epoch 3")
    with Image.open(path) as image:
        assert image.format == "PNG"
        width, height = image.size
    # more blocks make a taller figure, more options a wider one
    with Image.open(plot_alpha_heatmaps(np.zeros((4, 7)), np.zeros((4, 7)), str(tmp_path / "b.png"))) as small:
        assert small.size[0] == width and small.size[1] < height
    with Image.open(plot_alpha_heatmaps(np.zeros((12, 3)), np.zeros((12, 3)), str(tmp_path / "c.png"))) as narrow:
        assert narrow.size[0] < width and narrow.size[1] == height


def test_convergence_png_has_the_figure_size(tmp_path):
    history = [{"epoch": e, "alpha_difference_img": 0.0 if e == 0 else 1.0 / e, "alpha_difference_txt": 0.5,
                "dominant_img": e, "dominant_txt": 1} for e in range(5)]
    with Image.open(plot_convergence(history, str(tmp_path / "c.png"))) as image:
        assert image.size == (9 * DPI, int(3.5 * DPI))
    with pytest.raises(ValueError, match="at least one epoch"):
        plot_convergence([], str(tmp_path / "empty.png"))


def test_evolution_grid_and_gif(tmp_path):
    alphas = load_search_alphas(fake_search(tmp_path / "search", epochs=4))
    assert list(alphas) == [0, 1, 2, 3]
    with Image.open(plot_alpha_evolution(alphas, str(tmp_path / "grid.png"))) as grid:
        four = grid.size
    with Image.open(plot_alpha_evolution(alphas, str(tmp_path / "grid2.png"), max_panels=2)) as grid:
        assert grid.size[0] < four[0]  # first and last epoch only
    single = plot_alpha_heatmaps(*alphas[0], str(tmp_path / "frame.png"))
    with Image.open(save_alpha_gif(alphas, str(tmp_path / "evolution.gif"))) as gif, Image.open(single) as frame:
        assert gif.format == "GIF" and gif.n_frames == 4
        assert gif.size == frame.size


def test_searched_configs_side_by_side(tmp_path):
    configs = [("dtd", {"image": [0, 1, 2], "text": [3, 0, 0]}), ("eurosat", {"image": [6, 6, 6], "text": [0, 0, 1]})]
    with Image.open(plot_searched_configs(configs, str(tmp_path / "two.png"))) as two:
        size_two = two.size
    three = configs + [("pets", {"image": [1, 1, 1], "text": [1, 1, 1]})]
    with Image.open(plot_searched_configs(three, str(tmp_path / "three.png"))) as image:
        assert image.size[0] == size_two[0] and image.size[1] > size_two[1]  # one row per configuration


def test_cli(tmp_path):
    search = fake_search(tmp_path / "search" / "dtd" / "shots_16" / "TrainerSupernet" / "cfg" / "seed1", epochs=3)
    with open(os.path.join(search, "search_history.json"), "w") as f:
        json.dump([{"epoch": 0, "alpha_difference_img": 0.0, "alpha_difference_txt": 0.0, "dominant_img": 0,
                    "dominant_txt": 0}], f)
    assert plot_alpha.main(["heatmap", search, "--epoch", "1", "--out", str(tmp_path / "h.png")]) == 0
    assert plot_alpha.main(["evolution", search, "--out", str(tmp_path / "evo")]) == 0
    assert plot_alpha.main(["convergence", search, "--out", str(tmp_path / "conv.png")]) == 0
    assert plot_alpha.main(["compare", search, search, "--labels", "a", "b", "--out", str(tmp_path / "cmp.png")]) == 0
    for name in ("h.png", "evo.png", "evo.gif", "conv.png", "cmp.png"):
        with Image.open(tmp_path / name) as image:
            assert image.size[0] > 0
    # --epoch picks the alpha files plotted: other epochs, other pictures; the same epoch, the same
    for epoch, name in (("0", "h0.png"), ("2", "h2.png"), ("1", "h1.png")):
        assert plot_alpha.main(["heatmap", search, "--epoch", epoch, "--out", str(tmp_path / name)]) == 0
    pixels = {n: np.asarray(Image.open(tmp_path / n).convert("RGB")) for n in ("h0.png", "h1.png", "h2.png", "h.png")}
    assert np.array_equal(pixels["h1.png"], pixels["h.png"])
    # ... and it is epoch 1's data, not only its title: the same picture as epoch 1's alphas drawn directly
    reference = plot_alpha_heatmaps(*load_search_alphas(search)[1], str(tmp_path / "ref1.png"), title="epoch 1")
    assert np.array_equal(pixels["h1.png"], np.asarray(Image.open(reference).convert("RGB")))
    assert not np.array_equal(pixels["h0.png"], pixels["h2.png"])
    assert not np.array_equal(pixels["h1.png"], pixels["h2.png"])
    with pytest.raises(SystemExit):
        plot_alpha.main(["heatmap", search, "--epoch", "7", "--out", str(tmp_path / "x.png")])
