"""circuitgen: the library behind the circuit-generalization notebook series.

The library is layered so that each axis of the series' question (task, prompt, model) plugs in
without touching the others. :data:`LAYERS` is the order, written once, lowest first; a module
may import modules of its own layer or below, never above, and the imports have no cycles
(``tests/test_layers.py`` checks both, on every import, at the top of a module or inside a
function):

- **leaves**: paths, statistics, result tables, figures, errors, and :mod:`circuitgen.task` (what
  the core needs from a task: named positions, answer and wrong tokens, the metric, the
  faithfulness formula, and the registry of tasks). Anything may use them.
- **core**: model loading, batches, ablation and its reference, resumed forwards, nodes and
  circuit specs, the one scoring engine (:mod:`circuitgen.scorer`) and the size curves. The core
  sees a task's named positions and token sets, never "IO" or "S".
- **tasks**: IOI's prompts, positions, ABC counterparts, mean-ablation reference and variation
  families, and :mod:`circuitgen.tasks` (each task registers itself; the core finds it by name).
- **discover**: behaviour and patching analyses, path patching, EAP-IG, exact pruning, and the
  one registry of discovery methods.
- **generalise**: sweeps, verdicts, re-discovery, predictors, held-out sets.
- **entry**: the command line and the benchmark.

This package's ``__init__`` is the facade: it imports the tasks so that they are registered.
"""

from circuitgen.models import (
    KNOWN_MODELS,
    REFERENCE_MODEL,
    EmbeddedModelMissingError,
    HubUnreachableError,
    ModelLoadError,
    UnknownModelError,
    describe,
    load_model,
)
from circuitgen.task import Task, get_task, task_names
from circuitgen.tasks import IOI  # registers the tasks the core finds by name

LAYERS: tuple[tuple[str, tuple[str, ...]], ...] = (
    ("leaves", ("paths", "stats", "tables", "plots", "errors", "shown", "task")),
    ("core", ("models", "runtime", "batch", "ablation", "resume", "nodes", "circuits", "scorer",
              "curves", "evaluation", "attention", "residual", "induction")),
    ("tasks", ("ioi_templates", "ioi", "reference", "variation_lists", "variations", "splits",
               "tasks", "tasks.ioi", "tasks.common", "tasks.words", "tasks.greater_than",
               "tasks.agreement", "tasks.capitals", "tasks.pronouns", "tasks.handwritten",
               "scorer_report")),
    ("discover", ("behaviour", "head_roles", "patching", "path_patching", "discovery", "eap",
                  "pruning", "discovery_methods", "faithful", "faithful_report")),
    ("generalise", ("sweeps", "sweep_report", "generalise", "heldout", "rediscovery", "predictors",
                    "generalise_report", "answer_report", "equivalence")),
    ("entry", ("cli", "bench", "__main__")),
)

__version__ = "0.1.0"
__all__ = [
    "KNOWN_MODELS", "REFERENCE_MODEL", "EmbeddedModelMissingError", "HubUnreachableError",
    "ModelLoadError", "UnknownModelError", "describe", "load_model", "Task", "get_task", "task_names",
    "IOI", "LAYERS",
]
