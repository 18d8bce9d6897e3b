"""Hand-written held-out prompts (week 15): same features as generated ones, new templates,
ABC counterparts, clear errors, and the committed score table."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from circuitgen import heldout as H
from circuitgen import ioi, models, variations
from circuitgen import predictors as P
from circuitgen import variation_lists as VL
from circuitgen.paths import DATA_DIR

# What a person writing a prompt by hand can see and type; everything else the loader derives.
RAW = ["template", "prompt", "io", "s", "x", "family", "condition", "order", "filler"]
# Every generator column the loader must reproduce (all but ids, ABC names, provenance).
DERIVED = ["x", "family", "condition", "order", "pos_io", "pos_s1", "pos_s1p1", "pos_s2",
           "pos_end", "n_tokens", "pos_io_last", "pos_s_mid", "pos_x", "io_mentions",
           "s_mentions", "standard_ioi", "dist_s1_s2", "io_pos", "io_rank", "s_rank",
           "io_gender", "s_gender", "same_gender", "io_origin", "s_origin", "filler_target",
           "filler_tokens"]


@pytest.fixture(scope="module")
def tok():
    return models.smollm2_tokenizer()


@pytest.fixture(scope="module")
def hand(tok):
    return H.load_handwritten(tok)


@pytest.fixture(scope="module")
def generated(tok):
    """Two prompts of every condition of every family (seed 3, a draw no table uses)."""
    return pd.concat([variations.generate_family(f, tok, n_per_condition=2, seed=3).df
                      for f in variations.FAMILIES], ignore_index=True)


def _filler_text(prompt: str) -> str:
    """The generator's filler, recovered from the prompt: its filler sentences, in place."""
    found = sorted((prompt.index(s), s) for s in VL.FILLER_SENTENCES if s in prompt)
    return "".join(s for _, s in found)


def as_handwritten(gen: pd.DataFrame) -> pd.DataFrame:
    """Generated rows cut down to what a person would write."""
    raw = gen.copy()
    raw["filler"] = [_filler_text(p) if c.startswith("filler_") and c != "filler_0" else ""
                     for p, c in zip(raw.prompt, raw.condition)]
    raw["template"] = [f"hand:{t}:{i}" for i, t in enumerate(raw.template)]
    return raw[RAW].astype(str)


def test_generated_rows_get_the_same_features(tok, generated):
    got = H.prompts_frame(tok, as_handwritten(generated))
    assert len(got) == len(generated)
    for col in DERIVED:
        a, b = got[col].astype(object), generated[col].astype(object)
        same = [(x is pd.NA and y is pd.NA) or x == y for x, y in zip(a, b)]
        differ = [not s for s in same]
        assert all(same), f"{col}: {a[differ].tolist()[:3]} vs {b[differ].tolist()[:3]}"
    # and the predictors' features, computed by feature_table from each, are identical
    rng = np.random.default_rng(0)
    scored = {"status": "ok", "logit_diff": rng.normal(3, 1, len(got)),
              "circuit_logit_diff": rng.normal(1, 1, len(got))}
    fa = P.feature_table(got.assign(**scored, template=generated.template))
    fb = P.feature_table(generated.assign(**scored))
    cols = [*P.NUMERIC, *P.CATEGORICAL, "condition", "circuit_wrong_model_right"]
    pd.testing.assert_frame_equal(fa[cols], fb[cols])
    # every condition the generator makes for this tokenizer (names_origin_african has too few
    # single-token names in SmolLM2 and is skipped by the generator itself)
    assert set(got.condition) == set(generated.condition) and len(set(got.condition)) >= 40


def test_frame_has_the_generated_frame_columns(hand):
    assert tuple(hand.columns) == H.FRAME_COLUMNS
    assert hand.prompt_id.tolist() == list(range(len(hand)))
    assert (hand.status == "ok").all() and (hand.generator_version == H.GENERATOR_VERSION).all()


def test_committed_prompts_cover_the_brief(hand):
    assert len(hand) >= 32
    assert hand.family.value_counts().to_dict() == {f: 8 for f in variations.FAMILIES}
    assert hand.template.str.fullmatch(r"hand:(lexical|syntactic|domain|adversarial):\d+").all()
    assert hand.template.is_unique
    counts = hand.order.value_counts()
    assert abs(counts["ABBA"] - counts["BABA"]) <= 4


def test_generator_template_patterns_match_generated_prompts(generated):
    """The novelty check below is only as good as this: every generated prompt is recognised."""
    for p, t in zip(generated.prompt, generated.template):
        assert t in H.generator_matches(p), (t, p)


def test_handwritten_templates_are_not_the_generators(hand):
    ids = set(H.generator_templates())
    assert not ids & set(hand.template)
    for p in hand.prompt:
        assert H.generator_matches(p) == [], p


def test_abc_counterparts_differ_only_at_the_names(tok, hand):
    for r in hand.itertuples():
        own = {r.io, r.s} | ({r.x} if r.x else set())
        a, b = ioi.tokenize(tok, r.prompt), ioi.tokenize(tok, r.abc_prompt)
        # name positions found independently: tokens that decode to one of the prompt's names
        names_at = [i for i, t in enumerate(a) if tok.decode([t]).strip() in own]
        assert len(names_at) == r.io_mentions + r.s_mentions + (1 if r.x else 0)
        assert len(a) == len(b)
        assert [i for i, (x, y) in enumerate(zip(a, b)) if x != y] == names_at, r.template
        assert not any(ioi._word_spans(r.abc_prompt, n) for n in own), r.abc_prompt
        new = [tok.decode([b[i]]).strip() for i in names_at]
        assert len(set(new)) == len(new) and r.abc_names == "|".join(new)


def _one(hand_raw: pd.DataFrame, i: int, **change) -> pd.DataFrame:
    row = hand_raw.iloc[[i]].copy()
    for k, v in change.items():
        row[k] = v
    return row.reset_index(drop=True)


@pytest.fixture(scope="module")
def raw():
    return H.read_handwritten()


@pytest.mark.parametrize("row, change, message", [
    (0, {"io": "Alice"}, r"indirect object 'Alice' appears 0 time"),
    (0, {"prompt": "After Sarah and Xiaoling finished the crossword at the library, Xiaoling lent "
                   "a pen to", "s": "Xiaoling"}, r"'Xiaoling' is \d+ tokens with a leading space"),
    (0, {"family": "lexicon"}, r"unknown family 'lexicon'.*lexical"),
    (0, {"condition": "names_odd"}, r"has no condition 'names_odd'"),
    (0, {"order": "BABA"}, r"order column says BABA but .* ABBA"),
    (13, {"order": "BABA"}, r"io_first has order\(s\) \['ABBA'\]"),
    (0, {"condition": "names_mixed_gender"}, r"not one f and one m"),
    (6, {"condition": "names_frequent"}, r"not in the condition's name group 'frequent'"),
    (26, {"x": ""}, r"has a distractor name; give it in the x column"),
    (0, {"x": "Boris"}, r"has no distractor"),
    (31, {"prompt": "Halfway through the picnic in the park, Jack and Mei ran into Boris. Jack "
                    "gave a bottle to"}, r"names \['Boris'\], which is neither io, s nor x"),
    (11, {"filler": ""}, r"put the filler text"),
    (11, {"filler": " The kettle was broken."}, r"occurs 0 times"),
    (24, {"condition": "base"}, r"appears 2 time\(s\).*needs the IO 1 time"),
    (0, {"template": "lexical:0"}, r"must start with 'hand:'"),
])
def test_bad_rows_say_what_is_wrong(tok, raw, row, change, message):
    with pytest.raises(H.HeldoutError, match=message):
        H.prompts_frame(tok, _one(raw, row, **change))


def test_bad_tables_say_what_is_wrong(tok, raw, tmp_path):
    with pytest.raises(H.HeldoutError, match=r"missing column\(s\) \['condition'\]"):
        (tmp_path / "t.csv").write_text(raw.drop(columns="condition").to_csv(index=False))
        H.read_handwritten(tmp_path / "t.csv")
    with pytest.raises(H.HeldoutError, match=r"used twice"):
        H.prompts_frame(tok, pd.concat([raw.iloc[:2], raw.iloc[:1]]))
    # nothing dropped: one bad row among good ones fails the whole table
    bad = pd.concat([raw.iloc[:3], _one(raw, 3, io="Zed")], ignore_index=True)
    with pytest.raises(H.HeldoutError, match="row 3"):
        H.prompts_frame(tok, bad)


def test_committed_scores_align_with_the_prompts(hand):
    from circuitgen import tables as T

    path = DATA_DIR / "scores" / "smollm2-135m-heldout-handwritten-circuits.csv"
    table = T.load_table(path)
    df = table.df
    assert set(df.ablation) == {"mean", "resample"}
    assert table.meta["inputs"]["prompts"]  # fingerprinted with its prompts
    for (circuit, ablation), g in df.groupby(["circuit", "ablation"]):
        rows = P.circuit_rows(df, hand, circuit, ablation, source=P.HANDWRITTEN_SOURCE)
        assert len(rows) == len(hand) == len(g)
    assert "condition, order" in table.meta["reference_rule"] or "(condition, order)" in \
        table.meta["reference_rule"]


def test_committed_resample_scores_recompute(smollm2):
    """The committed table's numbers are the model's: two hand-written prompts of each family,
    the week-6 circuit and one week-13 circuit, recomputed under resample ablation (which needs
    no generated reference, so this stays fast on the 135M model) from the committed circuits."""
    from circuitgen import generalise
    from circuitgen import tables as T

    committed = T.load_table(DATA_DIR / "scores" / "smollm2-135m-heldout-handwritten-circuits.csv").df
    hand = H.load_handwritten(smollm2)
    some = hand.groupby("family").head(2)
    under = generalise.circuits_under_test(smollm2, log=None)
    circuits = {c: under[c] for c in ("week 6", "eap-ig")}
    got = H.score_with_family_reference(smollm2, some, circuits, "resample")
    want = committed[committed.ablation == "resample"].set_index(["circuit", "prompt_id"])
    cols = ["logit_diff", "circuit_logit_diff", "empty_logit_diff"]
    for r in got.itertuples():
        w = want.loc[(r.circuit, r.prompt_id)]
        assert [getattr(r, c) for c in cols] == pytest.approx(w[cols].tolist(), abs=2e-3), (
            r.circuit, r.prompt_id)
    assert len(got) == 2 * len(some) and got.circuit_logit_diff.std() > 0


@pytest.mark.slow
def test_the_model_scores_every_handwritten_prompt(smollm2):
    from circuitgen import tables as T
    from circuitgen.scorer import check_prompts

    df = H.load_handwritten(smollm2)
    assert (check_prompts(smollm2, df).status == "ok").all()
    assert df.attrs["skipped"] == []
    table = T.load_table(DATA_DIR / "scores" / "smollm2-135m-heldout-handwritten-circuits.csv")
    assert table.meta["inputs"]["prompts"] == T._canonical(df)


# --------------------------------------------------------------------------------------------
# Names another tokenizer splits: skipped and recorded, never silently dropped

# Known beforehand (not computed by the loader's code): the GPT-2 tokenizer splits " Musa" and
# " Sofia" into two tokens each; every other name of the committed table is one GPT-2 token.
GPT2_SPLIT = {"hand:lexical:5": "Musa", "hand:adversarial:0": "Sofia"}


@pytest.fixture(scope="module")
def gpt2_tok():
    return models.gpt2_tokenizer()


def test_gpt2_skips_exactly_the_rows_whose_names_it_splits(gpt2_tok, raw):
    got = H.load_handwritten(gpt2_tok)
    skipped = got.attrs["skipped"]
    assert {k["template"]: k["row"] for k in skipped} == {
        t: int(raw.index[raw.template == t][0]) for t in GPT2_SPLIT}
    for k in skipped:
        name = GPT2_SPLIT[k["template"]]
        assert f"'{name}' is 2 tokens" in k["reason"]
        assert (k["family"], k["condition"]) == tuple(raw.loc[k["row"], ["family", "condition"]])
    # the other rows are all kept, each under its CSV row number as prompt_id
    assert len(got) + len(skipped) == len(raw)
    assert sorted(got.prompt_id.tolist() + [k["row"] for k in skipped]) == list(range(len(raw)))
    assert got.template.tolist() == [t for t in raw.template if t not in GPT2_SPLIT]
    note = H.skipped_note(got)
    assert note.startswith(f"2 of {len(raw)} hand-written prompts skipped")
    assert all(t in note for t in GPT2_SPLIT)


def test_a_skipped_row_leaves_the_other_rows_as_they_were(tok, raw):
    """Kept rows are the rows loaded without the skipped one (same ids, ABC names, features)."""
    xiao = _one(raw, 4, prompt="After Sarah and Xiaoling finished the crossword at the library, "
                "Xiaoling lent a pen to", io="Sarah", s="Xiaoling")
    assert len(tok(" Xiaoling", add_special_tokens=False)["input_ids"]) > 1
    alone = H.prompts_frame(tok, raw.iloc[:4])
    both = H.prompts_frame(tok, pd.concat([raw.iloc[:4], xiao], ignore_index=True))
    pd.testing.assert_frame_equal(both, alone)
    assert [k["row"] for k in both.attrs["skipped"]] == [4] and alone.attrs["skipped"] == []
    assert "'Xiaoling' is" in both.attrs["skipped"][0]["reason"]
    # first instead of last: the kept rows keep their own row numbers
    first = H.prompts_frame(tok, pd.concat([xiao, raw.iloc[:4]], ignore_index=True))
    assert first.prompt_id.tolist() == [1, 2, 3, 4]
    assert first.prompt.tolist() == alone.prompt.tolist()


def test_no_usable_row_raises_with_every_reason(gpt2_tok, raw):
    only_split = raw[raw.template.isin(list(GPT2_SPLIT))].reset_index(drop=True)
    with pytest.raises(H.HeldoutError, match="no hand-written row is usable") as err:
        H.prompts_frame(gpt2_tok, only_split)
    assert "'Musa' is 2 tokens" in str(err.value) and "'Sofia' is 2 tokens" in str(err.value)


def test_reference_tokenizer_skips_nothing_and_matches_the_scored_prompts(hand):
    """On SmolLM2 no row is skipped, and the frame is byte for byte the one the committed
    hand-written score table was computed from (its fingerprint of the prompts)."""
    from circuitgen import tables as T

    assert hand.attrs["skipped"] == [] and H.skipped_note(hand) == ""
    table = T.load_table(DATA_DIR / "scores" / "smollm2-135m-heldout-handwritten-circuits.csv")
    # loaded through the model, the frame's tokenizer column is the model's name
    assert table.meta["inputs"]["prompts"] == T._canonical(hand.assign(tokenizer="smollm2-135m"))
    assert "skipped_rows" not in table.meta


def test_tiny_gpt2_scores_every_row_it_keeps(tiny_gpt2):
    from circuitgen.scorer import check_prompts

    df = H.load_handwritten(tiny_gpt2)
    assert {k["template"] for k in df.attrs["skipped"]} == set(GPT2_SPLIT)
    assert (check_prompts(tiny_gpt2, df).status == "ok").all()
