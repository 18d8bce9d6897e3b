"""Variation families (circuitgen.variations): labels, answers, positions, ABC, seeds, features.

Tokenizers only (no model runs): the real GPT-2 and SmolLM2 tokenizers, both offline.
The checks decode tokens independently of the generator's own position code.
"""

from __future__ import annotations

import re

import pandas as pd
import pytest

from circuitgen import ioi
from circuitgen import variation_lists as VL
from circuitgen import variations as V
from circuitgen.ioi import PromptError, find_positions, tokenize
from circuitgen.models import gpt2_tokenizer, smollm2_tokenizer

N = 6  # prompts per condition: enough to cover every template/order cell of most conditions
TOKENIZERS = ("gpt2", "smollm2")
_CACHE: dict = {}


@pytest.fixture(scope="module")
def toks():
    return {"gpt2": gpt2_tokenizer(), "smollm2": smollm2_tokenizer()}


def _get(toks, tok_name, family, n=N, seed=0):
    key = (tok_name, family, n, seed)
    if key not in _CACHE:
        _CACHE[key] = V.generate_family(family, toks[tok_name], n_per_condition=n, seed=seed)
    return _CACHE[key]


def _count(prompt: str, name: str) -> int:
    return len(re.findall(r"(?<![^\W\d_])" + re.escape(name) + r"(?![^\W\d_])", prompt))


def _name_positions(r) -> dict[int, str]:
    """Token position -> the name the clean prompt has there."""
    out = {r.pos_io: r.io, r.pos_io_last: r.io, r.pos_s1: r.s, r.pos_s2: r.s}
    if r.pos_s_mid >= 0:
        out[r.pos_s_mid] = r.s
    if r.pos_x >= 0:
        out[r.pos_x] = r.x
    return out


def check_row(tok, r) -> None:
    """Answer well defined, positions decode to the names, ABC aligned: asserts on one row."""
    # Answers: IO before S2 the stated number of times, S the stated number of times.
    assert _count(r.prompt, r.io) == r.io_mentions
    assert _count(r.prompt, r.s) == r.s_mentions
    assert r.io != r.s and r.x not in (r.io, r.s)
    if r.x:
        assert _count(r.prompt, r.x) == 1
    assert r.prompt.rindex(r.io) < r.prompt.rindex(r.s)
    assert r.prompt == r.prompt.rstrip()
    # Positions, by decoding the model's tokens (BOS at 0).
    ids = tokenize(tok, r.prompt)
    assert ids[0] == tok.bos_token_id and len(ids) == r.n_tokens and r.pos_end == len(ids) - 1
    assert r.prompt.endswith(tok.decode([ids[r.pos_end]]))
    for p, name in _name_positions(r).items():
        assert tok.decode([ids[p]]).strip() == name, (p, name, r.prompt)
    assert r.pos_io <= r.pos_io_last < r.pos_s2 and r.pos_s1 < r.pos_s2 < r.pos_end
    assert r.pos_s1p1 == r.pos_s1 + 1
    # ABC: same length; the names' tokens differ (and are the ABC names); all else identical.
    abc = tokenize(tok, r.abc_prompt)
    assert len(abc) == len(ids)
    names = r.abc_names.split("|")
    assert len(set(names)) == len(names) == r.io_mentions + r.s_mentions + (1 if r.x else 0)
    assert not set(names) & {r.io, r.s, r.x}
    differ = [i for i, (a, b) in enumerate(zip(abc, ids)) if a != b]
    assert set(_name_positions(r)) <= set(differ)
    assert len(differ) == len(names)
    assert [tok.decode([abc[i]]).strip() for i in differ] == names
    assert (tok.decode([abc[r.pos_io]]).strip(), tok.decode([abc[r.pos_s1]]).strip(),
            tok.decode([abc[r.pos_s2]]).strip()) == (r.abc_io, r.abc_s1, r.abc_s2)
    # Features.
    assert r.dist_s1_s2 == r.pos_s2 - r.pos_s1 and r.io_pos == r.pos_io
    assert r.io_rank == tok(" " + r.io, add_special_tokens=False)["input_ids"][0]
    assert r.s_rank == tok(" " + r.s, add_special_tokens=False)["input_ids"][0]
    assert r.order == ("ABBA" if r.pos_io < r.pos_s1 else "BABA")


@pytest.mark.parametrize("family", list(V.FAMILIES))
@pytest.mark.parametrize("tok_name", TOKENIZERS)
def test_labels_and_counts(toks, tok_name, family):
    ps = _get(toks, tok_name, family)
    df = ps.df
    assert list(df.columns) == list(V.COLUMNS)
    assert (df.family == family).all()
    skipped = ps.meta["conditions_skipped"]
    assert set(skipped) <= set(V.FAMILIES[family])
    assert ps.meta["conditions"] == [c for c in V.FAMILIES[family] if c not in skipped]
    counts = df.condition.value_counts().to_dict()
    assert counts == {c: N for c in ps.meta["conditions"]}
    assert df.prompt_id.tolist() == list(range(len(df)))
    assert (df.tokenizer == ps.meta["tokenizer"]).all() and len(ps) == ps.meta["n_prompts"]
    # Only name-group conditions may be skipped, and only for too few single-token names.
    for c, why in skipped.items():
        assert c.startswith("names_") and "single-token name" in why


@pytest.mark.parametrize("family", list(V.FAMILIES))
@pytest.mark.parametrize("tok_name", TOKENIZERS)
def test_rows_answers_positions_abc(toks, tok_name, family):
    tok = toks[tok_name]
    df = _get(toks, tok_name, family).df
    for r in df.itertuples(index=False):
        check_row(tok, r)
        # Standard rows pass the strict check the scorer uses, with the same positions.
        if r.standard_ioi:
            pos = find_positions(tok, r.prompt, r.io, r.s)
            assert pos.as_dict() == {c: getattr(r, c) for c in pos.as_dict()}
        else:
            with pytest.raises(PromptError):
                find_positions(tok, r.prompt, r.io, r.s)
            pos = find_positions(tok, r.prompt, r.io, r.s, io_count=r.io_mentions,
                                 s_count=r.s_mentions)
            assert (pos.io, pos.s1, pos.s2) == (r.pos_io, r.pos_s1, r.pos_s2)


def test_checker_catches_broken_rows(toks):
    """The row checker is not vacuous: mislabelled names, shifted positions, bad ABC all fail."""
    tok = toks["gpt2"]
    df = _get(toks, "gpt2", "adversarial").df
    rows = {c: d.iloc[0] for c, d in df.groupby("condition")}
    as_tuple = lambda s: next(pd.DataFrame([s]).itertuples(index=False))  # noqa: E731
    for r in rows.values():
        check_row(tok, as_tuple(r))
    r = rows["base"]
    broken = [r.copy() for _ in range(5)] + [rows["double_io"].copy()]
    swapped, shifted, bad_abc, longer, same_names, undercount = broken
    swapped["io"], swapped["s"] = r.s, r.io
    shifted["pos_io"] = r.pos_io + 1
    bad_abc["abc_prompt"] = r.prompt
    longer["abc_prompt"] = r.abc_prompt.replace(" to", " over to")
    same_names["abc_prompt"] = r.abc_prompt.replace(r.abc_s2, r.abc_s1)
    undercount["io_mentions"] = 1
    for b in broken:
        with pytest.raises(AssertionError):
            check_row(tok, as_tuple(b))


@pytest.mark.parametrize("family", list(V.FAMILIES))
def test_deterministic_by_seed(toks, family):
    tok = toks["smollm2"]
    a = _get(toks, "smollm2", family, n=1, seed=3)
    b = V.generate_family(family, tok, n_per_condition=1, seed=3)
    pd.testing.assert_frame_equal(a.df, b.df)
    assert a.meta == b.meta
    c = V.generate_family(family, tok, n_per_condition=1, seed=4)
    assert (c.df.prompt.tolist() != a.df.prompt.tolist())
    assert (c.df.condition.tolist() == a.df.condition.tolist())


def test_generators_dispatch_and_errors(toks):
    tok = toks["gpt2"]
    a = V.generate_syntactic(tok, n_per_condition=2, seed=1, conditions=["passive"])
    b = V.generate_family("syntactic", tok, 2, 1, conditions=["passive"])
    pd.testing.assert_frame_equal(a.df, b.df)
    assert set(V.GENERATORS) == set(V.FAMILIES) == {"lexical", "syntactic", "domain", "adversarial"}
    with pytest.raises(PromptError, match="unknown variation family"):
        V.generate_family("semantic", tok, 2)
    with pytest.raises(PromptError, match="no condition"):
        V.generate_family("syntactic", tok, 2, conditions=["cleft"])
    with pytest.raises(PromptError, match="at least 1"):
        V.generate_family("domain", tok, 0)


@pytest.mark.parametrize("tok_name", TOKENIZERS)
def test_filler_distance_grows(toks, tok_name):
    conds = [f"filler_{t}" for t in VL.FILLER_TARGETS]
    df = V.generate_syntactic(toks[tok_name], n_per_condition=12, seed=0, conditions=conds).df
    means = df.groupby("condition").dist_s1_s2.mean()[conds].tolist()
    assert means == sorted(means) and len(set(means)) == len(means), means
    # Each condition's measured filler is near its target, and the distances do not overlap.
    for t in VL.FILLER_TARGETS:
        sub = df[df.condition == f"filler_{t}"]
        assert (sub.filler_target == t).all()
        assert (sub.filler_tokens - t).abs().max() <= 2
    by = df.groupby("condition").dist_s1_s2
    for lo, hi in zip(conds, conds[1:]):
        assert by.max()[lo] < by.min()[hi], (lo, hi)
    # The filler is all that separates S1 from S2 beyond the same prompt's distance without it.
    for r in df.itertuples(index=False):
        bare = r.prompt
        for piece in VL.FILLER_SENTENCES:
            bare = bare.replace(piece, "")
        pos = find_positions(toks[tok_name], bare, r.io, r.s)
        assert r.dist_s1_s2 == pos.s2 - pos.s1 + r.filler_tokens, r.prompt
        assert r.n_tokens == pos.n_tokens + r.filler_tokens


@pytest.mark.parametrize("tok_name", TOKENIZERS)
def test_lexical_conditions_vary_what_they_say(toks, tok_name):
    ps = _get(toks, tok_name, "lexical")
    df, med = ps.df, ps.meta["name_rank_median"]
    by = dict(tuple(df.groupby("condition")))
    assert (by["names_frequent"][["io_rank", "s_rank"]] <= med).all().all()
    assert (by["names_rare"][["io_rank", "s_rank"]] > med).all().all()
    assert by["names_same_gender"].same_gender.tolist() == [True] * N
    assert by["names_mixed_gender"].same_gender.tolist() == [False] * N
    unknown = (df.io_gender == "u") | (df.s_gender == "u")
    assert df.same_gender[unknown].isna().all() and df.same_gender[~unknown].notna().all()
    assert (df.same_gender[~unknown] == (df.io_gender == df.s_gender)[~unknown]).all()
    for o in VL.ORIGINS:
        if f"names_origin_{o}" in by:
            sub = by[f"names_origin_{o}"]
            assert (sub.io_origin == o).all() and (sub.s_origin == o).all()
    assert set(by["objects_plural"].object) <= set(VL.PLURAL_OBJECTS)
    assert set(by["objects_new"].object) <= set(VL.NEW_OBJECTS)
    assert set(by["places_new"].place) <= set(VL.NEW_PLACES)
    assert set(by["verbs_other"].verb) <= set(VL.OTHER_VERBS)
    assert (by["verbs_gave"].verb == "gave").all()
    # Names dropped: reported, and exactly the multi-token ones.
    kept = ioi.single_token_names(toks[tok_name], VL.NAMES, log=False)
    assert ps.meta["names_dropped_by_list"]["names"] == list(kept.dropped)
    assert ps.meta["n_names_dropped"] == len(ps.meta["names_dropped"]) > 0
    used = set(df.io) | set(df.s) | {n for x in df.abc_names for n in x.split("|")}
    assert not used & set(ps.meta["names_dropped"])


@pytest.mark.parametrize("tok_name", TOKENIZERS)
def test_syntactic_and_adversarial_conditions(toks, tok_name):
    syn = dict(tuple(_get(toks, tok_name, "syntactic").df.groupby("condition")))
    assert (syn["order_abba"].order == "ABBA").all() and (syn["order_baba"].order == "BABA").all()
    assert (syn["io_first"].order == "ABBA").all() and (syn["s_first"].order == "BABA").all()
    assert syn["passive"].prompt.str.contains(r" by \w+ to$").all()
    assert (syn["one_sentence"].prompt.str.count(r"\. ") == 0).all()
    assert (syn["two_sentences"].prompt.str.count(r"\. ") == 1).all()
    adv = dict(tuple(_get(toks, tok_name, "adversarial").df.groupby("condition")))
    assert (adv["double_io"].io_mentions == 2).all() and (adv["triple_io"].io_mentions == 3).all()
    assert (adv["s_thrice"].s_mentions == 3).all() and (adv["s_thrice"].pos_s_mid > 0).all()
    assert (adv["distractor"].pos_x > 0).all() and (adv["distractor"].x != "").all()
    assert adv["possessive_s2"].apply(lambda r: f"{r.s}'s" in r.prompt[-40:], axis=1).all()
    assert adv["possessive_s1"].apply(lambda r: r.prompt.index(f"{r.s}'s") == r.prompt.index(r.s),
                                      axis=1).all()
    assert adv["word_names"].io.isin(list(VL.WORD_NAMES)).all()
    assert adv["word_names"].s.isin(list(VL.WORD_NAMES)).all()
    standard = {c: bool(d.standard_ioi.all()) for c, d in adv.items()}
    assert standard == {c: c not in ("double_io", "triple_io", "s_thrice") for c in adv}


def test_domains_use_their_vocabulary(toks):
    dom = dict(tuple(_get(toks, "gpt2", "domain").df.groupby("condition")))
    for name, d in VL.DOMAINS.items():
        sub = dom[name]
        assert set(sub.place) <= set(d["places"]) and set(sub.object) <= set(d["objects"])
        assert set(sub.verb) <= set(d["verbs"])
        assert sub.template.str.startswith(f"domain_{name}:").all()


def test_template_ids_unique_per_template():
    seen: dict[str, str] = {}
    for spec in V._SPECS.values():
        for cond in spec.values():
            for t in cond.templates:
                assert seen.setdefault(t.id, t.text) == t.text, t.id
    assert len(set(seen.values())) == len(seen)


def test_find_positions_relaxed_counts(toks):
    tok = toks["gpt2"]
    p = "When Mary and John went to the store, Mary sat down and John gave a drink to"
    with pytest.raises(PromptError, match="appears 2 time"):
        find_positions(tok, p, "Mary", "John")  # default unchanged: IO exactly once
    # BOS When Mary and John went to the store , Mary sat down and John gave a drink to
    #  0   1    2    3   4    5   6  7    8   9  10   11  12   13  14
    pos = find_positions(tok, p, "Mary", "John", io_count=2)
    assert (pos.io, pos.s1, pos.s2) == (2, 4, 14)  # IO is the FIRST mention
    p3 = "When Mary and John went to the store, John smiled and John gave a drink to"
    with pytest.raises(PromptError, match="exactly twice"):
        find_positions(tok, p3, "Mary", "John")
    pos = find_positions(tok, p3, "Mary", "John", s_count=3)
    assert (pos.io, pos.s1, pos.s2) == (2, 4, 13)  # S2 is the LAST mention (S at 10 in between)
    late = "When Mary and John went to the store, John gave a drink to Mary and"
    with pytest.raises(PromptError, match="comes after"):
        find_positions(tok, late, "Mary", "John", io_count=2)
    with pytest.raises(PromptError, match="at least"):
        find_positions(tok, p, "Mary", "John", s_count=1)
    classic = "When Mary and John went to the store, John gave a drink to"
    assert find_positions(tok, classic, "Mary", "John") == find_positions(
        tok, classic, "Mary", "John", io_count=1, s_count=2)
