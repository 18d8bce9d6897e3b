"""Performance ratios of the circuit scorer and of patching, measured side by side in one run.

Every ratio compares two methods on the same model, the same prompts and the same padded batches,
timed in the same process with the repeats interleaved (A, B, A, B, ...) and the median taken, so
load from other processes hits both sides alike. Ratios, not seconds, are what carry over between
machines.

- **scorer / forward**: prompts per second of ``scorer.score_circuit`` (knock-outs off, then on;
  the mean-ablation reference computed once beforehand, as a sweep that reuses one reference
  does) over prompts per second of a bare ``model(tokens, attention_mask=mask)`` on the same
  padded batches. A scorer needs a clean and an ablated pass, so its limit is about 0.5; each
  knock-out class adds one more pass.
- **the variant runner alone** (knock-outs on): the scorer's keep masks run through
  ``ablation.run_variants`` (one tiled pass, every block per variant) and through
  ``resume.run_variants_resumed`` (each block once per distinct keep prefix), each over the bare
  forward, with the scorer's attention-signature hooks attached.
- **all-heads activation patching**: the project's fastest exact method
  (``circuitgen.patching.patch_all_heads``: tiled replicas, each layer's heads resumed from the
  corrupted residual at that layer, :mod:`circuitgen.resume`) over
  TransformerLens's ``get_act_patch_attn_head_out_all_pos`` (one forward per head): speed-up and
  the largest absolute difference of the two results.
- **attribution patching** (``circuitgen.patching.attribute_heads``: two forwards, one backward)
  against the exact fast method: speed-up and Pearson correlation over heads.
- **peak memory** (RSS) of scoring many prompts, measured in a fresh subprocess so the number is
  the scorer's alone (model load included, and the part scoring adds on top of the loaded model).
"""

from __future__ import annotations

import argparse
import dataclasses
import datetime as _dt
import json
import os
import pathlib
import platform
import resource
import statistics
import subprocess
import sys
import time
from collections.abc import Callable

# Imports of torch, transformers, pandas and the scoring modules sit inside the commands that
# use them: loading them takes seconds on 2 cores, so the command line, which imports this
# module to build its parser, stays fast.
from circuitgen.errors import InputError

DESCRIPTION = __doc__.split("\n\n", 1)[1] if __doc__ else ""
TARGETS = {
    "scorer_ko_off": 0.4,
    "scorer_ko_on": 0.35,
    "patch_speedup": 3.0,
    "patch_max_abs_diff": 1e-4,
    "memory_gib": 4.0,
}


# --------------------------------------------------------------------------------------------
# Timing


def interleaved(fns: dict[str, Callable[[], object]], repeats: int, warmup: bool = True
                ) -> dict[str, list[float]]:
    """Seconds of each function, ``repeats`` times, run in turn (A, B, A, B, ...).

    One untimed call of each comes first when ``warmup`` (first calls pay for allocation).
    """
    if warmup:
        for fn in fns.values():
            fn()
    times: dict[str, list[float]] = {k: [] for k in fns}
    for r in range(repeats):
        order = list(fns) if r % 2 == 0 else list(reversed(fns))  # neither side always goes first
        for k in order:
            start = time.perf_counter()
            fns[k]()
            times[k].append(time.perf_counter() - start)
    return times


def median(xs: list[float]) -> float:
    return float(statistics.median(xs))


# --------------------------------------------------------------------------------------------
# Circuits


def stand_in_spec(model_name: str, n_layers: int, n_heads: int, per_class: int = 3):
    """A stand-in IOI spec for a model that has none yet: every class of the GPT-2 spec, with a
    few heads each placed at the same relative depth (a head belongs to one class).

    For benchmarking only: its speed is what matters (one knock-out pass per class), not which
    heads it names.
    """
    from circuitgen import circuits

    template = circuits.load_circuit("gpt2-ioi")
    n_classes = len(template.classes)
    per_class = max(1, min(per_class, (n_layers * n_heads) // n_classes))
    used: set[tuple[int, int]] = set()
    classes = {}
    for cls in template.classes.values():
        heads = []
        for layer, head in cls.heads[:per_class]:
            start = round(layer * (n_layers - 1) / 11) * n_heads + head % n_heads
            for k in range(n_layers * n_heads):
                slot = (start + k) % (n_layers * n_heads)
                cand = (slot // n_heads, slot % n_heads)
                if cand not in used:
                    used.add(cand)
                    heads.append(cand)
                    break
        if heads:
            classes[cls.name] = dataclasses.replace(cls, heads=tuple(heads))
    return circuits.CircuitSpec(
        model=model_name, task="ioi", classes=classes,
        description="benchmark stand-in: the GPT-2 IOI classes with heads at the same relative depth",
        source=f"<stand-in spec for {model_name}>",
    )


def bench_spec(model_name: str, n_layers: int, n_heads: int, circuit: str | None = None):
    """The spec to benchmark: ``circuit`` if given, else data/circuits/<model>-ioi.yaml if it
    exists, else :func:`stand_in_spec`."""
    from circuitgen import circuits
    from circuitgen.paths import CIRCUITS_DIR

    if circuit is not None:
        return circuits.load_circuit(circuit)
    path = CIRCUITS_DIR / f"{model_name}-ioi.yaml"
    if path.exists():
        return circuits.load_circuit(path)
    return stand_in_spec(model_name, n_layers, n_heads)


# --------------------------------------------------------------------------------------------
# The measurements


def scorer_vs_forward(model, spec, df, batch_size: int, repeats: int, progress=print) -> dict:
    """prompts/s of score_circuit (knock-outs off and on) and of bare forward passes."""
    import torch

    from circuitgen import batch as B
    from circuitgen import scorer

    n = len(df)
    means = scorer.mean_reference(model, df, batch_size=batch_size)
    batches = [B.encode(model, df.iloc[sl]) for sl in B.chunks(n, batch_size)]

    @torch.no_grad()
    def forward():
        for b in batches:
            model(b.tokens, attention_mask=b.mask)

    def score(knockouts: bool, with_means: bool = True):
        return lambda: scorer.score_circuit(model, spec, df, means=means if with_means else None,
                                            batch_size=batch_size, knockouts=knockouts,
                                            progress=False)

    def runner(fn):
        """The scorer's per-batch variants (model, circuit, empty, one knock-out per class) and
        signature hooks, through one variant runner; no table assembly."""
        from circuitgen import ablation as A

        def run():
            for b, part in zip(batches, parts):
                keep = torch.stack([A.full_keep(model, b), A.circuit_keep(spec, model, b),
                                    A.empty_keep(model, b)]
                                   + [A.knockout_keep(c.heads, model, b) for c in spec.classes.values()])
                replace = A.replacement_fn("mean", b, means=means, groups=means.keys(part))
                fn(b, keep, replace, scorer._signature_hooks(spec, b, {}))
        return torch.no_grad()(run)

    from circuitgen import ablation as A
    from circuitgen import resume

    parts = [df.iloc[sl] for sl in B.chunks(n, batch_size)]
    tiled = lambda b, keep, replace, sig: A.end_logits(  # noqa: E731  (ablation.run_variants + signature hooks)
        model, b, A.ablation_hooks(keep, replace) + sig, tile=keep.shape[0])
    resumed = lambda b, keep, replace, sig: resume.run_variants_resumed(  # noqa: E731
        model, b, keep, replace, fwd_hooks=sig)
    progress(f"  timing bare forward vs scorer on {n} prompts, batch {batch_size}, "
             f"{repeats} repeats ...")
    times = interleaved({"forward": forward, "ko_off": score(False), "ko_on": score(True),
                         "ko_off_with_reference": score(False, with_means=False),
                         "runner_tiled": runner(tiled), "runner_resumed": runner(resumed)}, repeats)
    med = {k: median(v) for k, v in times.items()}
    rate = {k: n / v for k, v in med.items()}
    return {
        "n_prompts": n, "batch_size": batch_size, "repeats": repeats,
        "n_classes": len(spec.classes), "n_heads_in_circuit": len(spec.heads()), "spec": spec.source,
        "seconds": med, "prompts_per_s": rate,
        "scorer_ko_off": rate["ko_off"] / rate["forward"],
        "scorer_ko_on": rate["ko_on"] / rate["forward"],
        "scorer_ko_off_with_reference": rate["ko_off_with_reference"] / rate["forward"],
        "runner_tiled": rate["runner_tiled"] / rate["forward"],
        "runner_resumed": rate["runner_resumed"] / rate["forward"],
    }


class _quiet_tl:
    """Hide the progress bar TransformerLens's sweeps always draw."""

    def __enter__(self):
        from transformer_lens import patching as tlp

        self.tlp, self.saved = tlp, tlp.tqdm
        tlp.tqdm = lambda it, *a, **k: it

    def __exit__(self, *exc):
        self.tlp.tqdm = self.saved


def patching_bench(model, n_prompts: int, repeats: int, seed: int = 0, progress=print) -> dict:
    """Fast exact all-heads patching vs TransformerLens's per-head loop, and attribution."""
    from transformer_lens import patching as tlp

    from circuitgen import patching

    ps = patching.aligned_prompts(model, n_prompts, seed)
    s = patching.setup(model, ps.df)
    tokens, cache, metric = s.corrupted.tokens, s.clean_cache, s.metric
    out: dict[str, object] = {}

    def tl_loop():
        with _quiet_tl():
            out["tl"] = tlp.get_act_patch_attn_head_out_all_pos(model, tokens, cache, metric).cpu()

    def fast():
        out["fast"] = patching.patch_all_heads(model, tokens, cache, metric,
                                               corrupted_cache=s.corrupted_cache, progress=False)

    def attribution():
        out["attr"] = patching.attribute_heads(model, s.clean.tokens, s.corrupted.tokens, metric)

    n_heads = model.cfg.n_layers * model.cfg.n_heads
    progress(f"  timing all-heads patching ({n_heads} heads) on {len(s)} prompts of "
             f"{tokens.shape[1]} tokens, {repeats} repeats ...")
    # The per-head loop is the slow side; its first call is warm-up enough for the rest.
    times = interleaved({"tl_loop": tl_loop, "fast": fast, "attribution": attribution}, repeats,
                        warmup=False)
    med = {k: median(v) for k, v in times.items()}
    diff = patching.max_abs_diff(out["fast"], out["tl"])
    r, _ = patching.correlation(out["attr"].detach(), out["fast"])
    return {
        "n_prompts": len(s), "seq_len": int(tokens.shape[1]), "n_heads": n_heads, "repeats": repeats,
        "seconds": med,
        "patch_speedup": med["tl_loop"] / med["fast"],
        "patch_max_abs_diff": diff,
        "attribution_speedup_vs_fast": med["fast"] / med["attribution"],
        "attribution_speedup_vs_tl": med["tl_loop"] / med["attribution"],
        "attribution_pearson_r": r,
    }


def memory_bench(model_name: str, n_prompts: int, batch_size: int, circuit: str | None,
                 seed: int = 0, timeout: float | None = None) -> dict:
    """Peak RSS of scoring ``n_prompts`` in a fresh Python process (see :func:`_memory_child`)."""
    cmd = [sys.executable, "-m", "circuitgen.bench", "--memory-child", json.dumps({
        "model": model_name, "n_prompts": n_prompts, "batch_size": batch_size, "circuit": circuit,
        "seed": seed})]
    proc = subprocess.run(cmd, stdout=subprocess.PIPE, stderr=None, text=True, timeout=timeout)
    if proc.returncode != 0:
        raise RuntimeError(f"the memory subprocess failed with status {proc.returncode}: "
                           f"{proc.stdout[-2000:]}")
    return json.loads(proc.stdout.strip().splitlines()[-1])


def _rss_now() -> int:
    import psutil

    return psutil.Process().memory_info().rss


def _reset_peak() -> bool:
    """Reset this process's peak RSS (Linux >= 4.0: write 5 to /proc/self/clear_refs)."""
    try:
        pathlib.Path("/proc/self/clear_refs").write_text("5")
        return True
    except OSError:
        return False


def _peak_since_reset() -> int | None:
    try:
        for line in pathlib.Path("/proc/self/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) * 1024
    except OSError:
        pass
    return None


def _ru_maxrss() -> int:
    rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return rss if sys.platform == "darwin" else rss * 1024  # kB on Linux, bytes on macOS


def _memory_child(cfg: dict) -> dict:
    """Load the model, generate the prompts, score them end to end (the mean reference
    included, knock-outs on, as ``circuitgen score`` does) and report peak RSS in bytes."""
    import gc

    import torch

    from circuitgen import ioi, load_model, scorer

    torch.set_grad_enabled(False)
    model = load_model(cfg["model"])
    spec = bench_spec(cfg["model"], model.cfg.n_layers, model.cfg.n_heads, cfg.get("circuit"))
    df = ioi.generate_prompts(model, n=cfg["n_prompts"], seed=cfg.get("seed", 0)).df
    gc.collect()
    peak_load = _ru_maxrss()
    rss_before = _rss_now()
    reset = _reset_peak()
    start = time.perf_counter()
    scores = scorer.score_circuit(model, spec, df, batch_size=cfg["batch_size"], progress=True)
    seconds = time.perf_counter() - start
    peak_scoring = _peak_since_reset() if reset else None
    # Resetting the peak (clear_refs) also resets what getrusage reports afterwards, so the
    # whole-process peak is the largest of the readings (the model load can be the peak; after
    # the reset, getrusage can lag behind VmHWM, the peak while scoring).
    peak_total = max(peak_load, _ru_maxrss(), peak_scoring or 0)
    return {
        "n_prompts": int(len(scores)), "n_scored": int((scores.status == "ok").sum()),
        "batch_size": cfg["batch_size"], "n_classes": len(spec.classes), "seconds": seconds,
        "peak_rss_bytes": peak_total, "peak_rss_at_load_bytes": peak_load,
        "rss_before_scoring_bytes": rss_before,
        "peak_rss_while_scoring_bytes": peak_scoring if peak_scoring is not None else peak_total,
        "peak_reset": reset,
    }


# --------------------------------------------------------------------------------------------
# Report


GIB = 1024 ** 3


@dataclasses.dataclass
class Row:
    label: str
    value: float | None
    fmt: str
    target: str = "-"
    met: bool | None = None
    note: str = ""

    def cells(self) -> list[str]:
        value = "n/a" if self.value is None else format(self.value, self.fmt)
        status = "" if self.met is None else ("met" if self.met else "MISSED")
        return [self.label, value, self.target, status]


def rows_from(results: dict) -> list[Row]:
    rows: list[Row] = []
    sc, pa, mem = results.get("scorer"), results.get("patching"), results.get("memory")
    if sc:
        t = TARGETS["scorer_ko_off"]
        rows.append(Row("scorer / forward throughput, knock-outs off", sc["scorer_ko_off"], ".2f",
                        f">= {t}", sc["scorer_ko_off"] >= t))
        t = TARGETS["scorer_ko_on"]
        rows.append(Row(f"scorer / forward throughput, knock-outs on ({sc['n_classes']} classes)",
                        sc["scorer_ko_on"], ".2f", f">= {t}", sc["scorer_ko_on"] >= t))
        rows.append(Row("scorer / forward, knock-outs off, mean reference included",
                        sc["scorer_ko_off_with_reference"], ".2f"))
        if "runner_resumed" in sc:
            rows.append(Row("  knock-outs on, variant runner only: run_variants (tiled) / forward",
                            sc["runner_tiled"], ".2f", f">= {t}", sc["runner_tiled"] >= t))
            rows.append(Row("  knock-outs on, variant runner only: run_variants_resumed / forward",
                            sc["runner_resumed"], ".2f", f">= {t}", sc["runner_resumed"] >= t))
    if pa:
        t = TARGETS["patch_speedup"]
        rows.append(Row("all-heads patching: fast exact / TransformerLens loop, speed-up",
                        pa["patch_speedup"], ".1f", f">= {t:g}x", pa["patch_speedup"] >= t))
        t = TARGETS["patch_max_abs_diff"]
        rows.append(Row("all-heads patching: largest |fast - TransformerLens|",
                        pa["patch_max_abs_diff"], ".1e", f"<= {t:.0e}", pa["patch_max_abs_diff"] <= t))
        rows.append(Row("attribution patching / fast exact, speed-up",
                        pa["attribution_speedup_vs_fast"], ".1f"))
        rows.append(Row("attribution patching vs exact, Pearson r", pa["attribution_pearson_r"], ".3f"))
    if mem:
        t = TARGETS["memory_gib"]
        peak = mem["peak_rss_bytes"] / GIB
        rows.append(Row(f"peak RSS scoring {mem['n_prompts']} prompts (GiB, whole process)", peak,
                        ".2f", f"< {t:g}", peak < t))
        added = (mem["peak_rss_while_scoring_bytes"] - mem["rss_before_scoring_bytes"]) / GIB
        rows.append(Row("  of which scoring adds on top of the loaded model (GiB)", added, ".2f"))
    return rows


def format_table(rows: list[Row]) -> str:
    head = ["measure", "value", "target", ""]
    cells = [head] + [r.cells() for r in rows]
    widths = [max(len(c[i]) for c in cells) for i in range(len(head))]
    sep = "  "
    lines = [sep.join(c.ljust(w) for c, w in zip(cells[0], widths)).rstrip(),
             sep.join("-" * w for w in widths)]
    for c in cells[1:]:
        lines.append(sep.join([c[0].ljust(widths[0]), c[1].rjust(widths[1]), c[2].ljust(widths[2]),
                               c[3]]).rstrip())
    return "\n".join(lines)


def machine() -> dict:
    import torch

    return {
        "date": _dt.date.today().isoformat(), "cpus": os.cpu_count(),
        "torch_threads": torch.get_num_threads(), "cuda": torch.cuda.is_available(),
        "python": platform.python_version(), "torch": torch.__version__,
        "platform": platform.platform(), "load_average_start": _loadavg(),
    }


def _loadavg() -> list[float] | None:
    """1, 5 and 15-minute load averages: other processes on the machine skew absolute timings."""
    try:
        return [round(x, 2) for x in os.getloadavg()]
    except OSError:
        return None


# --------------------------------------------------------------------------------------------
# Command line (``circuitgen bench``)


def add_arguments(p: argparse.ArgumentParser) -> None:
    from circuitgen.models import REFERENCE_MODEL

    p.add_argument("--model", default=REFERENCE_MODEL, help=f"model (default {REFERENCE_MODEL})")
    p.add_argument("--circuit", default=None, metavar="SPEC.yaml",
                   help="circuit spec (default data/circuits/<model>-ioi.yaml if it exists, else a "
                   "stand-in built from the GPT-2 classes)")
    p.add_argument("--n-prompts", type=int, default=64, metavar="N",
                   help="prompts for the throughput ratios (default 64)")
    p.add_argument("--batch-size", type=int, default=16, metavar="N", help="batch size (default 16)")
    p.add_argument("--repeats", type=int, default=3, metavar="N",
                   help="timed repeats of each method, interleaved; the median is used (default 3)")
    p.add_argument("--patch-prompts", type=int, default=8, metavar="N",
                   help="prompts for the patching comparison (default 8; 0 skips it)")
    p.add_argument("--memory-prompts", type=int, default=1000, metavar="N",
                   help="prompts scored in the peak-memory subprocess (default 1000; 0 skips it)")
    p.add_argument("--seed", type=int, default=0, help="prompt seed (default 0)")
    p.add_argument("--json", default=None, metavar="OUT.json", help="also write every figure here")
    p.add_argument("--strict", action="store_true", help="exit with status 1 if a target is missed")


def main_from_args(args) -> int:
    import torch

    from circuitgen import ioi, load_model

    for opt in ("n_prompts", "batch_size", "repeats"):
        if getattr(args, opt) < 1:
            raise InputError(f"--{opt.replace('_', '-')} must be at least 1.")
    say = lambda msg: print(msg, file=sys.stderr, flush=True)  # noqa: E731
    info = machine()
    say(f"circuitgen bench: {args.model}, {info['cpus']} CPUs, {info['torch_threads']} torch "
        f"threads, {'CUDA available (not used)' if info['cuda'] else 'no GPU'}")
    torch.set_grad_enabled(False)
    model = load_model(args.model)
    spec = bench_spec(args.model, model.cfg.n_layers, model.cfg.n_heads, args.circuit)
    from circuitgen.circuits import validate_for_model

    validate_for_model(spec, model.cfg.n_layers, model.cfg.n_heads, args.model)
    df = ioi.generate_prompts(model, n=args.n_prompts, seed=args.seed).df
    results: dict = {"machine": info, "model": args.model, "spec": spec.source}
    results["scorer"] = scorer_vs_forward(model, spec, df, args.batch_size, args.repeats, say)
    if args.patch_prompts > 0:
        results["patching"] = patching_bench(model, args.patch_prompts, args.repeats, args.seed, say)
    del model
    if args.memory_prompts > 0:
        say(f"  peak memory: scoring {args.memory_prompts} prompts in a subprocess ...")
        results["memory"] = memory_bench(args.model, args.memory_prompts, args.batch_size,
                                         args.circuit, args.seed)

    info["load_average_end"] = _loadavg()
    rows = rows_from(results)
    print(report(results, rows))
    if args.json:
        path = pathlib.Path(args.json)
        path.parent.mkdir(parents=True, exist_ok=True)
        results["rows"] = [dataclasses.asdict(r) for r in rows]
        path.write_text(json.dumps(results, indent=2, default=str) + "\n")
    missed = [r for r in rows if r.met is False]
    return 1 if (args.strict and missed) else 0


def _fmt_load(load) -> str:
    return "/".join(f"{x:.1f}" for x in load) if load else "n/a"


def report(results: dict, rows: list[Row]) -> str:
    m = results["machine"]
    lines = [f"circuitgen bench  {m['date']}  model {results['model']}  "
             f"({m['cpus']} CPUs, {m['torch_threads']} torch threads, "
             f"{'GPU present, unused' if m['cuda'] else 'no GPU'}; torch {m['torch']}; load "
             f"average {_fmt_load(m.get('load_average_start'))} at start, "
             f"{_fmt_load(m.get('load_average_end'))} at end)"]
    sc = results.get("scorer")
    if sc:
        r = sc["prompts_per_s"]
        lines.append(f"scorer: {sc['n_prompts']} prompts, batch {sc['batch_size']}, median of "
                     f"{sc['repeats']}; spec {sc['spec']} ({sc['n_heads_in_circuit']} heads, "
                     f"{sc['n_classes']} classes)")
        lines.append(f"  prompts/s: forward {r['forward']:.1f}, scorer knock-outs off "
                     f"{r['ko_off']:.1f}, on {r['ko_on']:.1f}, off with the mean reference "
                     f"{r['ko_off_with_reference']:.1f}; variant runner alone (knock-outs on): "
                     f"tiled {r['runner_tiled']:.1f}, resumed {r['runner_resumed']:.1f}")
    pa = results.get("patching")
    if pa:
        s = pa["seconds"]
        lines.append(f"patching: {pa['n_heads']} heads, {pa['n_prompts']} prompts of "
                     f"{pa['seq_len']} tokens, median of {pa['repeats']}: TransformerLens loop "
                     f"{s['tl_loop']:.2f} s, fast exact {s['fast']:.2f} s, attribution "
                     f"{s['attribution']:.3f} s")
    mem = results.get("memory")
    if mem:
        lines.append(f"memory: {mem['n_prompts']} prompts scored end to end in a subprocess in "
                     f"{mem['seconds']:.0f} s (knock-outs on); peak RSS at model load "
                     f"{mem['peak_rss_at_load_bytes'] / GIB:.2f} GiB, before scoring "
                     f"{mem['rss_before_scoring_bytes'] / GIB:.2f} GiB, while scoring "
                     f"{mem['peak_rss_while_scoring_bytes'] / GIB:.2f} GiB")
    lines += ["", format_table(rows)]
    return "\n".join(lines)


if __name__ == "__main__":
    if len(sys.argv) == 3 and sys.argv[1] == "--memory-child":
        print(json.dumps(_memory_child(json.loads(sys.argv[2]))))
        sys.exit(0)
    sys.exit("run the benchmark as: circuitgen bench [options] (or python -m circuitgen bench)")
