"""Week 13 as a report: faithful circuits, found three ways.

The chapter (``notebooks/w13-faithful-circuits``) and ``scripts/week13.py`` share this module:

- :func:`discover_all` runs each discovery method on its discovery sets (:func:`circuitgen.
  faithful.discover`, cached under ``data/discovery/``);
- :func:`curves_and_smallest` scores every method's top-k circuits against size on the
  evaluation prompts (:func:`circuitgen.faithful.size_curves`), finds each method's smallest
  circuit in the target band (:func:`circuitgen.faithful.smallest`) and scores the chosen ones
  (:func:`circuitgen.faithful.circuit_scores`), all cached;
- :func:`write_specs` writes the chosen circuits as circuit specs for the chapters that follow;
- :func:`run` does all of it for the chapter, reads what each head of the circuits does
  (:mod:`circuitgen.head_roles`) and returns a :class:`FaithfulReport`, whose methods give each
  section the chapter shows (text for the cells nbval checks, tables, figures) and
  :meth:`FaithfulReport.findings`, every value the chapter's prose and the book's introduction
  glue.

Nothing here is fingerprinted: the caches' inputs are what :mod:`circuitgen.faithful` records.
"""

from __future__ import annotations

import functools
import pathlib
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

import matplotlib.pyplot as plt
import pandas as pd

from circuitgen import batch as B
from circuitgen import circuits as CS
from circuitgen import curves, faithful, head_roles, paths, plots, runtime, splits
from circuitgen import nodes as N
from circuitgen import tables as T

MIN_ATTENTION = 0.2  # fixed with the role rule: weaker than this, no attention signature is a role
N_PROBE = 48  # evaluation prompts the heads' roles are measured on
MID_INDEX = 5  # curves.MIB_FRACTIONS[5]: the 5% grid size, where the methods are compared
DIP_INDEX = 2  # curves.MIB_FRACTIONS[2]: the 0.5% grid size, where the curves dip
SPEC_DATE = "2026-11-26"  # the date week 13's circuits were found (recorded in their specs)


def discover_all(model, sets: splits.Splits, plan: dict[str, Sequence[int]], *,
                 config: faithful.MethodConfig | None = None, out_dir: str | pathlib.Path | None = None,
                 log: Callable | None = print, progress: Callable[[str], None] | None = None
                 ) -> dict[tuple[str, str], T.ResultTable]:
    """``{(method, "set<i>"): node score table}`` of each method of ``plan`` on the discovery sets
    it names (``{method: [i, ...]}``, 1-based), with ``config``'s parameters (default
    :class:`circuitgen.faithful.MethodConfig`'s), cached under ``out_dir``."""
    config = config or faithful.MethodConfig()
    runs = {}
    for m, numbers in plan.items():
        for i in numbers:
            t0 = time.perf_counter()
            runs[(m, f"set{i}")] = faithful.discover(model, sets.discovery[i - 1].df, m, f"set{i}",
                                                     config=config, out_dir=out_dir, log=log)
            if progress:
                progress(f"{m} set{i}: {time.perf_counter() - t0:.0f} s")
    return runs


@dataclass
class Curves:
    """The size curves, each method's smallest in-band circuit and the chosen circuits' scores."""

    curve: pd.DataFrame  # per-prompt scores of every curve circuit (:func:`circuitgen.faithful.size_curves`)
    found: pd.DataFrame  # method, k (missing when no size reached the band), bisection points
    chosen: dict[str, list[N.Node]]  # {method: its smallest in-band circuit}
    scored: pd.DataFrame  # the chosen circuits and the week-6 circuit on the evaluation prompts


def curves_and_smallest(model, evaluation: pd.DataFrame, rank1: dict[str, Sequence[N.Node]],
                        week6: Sequence[N.Node], *, n_random: int = 2,
                        out_dir: str | pathlib.Path | None = None, log: Callable | None = print) -> Curves:
    """Size curves of each method's set-1 ranking (with random circuits and the week-6 circuit),
    the smallest circuit in the target band per method, and the chosen circuits scored."""
    curve = faithful.size_curves(model, evaluation, rank1, n_random=n_random,
                                 extra={"week 6": list(week6)}, out_dir=out_dir, log=log).df
    found = faithful.smallest(model, evaluation, rank1, curve, out_dir=out_dir, log=log).df
    chosen = {r.method: list(rank1[r.method][: int(r.k)]) for r in found.itertuples() if pd.notna(r.k)}
    scored = faithful.circuit_scores(model, evaluation, {**chosen, "week 6": list(week6)},
                                     "chosen-circuits", out_dir=out_dir, log=log).df
    return Curves(curve, found, chosen, scored)


def write_specs(model_name: str, chosen: dict[str, Sequence[N.Node]], found: pd.DataFrame,
                score_of: dict[str, dict[str, float]], *, config: faithful.MethodConfig | None = None,
                n_discovery: int = 200, output_dir: str | pathlib.Path | None = None) -> list[str]:
    """Each chosen circuit as a circuit spec (per-head positions, provenance), written where
    :func:`circuitgen.circuits.spec_file` says (``data/circuits/`` for the reference run); the
    names written."""
    config = config or faithful.MethodConfig()
    written = []
    for m, circ in chosen.items():
        row = found.set_index("method").loc[m]
        params = config.for_method(m)
        # the circuit is the method's top k: its threshold is the |score| of the k-th node unless the
        # method has a threshold of its own (pruning's relative τ, path patching's effect threshold)
        kth = abs(score_of[m][circ[-1].label])
        spec = CS.spec_from_nodes(
            circ, model_name, description=f"smallest top-k {m} circuit with normalised faithfulness in "
            f"{list(curves.TARGET_BAND)} on the week-13 evaluation set (mean ablation)",
            provenance={"method": m, "threshold": float(params.get("threshold", kth)),
                        "parameters": params, "discovery_set": "set1",
                        "n_prompts": int(params.get("n_prompts", n_discovery)), "date": SPEC_DATE,
                        "k": int(row.k), "selection": "top k of the method's ranking",
                        "found_by": "notebooks/w13-faithful-circuits"})
        path = CS.spec_file(model_name, m, output_dir)
        spec.to_yaml(path)
        # nodes() lists roles in ROLES order (node_key), not alphabetically as Node's own ordering does
        if CS.load_circuit(path).nodes() != sorted(circ, key=CS.node_key):
            raise AssertionError(f"{path}: the spec read back is not the circuit written")
        written.append(path.name)
    return written


def held_out_table(scored: pd.DataFrame) -> pd.DataFrame:
    """The chosen circuits' normalised faithfulness on the evaluation prompts, split by whether
    their template was seen in discovery (``templates``: seen / held out), per ablation."""
    rows = []
    for (abl, circ, held), g in scored.groupby(["ablation", "circuit", "held_out_template"]):
        s = curves.with_intervals(g, curves.summarise(g)).iloc[0]
        rows.append({"ablation": abl, "circuit": circ, "templates": "held out" if held else "seen",
                     "n": int(s.n_prompts), "normalised": s.normalised, "lo": s.normalised_lo,
                     "hi": s.normalised_hi})
    return pd.DataFrame(rows)


def _head_key(h: str) -> tuple[int, ...]:
    return tuple(map(int, h.split(".")))


def heads_on_every_set(freq: pd.DataFrame, sets_per_method: dict[str, int]
                       ) -> dict[str, tuple[list[str], list[str]]]:
    """Per method of a :func:`circuitgen.faithful.selection_frequency` table: the nodes every one
    of its discovery sets chose, and their heads (by layer, then head)."""
    out = {}
    for m in sorted(set(freq.method)):
        nodes_all = freq[(freq.method == m) & (freq.n_sets == sets_per_method[m])].node.tolist()
        heads = sorted({n.split("@")[0] for n in nodes_all}, key=_head_key)
        out[m] = (nodes_all, heads)
    return out


def _key(name: str) -> str:
    return name.replace("-", "_").replace(" ", "_")


@dataclass
class FaithfulReport:
    """Week 13's discovery runs, curves, chosen circuits and head roles, and the sections drawn
    from them."""

    model_name: str
    n_layers: int
    n_heads: int
    methods: list[str]
    sets_per_method: dict[str, int]
    stability_fractions: list[float]
    n_discovery: int
    sets: splits.Splits
    week6: CS.CircuitSpec
    runs: dict[tuple[str, str], T.ResultTable]
    curves: Curves
    roles: pd.DataFrame  # head_roles.head_roles of every head shown, with the MIN_ATTENTION rule
    config: faithful.MethodConfig = field(default_factory=faithful.MethodConfig)
    written: list[str] = field(default_factory=list)  # the spec files this run wrote
    cache_log: list[str] = field(default_factory=list)  # which cached tables were reused or made

    # ---- sizes and rankings
    @property
    def n_nodes(self) -> int:
        return self.n_layers * self.n_heads * len(N.NODE_ROLES)

    @property
    def evaluation(self) -> pd.DataFrame:
        return self.sets.evaluation.df

    @functools.cached_property
    def rankings(self) -> dict[tuple[str, str], list[N.Node]]:
        return {key: faithful.ranking(run.df) for key, run in self.runs.items()}

    @property
    def rank1(self) -> dict[str, list[N.Node]]:
        return {m: self.rankings[(m, "set1")] for m in self.methods}

    @property
    def chosen(self) -> dict[str, list[N.Node]]:
        return self.curves.chosen

    @property
    def mid(self) -> int:
        """The 5% grid size, where the methods are compared at equal size."""
        return curves.counts_for(self.n_nodes)[MID_INDEX]

    @property
    def at_mid(self) -> dict[str, list[N.Node]]:
        return {m: self.rank1[m][: self.mid] for m in self.methods}

    @functools.cached_property
    def score_of(self) -> dict[str, dict[str, float]]:
        """{method: {node label: score}} on discovery set 1."""
        return {m: dict(zip(self.runs[(m, "set1")].df.node, self.runs[(m, "set1")].df.score))
                for m in self.methods}

    # ---- prompts and discovery
    def split_line(self) -> str:
        info = self.sets.describe()
        return (f"discovery: {info['n_discovery']} prompts, {info['n_discovery_names']} names; "
                f"evaluation: {info['n_eval']} prompts, {info['n_eval_names']} other names, "
                f"held-out templates {info['held_out_templates']} "
                f"({int(self.evaluation.held_out_template.sum())} prompts)")

    def cost(self) -> pd.DataFrame:
        """Seconds each discovery run took (as recorded when it was computed), method x set."""
        cost = pd.DataFrame([{"method": m, "set": s, "seconds": r.meta.get("seconds")}
                             for (m, s), r in self.runs.items()])
        return cost.pivot(index="method", columns="set", values="seconds")

    def drift(self) -> pd.DataFrame:
        """Exact pruning's threshold and how far the pruned model's metric drifted, per set."""
        return pd.DataFrame([{"set": s, "tau": r.df.tau.iloc[0], "full model": r.df.full_metric.iloc[0],
                              "pruned": r.df.final_metric.iloc[0], "nodes kept": int(r.df.n_kept.iloc[0])}
                             for (m, s), r in self.runs.items() if m == "pruning"])

    def drift_text(self) -> str:
        return self.drift().round(3).to_string(index=False)

    def top_text(self, k: int = 10) -> str:
        top = pd.DataFrame({m: [n.label for n in self.rank1[m][:k]] for m in self.methods})
        return top.to_string()

    # ---- curves
    @functools.cached_property
    def summary(self) -> pd.DataFrame:
        """Normalised faithfulness (95% interval) of every curve circuit, per ablation."""
        return pd.concat([curves.with_intervals(g, curves.summarise(g, by=["circuit", "family", "k"]))
                          .assign(ablation=a) for a, g in self.curves.curve.groupby("ablation", sort=False)],
                         ignore_index=True)

    def size_curve_figure(self):
        s_all = self.summary
        fig, axes = plt.subplots(1, 2, figsize=(13, 4.6), sharey=True)
        for ax, abl in zip(axes, ["mean", "resample"]):
            s = s_all[s_all.ablation == abl]
            plots.size_curve(ax, s[s.family.isin(self.methods)], n_nodes=self.n_nodes,
                             random=s[s.family.str.startswith("random")], points=s[s.family == "week 6"],
                             title=f"{abl} ablation, {len(self.evaluation)} held-out prompts "
                                   f"({self.model_name})")
        axes[0].set_ylabel("normalised faithfulness (F(C) − F(∅)) / (F(M) − F(∅)), ratio")
        axes[1].set_ylabel("")
        fig.suptitle(f"Faithfulness against circuit size, {len(self.methods)} discovery methods "
                     f"({self.model_name}, {self.n_nodes} head nodes)")
        fig.tight_layout()
        return fig

    @functools.cached_property
    def areas(self) -> pd.DataFrame:
        """MIB's CPR and CMD of each method's curve, per ablation."""
        rows = []
        s = self.summary
        for (abl, fam), g in s[s.family.isin(self.methods)].groupby(["ablation", "family"]):
            g = g.sort_values("k")
            rows.append({"ablation": abl, "method": fam,
                         **curves.area_summaries(g.k / self.n_nodes, g.normalised)})
        return pd.DataFrame(rows).pivot(index="method", columns="ablation")

    def areas_text(self) -> str:
        return self.areas.round(2).to_string()

    # ---- the chosen circuits
    @functools.cached_property
    def best(self) -> pd.DataFrame:
        """The chosen circuits' and the week-6 circuit's normalised faithfulness, per ablation."""
        return pd.concat([curves.with_intervals(g, curves.summarise(g)).assign(ablation=a)
                          for a, g in self.curves.scored.groupby("ablation", sort=False)], ignore_index=True)

    @functools.cached_property
    def chosen_table(self) -> pd.DataFrame:
        """Per method: the chosen size k, its fraction of the head nodes, its heads, and its
        normalised faithfulness (95% interval) under each ablation."""
        table = self.curves.found.set_index("method")[["k"]].copy()
        table["fraction"] = table.k / self.n_nodes
        table["heads"] = [len(N.heads_of(self.chosen[m])) if m in self.chosen else pd.NA for m in table.index]
        for abl in ("mean", "resample"):
            b = self.best[self.best.ablation == abl].set_index("circuit")
            for col, name in (("normalised", abl), ("normalised_lo", f"{abl} lo"),
                              ("normalised_hi", f"{abl} hi")):
                table[name] = table.index.map(b[col])
        return table

    @property
    def week6_scores(self) -> pd.DataFrame:
        return self.best[self.best.circuit == "week 6"].set_index("ablation")

    def chosen_text(self) -> str:
        w6, spec = self.week6_scores, self.week6
        return (self.chosen_table.round(3).to_string() + "\n"
                f"week-6 circuit ({len(spec.nodes())} nodes, {len(spec.heads())} heads): normalised "
                f"{w6.loc['mean', 'normalised']:.2f} (95% CI {w6.loc['mean', 'normalised_lo']:.2f} to "
                f"{w6.loc['mean', 'normalised_hi']:.2f}) under mean ablation")

    @functools.cached_property
    def by_template(self) -> pd.DataFrame:
        return held_out_table(self.curves.scored)

    def by_template_text(self) -> str:
        t = self.by_template
        return t[t.ablation == "mean"].drop(columns="ablation").round(2).to_string(index=False)

    def circuits_figure(self):
        """Each chosen circuit, the week-6 circuit and each method's top-k at the 5% size, drawn
        as (position, layer) graphs."""
        n = len(self.methods) + 1
        fig, axes = plt.subplots(2, n, figsize=(4.2 * n, 11), sharey=True)
        for ax, m in zip(axes[0], self.methods):
            if m in self.chosen:
                c = self.chosen[m]
                plots.circuit_graph(ax, c, self.n_layers, weights=self.score_of[m],
                                    title=f"{m}, chosen: {len(c)} nodes, {len(N.heads_of(c))} heads")
            else:
                ax.set_title(f"{m}: no circuit in the band")
                ax.axis("off")
        w6 = self.week6
        plots.circuit_graph(axes[0, -1], w6.nodes(), self.n_layers,
                            title=f"week 6: {len(w6.nodes())} nodes, {len(w6.heads())} heads")
        for ax, m in zip(axes[1], self.methods):
            plots.circuit_graph(ax, self.at_mid[m], self.n_layers, weights=self.score_of[m],
                                title=f"{m}, top {self.mid}: {len(N.heads_of(self.at_mid[m]))} heads")
        axes[1, -1].axis("off")
        fig.suptitle(f"Circuits as (role position, layer) graphs ({self.model_name}, discovery set 1)")
        fig.tight_layout()
        return fig

    def written_line(self) -> str:
        return f"written: {self.written or 'none (no method reached the target band)'}"

    # ---- agreement and stability
    @property
    def sizes(self) -> list[int]:
        return [int(f * self.n_nodes) for f in self.stability_fractions]

    @functools.cached_property
    def across(self) -> pd.DataFrame:
        """Overlap of equal-size circuits of two methods on discovery set 1."""
        return faithful.stability({("methods", m): self.rank1[m] for m in self.methods}, self.sizes)

    def across_text(self) -> str:
        return (self.across.pivot(index="pair", columns="k", values=["jaccard", "head_jaccard"])
                .round(2).to_string())

    @property
    def multi(self) -> dict[tuple[str, str], list[N.Node]]:
        """The rankings of the methods that ran on more than one discovery set."""
        return {key: r for key, r in self.rankings.items() if self.sets_per_method[key[0]] > 1}

    @functools.cached_property
    def stability(self) -> pd.DataFrame:
        """Overlap of equal-size circuits of one method on two discovery sets."""
        return faithful.stability(self.multi, self.sizes)

    def stability_text(self) -> str:
        stab = self.stability
        if not len(stab):
            return "no method ran on more than one discovery set"
        return (stab.groupby(["method", "k"])[["jaccard", "head_jaccard"]].agg(["mean", "min", "max"])
                .round(2).to_string())

    @property
    def k_stab(self) -> int:
        return self.sizes[1]

    def frequency_text(self) -> str:
        """Per method, the nodes (of its top :attr:`k_stab`) every discovery set chose, and their heads."""
        multi = self.multi
        freq = (faithful.selection_frequency(multi, self.k_stab) if multi
                else pd.DataFrame(columns=["method", "node", "n_sets"]))
        lines = [f"{m}: {len(nodes_all)} of {self.k_stab} nodes chosen on all "
                 f"{self.sets_per_method[m]} sets; their heads: {', '.join(heads)}"
                 for m, (nodes_all, heads) in heads_on_every_set(freq, self.sets_per_method).items()]
        return "\n".join(lines) or "no method ran on more than one discovery set"

    # ---- what the heads do
    @property
    def members(self) -> dict[str, set[str]]:
        """The heads ("layer.head") of each method's top :attr:`mid` nodes and of the week-6 circuit."""
        members = {f"{m} top {self.mid}": {f"{l}.{h}" for l, h in N.heads_of(c)}
                   for m, c in self.at_mid.items()}
        members["week 6"] = {f"{l}.{h}" for l, h in self.week6.heads()}
        return members

    @property
    def shared_heads(self) -> list[str]:
        """Heads in every method's top :attr:`mid` nodes."""
        members = self.members
        shared = set.intersection(*(members[f"{m} top {self.mid}"] for m in self.methods))
        return sorted(shared, key=_head_key)

    def role_counts(self) -> pd.DataFrame:
        return pd.DataFrame({m: self.roles.loc[sorted(hs)].role.value_counts()
                             for m, hs in self.members.items()}).fillna(0).astype(int)

    def roles_text(self) -> str:
        lines = [self.role_counts().to_string(),
                 "heads in every method's circuit: "
                 + (", ".join(f"{h} ({self.roles.loc[h, 'role']})" for h in self.shared_heads) or "none")]
        for m, circ in self.chosen.items():
            lines.append(f"{m}, chosen circuit: "
                         + ", ".join(f"{n.label} ({self.roles.loc[f'{n.layer}.{n.head}', 'role']})"
                                     for n in circ))
        return "\n".join(lines)

    def chosen_roles(self) -> pd.DataFrame:
        """The measurements behind the roles of the chosen circuits' heads (first method first)."""
        heads = list(dict.fromkeys(f"{n.layer}.{n.head}" for circ in self.chosen.values() for n in circ))
        return self.roles.loc[heads].round(2)

    # ---- the values the prose quotes
    def findings(self) -> dict[str, int | float | str]:
        """Every value the chapter's prose and the book's introduction glue, by glue name."""
        ev, table, s, n_nodes, mid = self.evaluation, self.chosen_table, self.summary, self.n_nodes, self.mid
        found: dict[str, int | float | str] = {
            "w13_n_eval": len(ev), "w13_n_held_out": int(ev.held_out_template.sum()), "w13_n_nodes": n_nodes,
            "w13_stab_k": self.k_stab, "w13_min_attention": MIN_ATTENTION, "w13_n_probe": N_PROBE,
            "w13_n_discovery": self.n_discovery, "w13_prune_prompts": self.config.prune_prompts}
        for m in self.methods:
            row, k = table.loc[m], _key(m)
            found[f"w13_{k}_k"] = "none" if pd.isna(row.k) else f"{int(row.k)}"
            found[f"w13_{k}_pct"] = "–" if pd.isna(row.k) else f"{100 * row.k / n_nodes:.1f}%"
            found[f"w13_{k}_heads"] = "–" if pd.isna(row.k) else f"{int(row.heads)}"
            for col in ("mean", "mean lo", "mean hi", "resample", "resample lo", "resample hi"):
                v = row.get(col, float("nan"))
                found[f"w13_{k}_{_key(col)}"] = "–" if pd.isna(v) else f"{v:.2f}"
            for abl in ("mean", "resample"):
                for area in ("CPR", "CMD"):
                    found[f"w13_{k}_{abl}_{area}"] = float(self.areas.loc[m, (area, abl)])
        w6 = self.week6_scores
        for col in ("normalised", "normalised_lo", "normalised_hi"):
            found[f"w13_week6_{col}"] = float(w6.loc["mean", col])
        found["w13_week6_nodes"] = len(self.week6.nodes())
        mean = s[s.ablation == "mean"]
        found["w13_mid_k"] = mid
        found["w13_random_mid"] = float(mean[mean.family.str.startswith("random") & (mean.k == mid)]
                                        .normalised.max())
        for m in self.methods:
            found[f"w13_{_key(m)}_mid"] = float(mean[(mean.family == m) & (mean.k == mid)].normalised.iloc[0])
        top_node = self.rank1[self.methods[0]][0]
        top_head = f"{top_node.layer}.{top_node.head}"
        found["w13_top_node"] = top_node.label
        for col in ("END->S2", "END->IO", "copy_score", "neg_copy_score"):
            found[f"w13_top_{_key(col.replace('->', '_to_'))}"] = float(self.roles.loc[top_head, col])
        second = self.rank1[self.methods[0]][1]
        found["w13_second_node"] = second.label
        found["w13_second_max_attention"] = float(
            self.roles.loc[f"{second.layer}.{second.head}", list(head_roles.SIGNATURES)].max())
        found["w13_n_shared_heads"] = len(self.shared_heads)
        bt = self.by_template
        for r in bt[bt.ablation == "mean"].itertuples():
            tag = f"w13_{_key(r.circuit)}_{'heldout' if r.templates == 'held out' else 'seen'}"
            for suffix, v in (("", r.normalised), ("_lo", r.lo), ("_hi", r.hi)):
                found[tag + suffix] = float(v)
        dip_k = curves.counts_for(n_nodes)[DIP_INDEX]
        found["w13_dip_k"] = dip_k
        for m in self.methods:
            on_curve = mean[mean.family == m]
            found[f"w13_{_key(m)}_dip"] = float(on_curve[on_curve.k == dip_k].normalised.iloc[0])
            found[f"w13_{_key(m)}_peak"] = float(on_curve.normalised.max())
        reached = table.dropna(subset=["k"])
        found["w13_n_reached"] = len(reached)
        found["w13_n_lo_below"] = int((reached["mean lo"] < curves.TARGET_BAND[0]).sum())
        found["w13_n_resample_in_band"] = int(reached["resample"].between(*curves.TARGET_BAND).sum())
        found["w13_reached"] = ", ".join(m for m in self.methods if m in self.chosen) or "none"
        found["w13_across_mid"] = float(self.across[self.across.k == mid].jaccard.mean())
        stab = self.stability
        if len(stab):
            for m in sorted(set(stab.method)):
                at = stab[(stab.method == m) & (stab.k == mid)]
                found[f"w13_stab_{_key(m)}_mid"] = float(at.jaccard.mean())
        return found

    def glue(self) -> None:
        """Glue every value of :meth:`findings` (myst-nb) for the chapter's prose."""
        from myst_nb import glue  # the book's dependency, needed only inside a notebook

        for name, value in self.findings().items():
            glue(name, value, display=False)


def probe_roles(model, evaluation: pd.DataFrame, heads: Sequence[tuple[int, int]]) -> pd.DataFrame:
    """:func:`circuitgen.head_roles.head_roles` of ``heads`` on the first :data:`N_PROBE`
    evaluation prompts; a head whose strongest attention signature is below
    :data:`MIN_ATTENTION` is "unclassified"."""
    roles = head_roles.head_roles(model, B.encode(model, evaluation.head(N_PROBE)), heads)
    roles.loc[roles[list(head_roles.SIGNATURES)].max(axis=1) < MIN_ATTENTION, "role"] = "unclassified"
    return roles


def run(model_name: str, seed: int = 0, device: str = "cpu", output_dir: str | None = None, *,
        n_discovery: int = 200, n_eval: int = 144, n_random: int = 2,
        methods: Sequence[str] = faithful.METHODS, sets_per_method: dict[str, int] | None = None,
        stability_fractions: Sequence[float] = (0.02, 0.05, 0.10)) -> FaithfulReport:
    """Load the model and the week-6 circuit, make the prompt sets, discover, score against size,
    choose, write the chosen circuits' specs and read the heads' roles; every expensive step reads
    its cache under ``output_dir`` (default ``data/discovery``) while its inputs match."""
    model = runtime.start(model_name, seed, device)
    week6 = CS.found_circuit(model_name, None, output_dir)
    out = paths.output_dir(output_dir) / "discovery"
    methods = list(methods)
    sets_per_method = dict(sets_per_method or dict.fromkeys(methods, splits.N_DISCOVERY_SETS))
    sets = splits.make_splits(model, n_discovery, n_eval)
    cache_log: list[str] = []
    config = faithful.MethodConfig()
    plan = {m: range(1, sets_per_method[m] + 1) for m in methods}
    runs = discover_all(model, sets, plan, config=config, out_dir=out, log=cache_log.append)
    rank1 = {m: faithful.ranking(runs[(m, "set1")].df) for m in methods}
    found = curves_and_smallest(model, sets.evaluation.df, rank1, week6.nodes(), n_random=n_random,
                                out_dir=out, log=cache_log.append)
    report = FaithfulReport(model_name, model.cfg.n_layers, model.cfg.n_heads, methods, sets_per_method,
                            list(stability_fractions), n_discovery, sets, week6, runs, found,
                            roles=pd.DataFrame(), config=config, cache_log=cache_log)
    report.written = write_specs(model_name, found.chosen, found.found, report.score_of, config=config,
                                 n_discovery=n_discovery, output_dir=output_dir)
    heads = sorted({h for circ in [*report.at_mid.values(), *found.chosen.values()] for h in N.heads_of(circ)}
                   | set(week6.heads()))
    report.roles = probe_roles(model, report.evaluation, heads)
    return report


__all__ = ["MIN_ATTENTION", "N_PROBE", "MID_INDEX", "DIP_INDEX", "SPEC_DATE", "discover_all", "Curves",
           "curves_and_smallest", "write_specs", "held_out_table", "heads_on_every_set", "FaithfulReport",
           "probe_roles", "run"]
