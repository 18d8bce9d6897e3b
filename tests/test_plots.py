"""The shared figures (circuitgen.plots): what they draw, checked on the artists."""

from __future__ import annotations

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402

from circuitgen import plots  # noqa: E402


def test_condition_forest_rows_clipping_and_reference():
    t = pd.DataFrame({"family": ["a", "a", "b", "a", "a", "b"],
                      "condition": ["base", "x", "y", "base", "x", "y"],
                      "circuit": ["c1"] * 3 + ["c2"] * 3,
                      "estimate": [1.0, 3.0, -2.0, 0.9, 0.5, 1.2],
                      "lo": [0.9, 2.0, -3.0, 0.8, 0.3, 1.1], "hi": [1.1, 4.0, -1.0, 1.0, 0.7, 1.3],
                      "reference": [True, False, False, True, False, False]})
    fig, ax = plt.subplots()
    plots.condition_forest(ax, t, ["c1", "c2"], title="t", xlim=(-0.5, 2.5))
    labels = [x.get_text() for x in ax.get_yticklabels()]
    assert labels == ["a: base", "a: x", "b: y"]  # top to bottom = order of appearance
    assert [x.get_fontweight() for x in ax.get_yticklabels()][0] == "bold"
    # the out-of-range estimates are triangles at the axis edges, nothing drawn beyond them
    tri = {line.get_marker(): line.get_xdata().tolist() for line in ax.lines
           if line.get_marker() in ("<", ">") and len(line.get_xdata())}
    assert tri == {">": [2.5], "<": [-0.5]}
    xs = np.concatenate([line.get_xdata() for line in ax.lines if line.get_marker() == "o"])
    assert sorted(xs.tolist()) == [0.5, 0.9, 1.0, 1.2]
    separators = [line for line in ax.lines if line.get_color() == "0.4"]
    assert len(separators) == 1 and separators[0].get_ydata()[0] == 0.5  # between families a and b
    plt.close(fig)


# ---- the layer x head heatmap: one colour map, symmetric limits, the same sign -> colour everywhere


def red_minus_blue(im, value: float) -> float:
    """Where ``value`` lands on the image's colour scale, as red minus blue (> 0: the red side)."""
    r, _, b, _ = im.cmap(im.norm(value))
    return r - b


def test_head_heatmap_colour_map_is_the_fixed_diverging_one():
    assert plots.DIVERGING == "RdBu_r"  # positive red: changing it recolours every chapter
    fig, ax = plt.subplots()
    im = plots.head_heatmap(ax, np.array([[1.0, -0.5], [0.2, 0.0]]), title="t", label="nats")
    assert im.get_cmap().name == plots.DIVERGING
    assert ax.get_xlabel() == "head" and ax.get_ylabel() == "layer" and ax.get_title() == "t"
    assert fig.axes[-1].get_ylabel() == "nats"  # the colour bar carries the units
    plt.close(fig)


def test_head_heatmap_limits_are_symmetric_about_zero():
    fig, axes = plt.subplots(1, 4)
    cases = [np.array([[3.0, -1.0]]), np.array([[-2.0, 0.5]]), np.array([[0.1, 0.2]]),
             np.array([[np.nan, -4.0], [1.0, 2.0]])]
    for ax, v in zip(axes, cases):
        lo, hi = plots.head_heatmap(ax, v, title="t", label="x").get_clim()
        assert lo == -hi and hi == np.nanmax(np.abs(v))
    im = plots.head_heatmap(axes[0], np.zeros((2, 2)), title="t", label="x")  # all zero: still a scale
    lo, hi = im.get_clim()
    assert lo == -hi and hi > 0
    plt.close(fig)


def test_head_heatmap_shared_vmax_keeps_symmetry_and_scale():
    a, b = np.array([[0.5, -0.1]]), np.array([[-2.0, 0.3]])
    lim = plots.symmetric_limit(a, b)
    assert lim == 2.0
    fig, (ax1, ax2) = plt.subplots(1, 2)
    im1 = plots.head_heatmap(ax1, a, title="a", label="x", vmax=lim)
    im2 = plots.head_heatmap(ax2, b, title="b", label="x", vmax=lim)
    assert im1.get_clim() == im2.get_clim() == (-2.0, 2.0)
    plt.close(fig)


def test_head_heatmap_positive_is_red_in_every_call():
    """The issue: w04-w06 flipped the map between chapters. Whatever the data's range, a positive
    cell lands on the red side, a negative one on the blue side, zero in the middle (white)."""
    fig, axes = plt.subplots(1, 3)
    for ax, v in zip(axes, (np.array([[5.0, -1.0]]), np.array([[0.01, -3.0]]), np.array([[2.0, 2.0]]))):
        im = plots.head_heatmap(ax, v, title="t", label="x")
        assert red_minus_blue(im, abs(v).max() / 2) > 0.2
        assert red_minus_blue(im, -abs(v).max() / 2) < -0.2
        assert abs(red_minus_blue(im, 0.0)) < 0.05
    plt.close(fig)


def test_head_heatmap_orientation_and_position_ticks():
    fig, ax = plt.subplots()
    im = plots.head_heatmap(ax, np.arange(6.0).reshape(2, 3) - 2, title="t", label="x",
                            xlabel="position", xticks=["BOS", "IO", "END"])
    assert im.origin == "lower"  # layer 0 at the bottom, as in circuit_graph
    assert [t.get_text() for t in ax.get_xticklabels()] == ["BOS", "IO", "END"]
    assert ax.get_xlabel() == "position"
    plt.close(fig)


def test_null_histogram_draws_the_circuit_and_the_random_ones():
    null = pd.DataFrame({"circuit": ["spec", "r0", "r1", "r2"], "normalised": [0.9, 0.1, -0.2, 0.3]})
    fig, ax = plt.subplots()
    plots.null_histogram(ax, null, title="t")
    assert sum(p.get_height() for p in ax.patches) == 3  # the random circuits only
    assert ax.lines[0].get_xdata()[0] == 0.9  # the circuit
    assert "3 random circuits" in ax.get_legend().get_texts()[0].get_text()
    plt.close(fig)


def test_notebooks_draw_diverging_maps_only_through_head_heatmap():
    """No chapter picks its own diverging map: the flip the issue found cannot come back."""
    import pathlib
    import re

    root = pathlib.Path(__file__).resolve().parents[1] / "notebooks"
    own = re.compile(r"RdBu|coolwarm|bwr|seismic|PiYG|PRGn|BrBG|PuOr|RdGy|RdYl|Spectral|TwoSlopeNorm")
    offenders = [f"{p.name}:{i}" for p in sorted(root.glob("w*.py"))
                 for i, line in enumerate(p.read_text().splitlines(), 1) if own.search(line)]
    assert not offenders, f"diverging colour maps outside plots.head_heatmap: {offenders}"


def test_an_estimate_outside_its_interval_is_drawn_where_it_is():
    """A ratio of means can lie outside its percentile interval; the forest shows the point at the
    estimate and the interval where it is (errorbar's +/- lengths would refuse it)."""
    t = pd.DataFrame({"family": ["a"], "condition": ["x"], "circuit": ["c1"],
                      "estimate": [1.4], "lo": [0.6], "hi": [1.2]})
    fig, ax = plt.subplots()
    plots.condition_forest(ax, t, ["c1"], title="t")
    point = [line for line in ax.lines if line.get_marker() == "o"]
    assert len(point) == 1 and point[0].get_xdata().tolist() == [1.4]
    ends = np.concatenate([c.get_segments() for c in ax.collections])[:, :, 0]
    assert sorted({round(float(v), 9) for v in ends.ravel()}) == [0.6, 1.2]
    plt.close(fig)


def test_coefficient_forest_sorts_by_training_estimate_and_stars_replicating_terms():
    t = pd.DataFrame({"estimate_train": [0.5, -1.0, 2.0], "lo_train": [0.1, -1.5, 1.0],
                      "hi_train": [0.9, -0.5, 3.0], "estimate_heldout": [0.4, -0.8, 0.1],
                      "lo_heldout": [0.0, -1.2, -0.5], "hi_heldout": [0.8, -0.4, 0.7],
                      "verdict": ["one set only", "replicates", "opposite signs"]},
                     index=["b", "a", "c"])
    fig, ax = plt.subplots()
    plots.coefficient_forest(ax, t, title="t", xlabel="x", label=str.upper)
    assert [x.get_text() for x in ax.get_yticklabels()] == ["A *", "B", "C"]   # by training estimate
    train, held = [line for line in ax.lines if line.get_marker() == "o"]
    assert train.get_xdata().tolist() == [-1.0, 0.5, 2.0]
    assert held.get_xdata().tolist() == [-0.8, 0.4, 0.1]
    assert np.allclose(held.get_ydata() - train.get_ydata(), 0.3)           # side by side per term
    assert [x.get_text() for x in ax.get_legend().get_texts()] == ["training", "held out"]
    plt.close(fig)


def test_a_term_without_a_finite_interval_is_drawn_without_one():
    """A separated logit term has no interval: no warning, no bar, and the finite ones intact."""
    import warnings

    fig, ax = plt.subplots()
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        bars = plots.interval(ax, [0.0, np.nan, -np.inf, 1.0], [1.0, 2.0, 3.0, 3.0], [0, 1, 2, 3], color="k")
    segments = bars.lines[2][0].get_segments()
    assert [tuple(map(tuple, s)) for s in segments] == [((0.0, 0.0), (1.0, 0.0)), ((1.0, 3.0), (3.0, 3.0))]
    plt.close(fig)
