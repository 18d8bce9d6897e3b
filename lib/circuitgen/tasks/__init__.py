"""The tasks: each module defines one :class:`circuitgen.task.Task` and registers it on import.

- ``ioi``: Indirect Object Identification (Wang et al. 2022), the series' first task.
- ``greater_than``: greater-than (Hanna et al. 2023) as the next digit of a year, ``prob_diff``.
- ``agreement``: subject-verb agreement across an attractor ("The keys to the cabinet" -> " are").
- ``capitals``: country-capital recall ("The capital of France is" -> " Paris").
- ``pronouns``: gendered pronouns after a name (Mathwin et al. 2023: "..., isn't" -> " she").

``common`` holds what their modules share (spans, offsets, the single-token filter, alignment
checks), ``words`` their word lists and ``handwritten`` their hand-written held-out prompts
(``data/heldout/<task>.csv``).

Adding a task is adding a module here (and a line below): prompts and their counterfactual
partners, the answer and wrong tokens, the metric, the named positions and the columns that
group the mean-ablation reference; the core (scorer, EAP-IG, size curves, verdicts) needs no
change. The tests show it with a synthetic copy task (``tests/copy_task.py``).
"""

from circuitgen.tasks import agreement, capitals, greater_than, ioi, pronouns  # noqa: F401  (register)
from circuitgen.tasks.agreement import AGREEMENT
from circuitgen.tasks.capitals import CAPITALS
from circuitgen.tasks.greater_than import GREATER_THAN
from circuitgen.tasks.ioi import IOI
from circuitgen.tasks.pronouns import PRONOUNS

__all__ = ["IOI", "GREATER_THAN", "AGREEMENT", "CAPITALS", "PRONOUNS"]
