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
