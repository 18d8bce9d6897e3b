"""The reference the hand-written held-out prompts are mean-ablated with (issue 25).

The rule (``circuitgen.heldout``; LAB_NOTEBOOK, week 15): each hand-written prompt takes the
(condition, order) means of *its family's generated prompts of seed 1*, the draw week 14 scored,
not its own ABC counterparts (the scorer's default) and not another seed's draw. The
oracle builds that reference here from the generated prompts named explicitly (family, seed 1)
with the scorer's ``mean_reference``, scores each family's rows with it through the curve
scorer, and compares circuit logit differences; the test also checks that the wrong references
would give other numbers, so that it can tell them apart."""

from __future__ import annotations

import pandas as pd
import pytest
import torch

from circuitgen import curves as C
from circuitgen import generalise, heldout
from circuitgen import nodes as N
from circuitgen.scorer import mean_reference

SEED = 1  # the generated draw whose reference the hand-written prompts take, written here


@pytest.fixture(scope="module")
def hand(tiny_llama):
    df = heldout.load_handwritten(tiny_llama)
    fams = ["lexical", "domain"]
    sub = df[df["family"].isin(fams)].groupby("family").head(3).reset_index(drop=True)
    assert set(sub["family"]) == set(fams)
    return sub


@pytest.fixture(scope="module")
def circuits(tiny_llama):
    every = N.head_nodes(tiny_llama.cfg.n_layers, tiny_llama.cfg.n_heads)
    return {"one": [N.Node(1, 0, "END")], "most": [n for n in every if n.layer == 1 or n.head < 2]}


def _score(model, hand, circuits, reference_for) -> pd.DataFrame:
    """Each family's rows scored under mean ablation with ``reference_for(family)``."""
    parts = []
    for family, sub in hand.groupby("family", sort=False):
        means = reference_for(family)
        parts.append(C.score_circuits(C.Setting(model, sub, method="mean", means=means), dict(circuits)))
    return pd.concat(parts).set_index(["circuit", "prompt_id"]).sort_index()


@pytest.fixture(scope="module")
def refs(tiny_llama, hand):
    """``{(family, seed): reference}``, built from the generated prompts of that family and seed."""
    return {(f, s): mean_reference(tiny_llama, generalise.family_prompts(tiny_llama, f, s))
            for f in ("lexical", "domain") for s in (SEED, 0)}


@pytest.fixture(scope="module")
def oracle(tiny_llama, hand, circuits, refs):
    return _score(tiny_llama, hand, circuits, lambda f: refs[(f, SEED)])


def _circuit_ld(scores: pd.DataFrame) -> torch.Tensor:
    return torch.tensor(scores["circuit_logit_diff"].to_numpy(float))


def test_the_oracle_tells_the_references_apart(tiny_llama, hand, circuits, refs, oracle):
    """Power: the prompts' own counterparts and the other seed's draw each move the circuit's
    logit difference far beyond the comparison's tolerance."""
    wrong = {
        "own counterparts": _score(tiny_llama, hand, circuits, lambda f: None),
        "seed 0": _score(tiny_llama, hand, circuits, lambda f: refs[(f, 0)]),
    }
    for name, w in wrong.items():
        assert float((_circuit_ld(w) - _circuit_ld(oracle)).abs().max()) > 1e-3, name


def test_handwritten_mean_scores_use_the_familys_generated_reference(tiny_llama, hand, circuits,
                                                                    oracle, tmp_path):
    got = heldout.score_handwritten(tiny_llama, hand, circuits, ablations=("mean",),
                                    out_dir=tmp_path, log=lambda *a: None).df
    got = got.set_index(["circuit", "prompt_id"]).sort_index()
    assert list(got.index) == list(oracle.index)
    torch.testing.assert_close(_circuit_ld(got), _circuit_ld(oracle), atol=1e-5, rtol=0)
    torch.testing.assert_close(torch.tensor(got["empty_logit_diff"].to_numpy(float)),
                               torch.tensor(oracle["empty_logit_diff"].to_numpy(float)),
                               atol=1e-5, rtol=0)


def test_family_reference_is_the_seed_1_draw_of_that_family(tiny_llama, refs):
    for family in ("lexical", "domain"):
        got = heldout.family_reference(tiny_llama, family)
        want = refs[(family, SEED)]
        assert got.groups == want.groups
        torch.testing.assert_close(got.means, want.means, atol=1e-6, rtol=0)
