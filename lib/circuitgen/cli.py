"""The ``circuitgen`` command line: score a circuit on a prompt CSV, generate prompts, benchmark.

    circuitgen score --model smollm2-135m --circuit data/circuits/gpt2-ioi.yaml \\
        --prompts data/prompts/handwritten-examples.csv --out scores.csv
    circuitgen prompts --model smollm2-135m -n 200 --seed 0 --out prompts.csv
    circuitgen prompts --task capitals --n 40 --seed 0 --out capitals.csv
    circuitgen bench --n-prompts 32

Bad input (an unknown model, an unreachable hub, a malformed spec, a missing CSV or column, rows
that cannot be scored, a spec that does not fit the model) ends with exit status 2 and one line on
stderr starting ``circuitgen: error:``; no traceback. Progress bars go to stderr, results to
stdout.
"""

from __future__ import annotations

import argparse
import json
import math
import pathlib
import re
import sys

# Imports of torch, transformers, pandas and the scoring modules sit inside the commands that
# use them: loading them takes seconds on 2 cores, so `circuitgen --help` and a mistyped
# argument answer at once.
from circuitgen.errors import InputError

EXIT_INPUT = 2
PROG = "circuitgen"


# InputError: a problem with what the user gave; one ``circuitgen: error:`` line and exit 2
# (defined below the CLI and the benchmark, which both raise it).


# --------------------------------------------------------------------------------------------
# Error messages: always one line


_MULTI_ROW = re.compile(r"^(\d+) of (\d+) prompts cannot be scored")


def one_line(message: str) -> str:
    """A (possibly multi-line) error message as one line.

    The scorer's many-rows error ("k of n prompts cannot be scored:" then one line per row) keeps
    its first line, the first row's reason and how many more there are.
    """
    lines = [ln.strip() for ln in str(message).splitlines() if ln.strip()]
    if not lines:
        return "unknown error"
    m = _MULTI_ROW.match(lines[0])
    if m and len(lines) > 1:
        n_bad = int(m.group(1))
        more = f" (and {n_bad - 1} more row{'s' if n_bad > 2 else ''})" if n_bad > 1 else ""
        return (f"{lines[0].rstrip(':')}; first: {lines[1]}{more}. Fix them, or pass "
                "--skip-invalid to score the rest and keep these rows with their reason in the "
                "status column.")
    return " ".join(lines)


def _fail(message: str) -> int:
    print(f"{PROG}: error: {one_line(message)}", file=sys.stderr)
    return EXIT_INPUT


class _Parser(argparse.ArgumentParser):
    """argparse, with its usage errors on one line too (it already exits with status 2)."""

    def error(self, message):  # noqa: D102
        self.exit(EXIT_INPUT, f"{PROG}: error: {one_line(message)} (see {self.prog} --help)\n")


# --------------------------------------------------------------------------------------------
# Inputs


def _read_prompts(path_or_name: str, required: tuple[str, ...] = ("prompt", "io", "s")):
    """A prompt table from a CSV path (or a bare name in data/prompts/); ``PromptSet``."""
    import pandas as pd

    from circuitgen import ioi

    p = pathlib.Path(path_or_name)
    if p.is_dir():
        raise InputError(f"{p} is a folder; give the path of a prompt CSV (columns "
                         f"{', '.join(required)}).")
    # A path that exists is used as given (not re-rooted in data/prompts/).
    target = p.resolve() if p.exists() else path_or_name
    try:
        return ioi.load_prompt_set(target, required=required)
    except (pd.errors.ParserError, pd.errors.EmptyDataError, UnicodeDecodeError) as err:
        raise InputError(f"{p}: not a readable CSV ({type(err).__name__}: {err}); a prompt CSV "
                         f"needs a header row with at least {', '.join(required)}.") from None


def _task(name: str, module: str | None):
    """The task ``--task`` names, after importing ``--task-module`` (which registers it)."""
    import importlib

    from circuitgen.task import get_task

    if module is not None:
        try:
            importlib.import_module(module)
        except ImportError as err:
            raise InputError(f"--task-module {module}: cannot import it ({err}); give an importable "
                             "module that registers a circuitgen.task.Task.") from None
    return get_task(name)


def _out_path(path: str, suffix: str = ".csv") -> pathlib.Path:
    out = pathlib.Path(path)
    if out.suffix != suffix:
        raise InputError(f"--out {path}: give a file name ending in {suffix}.")
    if out.exists() and out.is_dir():
        raise InputError(f"--out {path} is a folder; give a file name ending in {suffix}.")
    return out.resolve()


def _json_default(obj):
    try:
        import numpy as np

        if isinstance(obj, np.generic):
            return obj.item()
    except ImportError:  # pragma: no cover
        pass
    return str(obj)


def _clean_nan(obj):
    """NaN and inf are not JSON: write them as null."""
    if isinstance(obj, float) and not math.isfinite(obj):
        return None
    if isinstance(obj, dict):
        return {k: _clean_nan(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [_clean_nan(v) for v in obj]
    return obj


# --------------------------------------------------------------------------------------------
# score


def cmd_score(args) -> int:
    from dataclasses import replace

    from circuitgen import circuits, ioi, scorer
    from circuitgen.models import load_model

    # Cheap checks first, so a typo fails before the model loads.
    task = _task(args.task, args.task_module)
    spec = circuits.load_circuit(args.circuit)
    if spec.task != task.name:
        raise InputError(f"--circuit {args.circuit} is a circuit for the {spec.task!r} task, but "
                         f"--task is {task.name!r}; score it on its own task's prompts "
                         f"(--task {spec.task}).")
    prompts = _read_prompts(args.prompts, task.required_columns)
    if len(prompts.df) == 0:
        raise InputError(f"{args.prompts}: the CSV has no rows to score.")
    reference = None
    method = args.ablation or spec.ablation.method
    if args.reference is not None:
        if method != "mean":
            raise InputError(f"--reference gives the distribution for mean ablation; it has no "
                             f"use with --ablation {method}. Drop it, or use --ablation mean.")
        reference = _read_prompts(args.reference, task.required_columns).df
    out = _out_path(args.out)
    if args.batch_size < 1:
        raise InputError(f"--batch-size must be at least 1, not {args.batch_size}.")

    model = load_model(args.model, device=args.device)
    circuits.validate_for_model(spec, model.cfg.n_layers, model.cfg.n_heads, args.model)
    # One Ablation type (circuits.Ablation = scorer.Ablation): the spec's, with the options given.
    ablation = replace(spec.ablation, method=method, reference_prompts=reference,
                       reference=None if method == "zero" else "abc",
                       group_by=_group_by(spec.ablation.group_by, prompts.df))
    scores = scorer.score_circuit(
        model, spec, prompts.df, ablation=ablation, batch_size=args.batch_size,
        knockouts=not args.no_knockouts, skip_invalid=args.skip_invalid,
        progress=not args.no_progress, seed=args.seed, task=task,
    )
    meta = dict(scores.attrs.get("circuitgen", {}))
    meta |= {"prompts": str(args.prompts), "prompt_set_meta": prompts.meta or None,
             "batch_size": args.batch_size, "seed": args.seed,
             "reference_prompts": str(args.reference) if args.reference else None}
    out.parent.mkdir(parents=True, exist_ok=True)
    scores.to_csv(out, index=False, lineterminator="\n")
    meta_file = ioi.meta_path(out)
    meta_file.write_text(json.dumps(_clean_nan(meta), indent=2, default=_json_default,
                                    ensure_ascii=False) + "\n")
    print(_score_summary(scores, meta, out, meta_file))
    return 0


def _group_by(spec_group_by: tuple[str, ...], df) -> tuple[str, ...] | None:
    """The spec's grouping where the prompts carry its columns, else the default rule (each
    hand-written prompt its own group), so a CSV without ``template``/``order`` still scores."""
    if spec_group_by and all(c in df.columns for c in spec_group_by):
        return tuple(spec_group_by)
    return None


def _score_summary(scores, meta: dict, out: pathlib.Path, meta_file: pathlib.Path) -> str:
    from circuitgen import scorer

    lines = [
        f"scored {meta.get('n_scored', 0)} of {meta.get('n_prompts', len(scores))} prompts "
        f"({meta.get('n_flagged', 0)} flagged) with {meta.get('model')} "
        f"[{meta.get('ablation', {}).get('method')} ablation]",
    ]
    if meta.get("n_scored", 0):
        table = scorer.summary(scores)
        lines.append(table.to_string(float_format=lambda x: f"{x:.3f}"))
        lines.append(f"faithfulness (ratio of means): {meta['faithfulness_ratio_of_means']:.3f}")
    flagged = scores[scores.status != "ok"] if "status" in scores.columns else scores.iloc[:0]
    for idx, reason in flagged.status.head(3).items():
        lines.append(f"flagged row {idx}: {one_line(reason)[:160]}")
    if len(flagged) > 3:
        lines.append(f"... and {len(flagged) - 3} more flagged rows (see the status column)")
    lines.append(f"wrote {out} and {meta_file.name}")
    return "\n".join(lines)


# --------------------------------------------------------------------------------------------
# prompts


def cmd_prompts(args) -> int:
    from circuitgen import ioi

    out = _out_path(args.out)
    if args.n < 1:
        raise InputError(f"-n must be at least 1, not {args.n}.")
    task = _task(args.task, args.task_module)
    if task.name != "ioi" and (args.templates is not None or args.orders is not None):
        raise InputError(f"--templates and --orders are options of the IOI generator; the "
                         f"{task.name} task's generator takes --n and --seed.")
    if args.tokenizer is not None:
        source, label = _tokenizer(args.tokenizer), args.tokenizer
    else:
        source, label = args.model, args.model
    if task.name != "ioi":
        return _task_prompts(task, args, source, label, out)
    if args.templates is not None:
        bad = [t for t in args.templates if not 0 <= t < len(ioi.TEMPLATES)]
        if bad:
            raise InputError(f"--templates {bad}: template ids run from 0 to "
                             f"{len(ioi.TEMPLATES) - 1}.")
    ps = ioi.generate_prompts(source, n=args.n, seed=args.seed, templates=args.templates,
                              orders=tuple(args.orders or ioi.ORDERS), tokenizer_name=label)
    path = ps.save(out)
    dropped = ps.names_dropped
    print(f"wrote {len(ps)} prompts to {path} (+ {ioi.meta_path(path).name}); seed {args.seed}, "
          f"tokenizer {label}")
    print(f"names dropped (not one token with a leading space): {ps.n_dropped} of "
          f"{ps.meta.get('n_names_given')}" + (f": {', '.join(dropped)}" if dropped else ""))
    return 0


def _task_prompts(task, args, source, label: str, out: pathlib.Path) -> int:
    """Another task's prompts: its generator's table (with counterfactuals) and its provenance."""
    from circuitgen import ioi

    tokenizer, _ = ioi.resolve_tokenizer(source)
    df = task.generate(tokenizer, n=args.n, seed=args.seed)
    meta = dict(df.attrs.get("circuitgen", {})) | {"task": task.name, "tokenizer": label}
    if "tokenizer" in df.columns:
        df = df.assign(tokenizer=label)
    out.parent.mkdir(parents=True, exist_ok=True)
    df.to_csv(out, index=False, lineterminator="\n")
    meta_file = ioi.meta_path(out)
    meta_file.write_text(json.dumps(meta, indent=2, ensure_ascii=False, default=_json_default) + "\n")
    print(f"wrote {len(df)} {task.name} prompts to {out} (+ {meta_file.name}); seed {args.seed}, "
          f"tokenizer {label}")
    # the generator records, per word list, n_<list>_given, n_<list>_refused and <list>_refused
    lists = [k[2:-len("_refused")] for k in meta if k.startswith("n_") and k.endswith("_refused")]
    for what in lists:
        words = ", ".join(map(str, meta.get(f"{what}_refused") or []))
        print(f"{what} refused (not one token with a leading space): {meta[f'n_{what}_refused']} of "
              f"{meta.get(f'n_{what}_given', '?')}" + (f": {words}" if words else ""))
    return 0


def _tokenizer(name_or_path: str):
    """A tokenizer from a folder, a known model name or a hub id (tokenizer files only)."""
    from circuitgen import models

    if name_or_path in models.KNOWN_MODELS:
        from circuitgen.ioi import resolve_tokenizer

        return resolve_tokenizer(name_or_path)[0]
    from transformers import AutoTokenizer

    p = pathlib.Path(name_or_path)
    if p.exists():
        try:
            return AutoTokenizer.from_pretrained(p)
        except (OSError, ValueError) as err:
            raise InputError(f"--tokenizer {p}: no tokenizer could be loaded from it ({err}).") from None
    if "/" not in name_or_path:
        raise InputError(f"--tokenizer {name_or_path!r} is neither a folder nor a known model "
                         f"({', '.join(models.KNOWN_MODELS)}) nor a hub id like 'owner/name'.")
    try:
        return AutoTokenizer.from_pretrained(name_or_path, local_files_only=True)
    except OSError:
        raise models.HubUnreachableError(
            f"the tokenizer {name_or_path!r} is not in the local Hugging Face cache; on a machine "
            f"with internet run `huggingface-cli download {name_or_path}` and copy the cache here, "
            "or use --model smollm2-135m (offline)."
        ) from None


# --------------------------------------------------------------------------------------------
# bench


def cmd_bench(args) -> int:
    from circuitgen import bench

    return bench.main_from_args(args)


# --------------------------------------------------------------------------------------------
# The parser


def build_parser() -> argparse.ArgumentParser:
    from circuitgen.models import KNOWN_MODELS, REFERENCE_MODEL
    from circuitgen.paths import shipped_circuits

    models_help = ("model name: " + ", ".join(KNOWN_MODELS)
                   + ", or a Hugging Face id (owner/name) in the local cache or reachable hub")
    parser = _Parser(prog=PROG, description="Score circuits on IOI prompts, generate prompt sets, "
                     "benchmark the scorer. Exit status 2 on bad input, with one error line.")
    from circuitgen import __version__

    parser.add_argument("--version", action="version", version=f"%(prog)s {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="{score,prompts,bench}", parser_class=_Parser)
    sub.required = True

    s = sub.add_parser("score", help="score a circuit on every prompt of a CSV",
                       description="Score a circuit spec on a prompt CSV: one row of scores per "
                       "prompt (logit_diff, circuit_logit_diff, faithfulness, sig_<class>, "
                       "ko_<class>, status), written to --out with a .meta.json sidecar.")
    s.add_argument("--model", default=REFERENCE_MODEL, help=f"{models_help} (default {REFERENCE_MODEL})")
    s.add_argument("--circuit", required=True, metavar="SPEC.yaml",
                   help="circuit spec: a YAML path, or the name of a spec shipped with circuitgen "
                   f"({', '.join(shipped_circuits()) or 'none found'})")
    s.add_argument("--prompts", required=True, metavar="P.csv",
                   help="prompt CSV with at least the task's columns (IOI: prompt, io, s; other "
                   "columns pass through)")
    s.add_argument("--task", default="ioi", metavar="NAME",
                   help="the task the prompts and the circuit are for (default ioi; registered: "
                   "circuitgen.task_names())")
    s.add_argument("--task-module", default=None, metavar="MODULE",
                   help="import this module first: one that registers a task of your own")
    s.add_argument("--out", required=True, metavar="S.csv", help="scores CSV to write (and S.meta.json)")
    s.add_argument("--ablation", choices=("mean", "resample", "zero"), default=None,
                   help="how heads outside the circuit are ablated (default: the spec's method)")
    s.add_argument("--reference", metavar="REF.csv", default=None,
                   help="mean ablation over the ABC counterparts of these prompts instead of the "
                   "scored prompts' own")
    s.add_argument("--batch-size", type=int, default=16, metavar="N", help="prompts per batch (default 16)")
    s.add_argument("--no-knockouts", action="store_true", help="skip the per-class knock-out columns")
    s.add_argument("--skip-invalid", action="store_true",
                   help="score the valid rows; keep invalid ones with their reason in status")
    s.add_argument("--device", default="cpu", help="torch device (default cpu)")
    s.add_argument("--seed", type=int, default=0,
                   help="seed for the ABC counterparts of hand-written prompts")
    s.add_argument("--no-progress", action="store_true", help="no progress bar on stderr")
    s.set_defaults(func=cmd_score)

    from circuitgen.ioi import ORDERS

    p = sub.add_parser("prompts", help="generate a task's prompt set (CSV + meta; default IOI)",
                       description="Generate a task's prompts with their counterfactual partners for "
                       "a model's tokenizer (IOI: ABC counterparts and token positions); words that are "
                       "not one token are dropped and counted in the .meta.json.")
    who = p.add_mutually_exclusive_group()
    who.add_argument("--model", default=REFERENCE_MODEL,
                     help=f"whose tokenizer to use (only the tokenizer is loaded; default {REFERENCE_MODEL})")
    who.add_argument("--tokenizer", default=None, metavar="NAME_OR_DIR",
                     help="a tokenizer folder, a known model name or a cached hub id")
    p.add_argument("-n", "--n", type=int, default=100, help="number of prompts (default 100)")
    p.add_argument("--seed", type=int, default=0, help="seed (default 0)")
    p.add_argument("--out", required=True, metavar="P.csv", help="CSV to write (and P.meta.json)")
    p.add_argument("--task", default="ioi", metavar="NAME",
                   help="the task whose prompts to generate (default ioi; registered: "
                   "circuitgen.task_names())")
    p.add_argument("--task-module", default=None, metavar="MODULE",
                   help="import this module first: one that registers a task of your own")
    p.add_argument("--templates", type=int, nargs="+", default=None, metavar="ID",
                   help="IOI only: template ids to use (default all)")
    p.add_argument("--orders", nargs="+", choices=ORDERS, default=None,
                   help="IOI only: name orders (default ABBA BABA)")
    p.set_defaults(func=cmd_prompts)

    from circuitgen import bench

    b = sub.add_parser("bench", help="performance ratios of the scorer and of patching",
                       description=bench.DESCRIPTION, formatter_class=argparse.RawDescriptionHelpFormatter)
    bench.add_arguments(b)
    b.set_defaults(func=cmd_bench)
    return parser


def main(argv: list[str] | None = None) -> int:
    """Entry point of ``circuitgen`` and ``python -m circuitgen``; returns the exit status."""
    parser = build_parser()
    args = parser.parse_args(argv)
    from circuitgen.circuits import CircuitSpecError
    from circuitgen.ioi import PromptError
    from circuitgen.models import ModelLoadError
    from circuitgen.task import AblationReferenceError, UnknownTaskError

    try:
        return int(args.func(args) or 0)
    except (InputError, ModelLoadError, CircuitSpecError, PromptError, AblationReferenceError,
            FileNotFoundError, PermissionError, IsADirectoryError, UnknownTaskError) as err:
        return _fail(str(err))
    except KeyboardInterrupt:
        print(f"{PROG}: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
