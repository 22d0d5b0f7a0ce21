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
    assert plot_alpha.main(["heatmap", search, "--epoch", "1", "--dpi", "60", "--out", str(tmp_path / "h.png")]) == 0
    assert plot_alpha.main(["evolution", search, "--dpi", "60", "--out", str(tmp_path / "evo")]) == 0
    assert plot_alpha.main(["convergence", search, "--dpi", "60", "--out", str(tmp_path / "conv.png")]) == 0
    assert plot_alpha.main(["compare", search, search, "--labels", "a", "b", "--dpi", "60", "--out", str(tmp_path / "cmp.png")]) == 0
    for name in ("h.png", "evo.png", "evo.gif", "conv.png", "cmp.png"):
        with Image.open(tmp_path / name) as image:
            assert image.size[0] > 0
    # --epoch picks the alpha files plotted: other epochs, other pictures; the same epoch, the same
    for epoch, name in (("0", "h0.png"), ("2", "h2.png"), ("1", "h1.png")):
        assert plot_alpha.main(["heatmap", search, "--epoch", epoch, "--dpi", "60", "--dpi", "60", "--out", str(tmp_path / name)]) == 0
    pixels = {n: np.asarray(Image.open(tmp_path / n).convert("RGB")) for n in ("h0.png", "h1.png", "h2.png", "h.png")}
    assert np.array_equal(pixels["h1.png"], pixels["h.png"])
    # ... and it is epoch 1's data, not only its title: the same picture as epoch 1's alphas drawn directly
    reference = plot_alpha_heatmaps(*load_search_alphas(search)[1], str(tmp_path / "ref1.png"),
                                    title="dtd, 16 shots, seed 1, epoch 1", dpi=60)
    assert np.array_equal(pixels["h1.png"], np.asarray(Image.open(reference).convert("RGB")))
    assert not np.array_equal(pixels["h0.png"], pixels["h2.png"])
    assert not np.array_equal(pixels["h1.png"], pixels["h2.png"])
    with pytest.raises(SystemExit):
        plot_alpha.main(["heatmap", search, "--epoch", "7", "--dpi", "60", "--out", str(tmp_path / "x.png")])


# ---------------------------------------------------------------------------- issue 12
def test_dpi_option_and_formats_by_extension(tmp_path):
    search = fake_search(tmp_path / "search", epochs=2)
    sizes = {}
    for dpi in ("300", "100"):
        assert plot_alpha.main(["heatmap", search, "--dpi", dpi, "--out", str(tmp_path / f"h{dpi}.png")]) == 0
        with Image.open(tmp_path / f"h{dpi}.png") as image:
            sizes[dpi] = image.size
    assert sizes["300"][0] == pytest.approx(3 * sizes["100"][0], abs=2)
    assert plot_alpha.main(["heatmap", search, "--out", str(tmp_path / "default.png")]) == 0
    with Image.open(tmp_path / "default.png") as image:
        assert image.size == sizes["300"]  # the default is 300 dpi
    assert plot_alpha.main(["heatmap", search, "--out", str(tmp_path / "h.pdf")]) == 0
    assert (tmp_path / "h.pdf").read_bytes().startswith(b"%PDF")
    assert plot_alpha.main(["evolution", search, "--out", str(tmp_path / "evo.svg")]) == 0
    assert b"<svg" in (tmp_path / "evo.svg").read_bytes()[:1000] and (tmp_path / "evo.gif").is_file()
    with pytest.raises(SystemExit):
        plot_alpha.main(["heatmap", search, "--out", str(tmp_path / "h.txt")])


def test_titles_name_dataset_seed_and_epoch(tmp_path):
    search = fake_search(tmp_path / "fewshot" / "dtd" / "shots_16" / "TrainerSupernet" / "cfg" / "seed2", epochs=2)
    run = plot_alpha.search_run(search)
    assert (run["dataset"], run["shots"], run["seed"]) == ("dtd", "16", "2")
    assert plot_alpha.run_title(run, 1) == "dtd, 16 shots, seed 2, epoch 1"
    # the run's own record wins over the folder names (the log's config dump, as the engine prints it)
    with open(os.path.join(search, "log.txt"), "w") as f:
        f.write("************\n** Config **\n************\nDATASET:\n  NAME: DescribableTextures\n"
                "  NUM_SHOTS: 1\nOPTIM:\n  MAX_EPOCH: 10\nSEED: 7\nCollecting env info ...\n")
    assert plot_alpha.run_title(plot_alpha.search_run(search), 0) == "DescribableTextures, 1 shot, seed 7, epoch 0"
    # the title is drawn: another run name, another picture
    other = fake_search(tmp_path / "fewshot" / "eurosat" / "shots_16" / "TrainerSupernet" / "cfg" / "seed2", epochs=2)
    for folder, name in ((search, "a.png"), (other, "b.png")):
        assert plot_alpha.main(["heatmap", folder, "--epoch", "1", "--dpi", "50", "--out", str(tmp_path / name)]) == 0
    a, b = (np.asarray(Image.open(tmp_path / n).convert("L"), dtype=float) for n in ("a.png", "b.png"))
    top = slice(0, int(0.12 * a.shape[0]))  # the title band
    assert not np.array_equal(a[top], b[top])


def draw(weights, scale=None):
    from trainers.prompt_config import draw_weights, new_figure, weight_scale

    fig = new_figure(figsize=(4, 3))
    ax = fig.add_subplot()
    scale = scale or weight_scale(weights)
    draw_weights(ax, weights, "t", annotate=True, scale=scale)
    fig.canvas.draw()
    return ax, scale


def test_near_uniform_weights_get_a_stretched_scale_and_three_decimals():
    from trainers.prompt_config import weight_scale

    near = plot_alpha.softmax_rows(np.array([[0.0, 0.004, 0.0], [0.003, 0.0, 0.0]]))
    ax, scale = draw(near)
    low, high, decimals = scale
    assert decimals == 3 and low <= near.min() and high >= near.max() and high - low < 0.01
    image = ax.get_images()[0]
    assert image.get_clim() == (low, high)
    texts = [t.get_text() for t in ax.texts]
    assert texts[0] == f"{near[0, 0]:.3f}" and all(len(t.split(".")[1]) == 3 for t in texts)
    # distinct colours for weights that differ in the third decimal
    colours = image.to_rgba(near)
    assert not np.allclose(colours[0, 0], colours[0, 1])
    sharp = plot_alpha.softmax_rows(np.array([[5.0, 0.0, 0.0]]))
    assert weight_scale(sharp) == (0.0, 1.0, 2)
    assert weight_scale(np.full((2, 3), 1 / 3))[2] == 3  # flat: still a valid scale
    low, high, _ = weight_scale(np.full((2, 3), 1 / 3))
    assert low < 1 / 3 < high


def test_argmax_boxes_lie_inside_the_axes_and_block_0_is_the_input_end():
    from matplotlib.patches import Rectangle

    weights = plot_alpha.softmax_rows(np.array([[9.0, 0, 0], [0, 0, 0], [0, 0, 9.0]]))  # corners: the border
    ax, _ = draw(weights)
    boxes = [p for p in ax.patches if isinstance(p, Rectangle)]
    assert len(boxes) == 3
    (x0, x1), (y1, y0) = ax.get_xlim(), ax.get_ylim()  # imshow: y grows downwards
    for box in boxes:
        assert not box.get_clip_on()
        left, top = box.get_x(), box.get_y()
        assert x0 < left and left + box.get_width() < x1 and y0 < top and top + box.get_height() < y1
    assert (boxes[0].get_x() + 0.5, boxes[2].get_x() + 0.5) == pytest.approx((0.06, 2.06))
    labels = [t.get_text() for t in ax.get_yticklabels()]
    assert labels[0] == "0 (input)" and labels[1:] == ["1", "2"]


def test_convergence_of_an_unfinished_search_from_the_per_epoch_files(tmp_path):
    search = fake_search(tmp_path / "search" / "dtd" / "shots_4" / "TrainerSupernet" / "cfg" / "seed1", epochs=3)
    assert not os.path.exists(os.path.join(search, "search_history.json"))  # the search has not finished
    history, title = plot_alpha.convergence_history(search)
    assert [h["epoch"] for h in history] == [0, 1, 2]
    assert history == plot_alpha.search_history(search, 0.1) and "unfinished" in title and "dtd" in title
    assert plot_alpha.main(["convergence", search, "--dpi", "50", "--out", str(tmp_path / "c.png")]) == 0
    with Image.open(tmp_path / "c.png") as image:
        assert image.size == (9 * 50, int(3.5 * 50))
    # the margin: --margin, else the one searched_config.json records
    with open(os.path.join(search, "searched_config.json"), "w") as f:
        json.dump({"definitions": {"dominant": "a block is single-dominant when ...: 0.9"}}, f)
    history, _ = plot_alpha.convergence_history(search)
    assert history == plot_alpha.search_history(search, 0.9)
    assert plot_alpha.convergence_history(search, margin=0.0)[0] == plot_alpha.search_history(search, 0.0)
    # a finished search: its search_history.json, when it covers the last alpha files
    finished = [{"epoch": e, "alpha_difference_img": 0.5, "alpha_difference_txt": 0.5, "dominant_img": 1,
                 "dominant_txt": 1} for e in range(3)]
    with open(os.path.join(search, "search_history.json"), "w") as f:
        json.dump(finished, f)
    history, title = plot_alpha.convergence_history(search)
    assert history == finished and "unfinished" not in title
    fake_search(search, epochs=4)  # resumed after the summary: a newer epoch than the history
    assert [h["epoch"] for h in plot_alpha.convergence_history(search)[0]] == [0, 1, 2, 3]
    assert plot_alpha.main(["convergence", str(tmp_path / "empty"), "--out", str(tmp_path / "x.png")]) == 2
