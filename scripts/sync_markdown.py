"""Copy markdown cells from a notebook's .py into its executed .ipynb without re-running it.

Only for prose edits: the code cells of the two must already be identical (checked), so the
committed outputs still come from exactly the code shown.
"""

import sys

import jupytext
import nbformat

for stem in sys.argv[1:]:
    src = jupytext.read(f"{stem}.py")
    nb = nbformat.read(f"{stem}.ipynb", as_version=4)
    if len(src.cells) != len(nb.cells):
        sys.exit(f"{stem}: cell counts differ ({len(src.cells)} vs {len(nb.cells)}): re-run it")
    for a, b in zip(src.cells, nb.cells):
        if a.cell_type != b.cell_type or (a.cell_type == "code" and a.source != b.source):
            sys.exit(f"{stem}: a code cell changed: re-run the notebook instead")
        if a.cell_type == "markdown":
            b.source = a.source
    nbformat.write(nb, f"{stem}.ipynb")
    print(f"{stem}: markdown synced")
