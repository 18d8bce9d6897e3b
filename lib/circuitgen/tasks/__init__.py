"""The tasks: each module defines one :class:`circuitgen.task.Task` and registers it on import.

- ``ioi``: Indirect Object Identification (Wang et al. 2022), the series' first task.

Adding a task is adding a module here (and a line below): prompts and their counterfactual
partners, the answer and wrong tokens, the metric, the named positions and the columns that
group the mean-ablation reference; the core (scorer, EAP-IG, size curves, verdicts) needs no
change. The tests show it with a synthetic copy task (``tests/copy_task.py``).
"""

from circuitgen.tasks import ioi  # noqa: F401  (registers the task)
from circuitgen.tasks.ioi import IOI

__all__ = ["IOI"]
