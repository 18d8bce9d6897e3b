"""Discovery/evaluation splits (circuitgen.splits): held-out names and templates really held out."""

from __future__ import annotations

import pytest

from circuitgen import models, splits


@pytest.fixture(scope="module")
def made():
    return splits.make_splits(models.smollm2_tokenizer(), n_discovery=60, n_eval=36)


def _names(df) -> set[str]:
    return set(df[["io", "s", "abc_io", "abc_s1", "abc_s2"]].to_numpy().ravel())


def test_evaluation_names_never_seen_in_discovery(made):
    seen = set().union(*(_names(d.df) for d in made.discovery))
    assert not seen & _names(made.evaluation.df)
    assert seen <= set(made.discovery_names) and _names(made.evaluation.df) <= set(made.eval_names)


def test_held_out_templates_only_in_evaluation(made):
    for d in made.discovery:
        assert not set(d.df.template) & set(splits.HELD_OUT_TEMPLATES)
    ev = made.evaluation.df
    assert set(splits.HELD_OUT_TEMPLATES) <= set(ev.template)
    assert ev.held_out_template.equals(ev.template.isin(splits.HELD_OUT_TEMPLATES))


def test_discovery_sets_disjoint_and_reproducible(made):
    texts = [set(d.df.prompt) for d in made.discovery]
    assert all(not (a & b) for i, a in enumerate(texts) for b in texts[i + 1:])
    again = splits.make_splits(models.smollm2_tokenizer(), n_discovery=60, n_eval=36)
    assert again.evaluation.df.equals(made.evaluation.df)
    assert made.discovery[0].meta["discovery_set"] == 1
