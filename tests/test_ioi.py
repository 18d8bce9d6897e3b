"""IOI prompt generation: positions, the name filter, ABC counterparts, determinism, errors."""

from __future__ import annotations

import logging
import re

import pandas as pd
import pytest

from circuitgen import ioi
from circuitgen.ioi import (
    GENERATOR_VERSION,
    TEMPLATES,
    PromptError,
    find_positions,
    generate_prompts,
    load_prompt_set,
    single_token_names,
    tokenize,
)
from circuitgen.models import gpt2_tokenizer, smollm2_tokenizer

TOKENIZERS = ("gpt2", "smollm2")


@pytest.fixture(scope="session")
def gpt2_tok():
    return gpt2_tokenizer()


@pytest.fixture(scope="session")
def smollm2_tok():
    return smollm2_tokenizer()


@pytest.fixture(params=TOKENIZERS)
def tok(request):
    return request.getfixturevalue(f"{request.param}_tok")


def _decode(tokenizer, ids, i):
    return tokenizer.decode([ids[i]])


def _check_row(tokenizer, prompt, io, s, pos, bos=True):
    """Independent of find_positions' internals: decode the tokens at each position."""
    ids = tokenize(tokenizer, prompt, bos=bos)
    if bos:
        assert ids[0] == tokenizer.bos_token_id
    assert len(ids) == pos.n_tokens
    assert _decode(tokenizer, ids, pos.io).strip() == io
    assert _decode(tokenizer, ids, pos.s1).strip() == s
    assert _decode(tokenizer, ids, pos.s2).strip() == s
    assert pos.s1 < pos.s2 < pos.end and pos.io < pos.s2
    assert pos.s1p1 == pos.s1 + 1
    # S1+1 is the token that follows S1's text in the prompt; S2 is the last mention of s.
    after_s1 = prompt[prompt.index(s) + len(s):]
    assert after_s1.startswith(_decode(tokenizer, ids, pos.s1p1))
    assert prompt.endswith(_decode(tokenizer, ids, pos.s2) + prompt[prompt.rindex(s) + len(s):])
    # END is the last token and spells the end of the prompt.
    assert pos.end == len(ids) - 1
    assert prompt.endswith(_decode(tokenizer, ids, pos.end))


@pytest.mark.parametrize("order", ioi.ORDERS)
@pytest.mark.parametrize("template", range(len(TEMPLATES)))
def test_every_template_positions_decode(tok, template, order):
    kept = single_token_names(tok, log=False).kept
    for io, s in [(kept[0], kept[1]), (kept[-1], kept[-2])]:
        prompt = ioi.render(template, order, io, s, place="library", obj="necklace")
        pos = find_positions(tok, prompt, io, s)
        assert pos.order == order
        assert (pos.io < pos.s1) == (order == "ABBA")
        _check_row(tok, prompt, io, s, pos)
        nobos = find_positions(tok, prompt, io, s, bos=False)
        assert nobos.as_dict() == {k: v - 1 for k, v in pos.as_dict().items()}


def test_at_least_15_templates_with_abba_twins():
    assert len(TEMPLATES) >= 15
    assert len({t.text for t in TEMPLATES}) == len(TEMPLATES)
    for t in TEMPLATES:
        baba = ioi.render(t, "BABA", "Mary", "John")
        abba = ioi.render(t, "ABBA", "Mary", "John")
        assert baba.index("John") < baba.index("Mary") and abba.index("Mary") < abba.index("John")
        # The ABBA twin is the BABA prompt with its first two name mentions swapped.
        assert abba == baba.replace("John", "#", 1).replace("Mary", "John", 1).replace("#", "Mary", 1)


def test_classic_prompt_positions_by_hand(gpt2_tok):
    # BOS When Mary and John went to the store , John gave a drink to
    #  0   1    2    3   4    5   6  7    8   9  10   11  12  13   14
    p = "When Mary and John went to the store, John gave a drink to"
    pos = find_positions(gpt2_tok, p, "Mary", "John")
    assert (pos.io, pos.s1, pos.s1p1, pos.s2, pos.end, pos.n_tokens) == (2, 4, 5, 10, 14, 15)
    assert pos["S1+1"] == 5 and pos["END"] == 14 and pos.order == "ABBA"


def test_hand_written_prompt_with_name_first(tok):
    # No leading space on the first name: its token differs, but the position must still be right.
    p = "Mary and John went to the big old train station. John handed the red umbrella over to"
    pos = find_positions(tok, p, "Mary", "John")
    _check_row(tok, p, "Mary", "John", pos)


@pytest.mark.parametrize("name", ["tiny_gpt2", "tiny_llama"])
def test_tokenize_matches_the_bridge(name, request):
    model = request.getfixturevalue(name)
    for t in TEMPLATES:
        for order in ioi.ORDERS:
            p = ioi.render(t, order, "Mary", "John", "store", "drink")
            assert tokenize(model.tokenizer, p) == model.to_tokens(p)[0].tolist(), p


# --- name filter -----------------------------------------------------------------------------


def test_single_token_filter_drops_and_counts(tok, caplog):
    with caplog.at_level(logging.INFO, logger="circuitgen.ioi"):
        nf = single_token_names(tok, ["Mary", "Xiaoling", "John"])
    assert nf.kept == ("Mary", "John")
    assert nf.dropped == ("Xiaoling",) and nf.n_dropped == 1
    assert "dropped 1 of 3" in caplog.text and "Xiaoling" in caplog.text


def test_default_name_list_filter_is_consistent(tok):
    nf = single_token_names(tok, log=False)
    assert len(ioi.ioi_templates.NAMES) >= 60
    assert set(nf.kept) | set(nf.dropped) == set(ioi.ioi_templates.NAMES)
    assert not set(nf.kept) & set(nf.dropped)
    for n in nf.kept:
        assert len(tok.encode(" " + n, add_special_tokens=False)) == 1
    for n in nf.dropped:
        assert len(tok.encode(" " + n, add_special_tokens=False)) > 1
    assert "Xiaoling" in nf.dropped and len(nf.kept) >= 40


def test_generator_reports_dropped_names(gpt2_tok, caplog):
    names = ["Mary", "John", "Alice", "Bob", "Sarah", "David", "Xiaoling"]
    with caplog.at_level(logging.INFO, logger="circuitgen.ioi"):
        ps = generate_prompts(gpt2_tok, n=10, seed=0, names=names)
    assert ps.n_dropped == 1 and ps.names_dropped == ["Xiaoling"]
    assert ps.meta["n_names_kept"] == 6 and "Xiaoling" in caplog.text
    assert "Xiaoling" not in set(ps.df.io) | set(ps.df.s) | set(ps.df.abc_io)


def test_too_few_names_is_an_error(gpt2_tok):
    with pytest.raises(PromptError, match="single-token names survive"):
        generate_prompts(gpt2_tok, n=3, names=["Mary", "John", "Alice", "Xiaoling"])


# --- generated sets --------------------------------------------------------------------------


def test_generated_set_covers_templates_and_every_row_decodes(tok):
    n = 2 * len(TEMPLATES) * 2
    ps = generate_prompts(tok, n=n, seed=3)
    df = ps.df
    assert len(df) == n
    for col in ("prompt", "io", "s", "template", "order", "place", "object", "abc_prompt",
                "pos_io", "pos_s1", "pos_s1p1", "pos_s2", "pos_end", "tokenizer", "seed",
                "generator_version"):
        assert col in df.columns
    assert set(df.template) == set(range(len(TEMPLATES)))
    assert df.groupby(["template", "order"]).size().eq(2).all()
    assert (df.generator_version == GENERATOR_VERSION).all() and (df.seed == 3).all()
    assert (df.io != df.s).all()
    for r in df.itertuples():
        pos = ioi.Positions(r.pos_io, r.pos_s1, r.pos_s1p1, r.pos_s2, r.pos_end, r.n_tokens, r.order)
        _check_row(tok, r.prompt, r.io, r.s, pos)
        assert r.prompt.count(r.s) == 2 and r.prompt.count(r.io) == 1
        assert f" {r.place}" in r.prompt
        assert (r.prompt.index(r.io) < r.prompt.index(r.s)) == (r.order == "ABBA")


def test_abc_prompts_align_and_share_no_names(tok):
    ps = generate_prompts(tok, n=60, seed=1)
    for r in ps.df.itertuples():
        clean, abc = tokenize(tok, r.prompt), tokenize(tok, r.abc_prompt)
        assert len(clean) == len(abc), (r.prompt, r.abc_prompt)
        differ = [i for i, (a, b) in enumerate(zip(clean, abc)) if a != b]
        assert differ == sorted([r.pos_io, r.pos_s1, r.pos_s2])
        abc_names = {r.abc_io, r.abc_s1, r.abc_s2}
        assert len(abc_names) == 3 and not abc_names & {r.io, r.s}
        words = set(re.findall(r"\w+", r.abc_prompt))
        assert r.io not in words and r.s not in words
        assert _decode(tok, abc, r.pos_io).strip() == r.abc_io
        assert _decode(tok, abc, r.pos_s1).strip() == r.abc_s1
        assert _decode(tok, abc, r.pos_s2).strip() == r.abc_s2
        # S2 no longer repeats S1 in the ABC prompt.
        assert abc[r.pos_s1] != abc[r.pos_s2]


def test_same_seed_same_files_other_seed_differs(gpt2_tok, tmp_path):
    a = generate_prompts(gpt2_tok, n=40, seed=0).save(tmp_path / "a.csv")
    b = generate_prompts(gpt2_tok, n=40, seed=0).save(tmp_path / "b")
    c = generate_prompts(gpt2_tok, n=40, seed=1).save(tmp_path / "c")
    assert b.name == "b.csv"
    assert a.read_bytes() == b.read_bytes()
    assert ioi.meta_path(a).read_bytes() == ioi.meta_path(b).read_bytes()
    assert a.read_bytes() != c.read_bytes()


def test_round_trip_and_metadata(smollm2_tok, tmp_path, monkeypatch):
    monkeypatch.setattr(ioi, "PROMPTS_DIR", tmp_path)
    ps = generate_prompts(smollm2_tok, n=12, seed=5, tokenizer_name="smollm2-135m")
    path = ps.save("ioi-test")
    assert path == tmp_path / "ioi-test.csv" and (tmp_path / "ioi-test.meta.json").exists()
    back = load_prompt_set("ioi-test", require_meta=True)
    pd.testing.assert_frame_equal(back.df, ps.df)
    assert back.meta == ps.meta
    for key in ("seed", "generator_version", "tokenizer", "n_names_dropped", "names_dropped", "bos"):
        assert key in back.meta
    assert back.meta["tokenizer"] == "smollm2-135m" and (back.df.tokenizer == "smollm2-135m").all()
    assert back.meta["tokenizer_fingerprint"] == ioi.tokenizer_fingerprint(smollm2_tok)


def test_hand_written_csv_gets_positions(gpt2_tok, tmp_path):
    pd.DataFrame({
        "prompt": ["When Mary and John went to the store, John gave a drink to",
                   "Then, Alice and Bob went home. Alice gave it to"],
        "io": ["Mary", "Bob"], "s": ["John", "Alice"], "family": ["a", "b"],
    }).to_csv(tmp_path / "hand.csv", index=False)
    ps = load_prompt_set(tmp_path / "hand.csv")
    assert ps.meta == {}
    df = ioi.add_positions(ps.df, gpt2_tok)
    assert list(df.family) == ["a", "b"]
    assert df.loc[0, ["pos_io", "pos_s1", "pos_s2", "pos_end"]].tolist() == [2, 4, 10, 14]
    with pytest.raises(FileNotFoundError, match="no prompt set"):
        load_prompt_set(tmp_path / "missing.csv")


# --- find_positions errors -------------------------------------------------------------------

BASE = "Then, Mary and John went to the store. John gave a drink to"


@pytest.mark.parametrize("prompt, io, s, expect", [
    ("Then, Anna and John went to the store. John gave a drink to", "Mary", "John", "'Mary' appears 0 time"),
    ("Then, Mary and John went to the store. He gave a drink to", "Mary", "John", "'John' appears 1 time"),
    ("Then, Mary, John and John went out. John gave a drink to", "Mary", "John", "'John' appears 3 time"),
    ("Then, Mary and John went to see Mary. John gave a drink to", "Mary", "John", "'Mary' appears 2 time"),
    ("Then, John went out. John gave a drink to Mary and", "Mary", "John", "comes after the second mention"),
    ("Then, Xiaoling and John went to the store. John gave a drink to", "Xiaoling", "John",
     "tokens with a leading space"),
    ("(Emma and John went to the store), John gave a drink to", "Emma", "John",
     "not as one token of its own"),
    (BASE, "John", "John", "both 'John'"),
    (BASE + " ", "Mary", "John", "ends with whitespace"),
    ("Then, Mary and John went to the store, and so did John", "Mary", "John", "last token"),
    (BASE, "", "John", "non-empty"),
])
def test_find_positions_errors(tok, prompt, io, s, expect):
    with pytest.raises(PromptError) as err:
        find_positions(tok, prompt, io, s, row="r7")
    msg = str(err.value)
    assert expect in msg
    assert msg.startswith("row r7:") and repr(prompt) in msg


def test_find_positions_name_is_a_whole_word(gpt2_tok):
    # "Johnson" must not count as a mention of John.
    p = "Then, Mary and John met Mr Johnson at the store. John gave a drink to"
    pos = find_positions(gpt2_tok, p, "Mary", "John")
    _check_row(gpt2_tok, p, "Mary", "John", pos)


def test_add_positions_names_the_failing_row(gpt2_tok):
    df = pd.DataFrame({"prompt": [BASE, BASE.replace("Mary", "Anna")], "io": ["Mary", "Mary"],
                       "s": ["John", "John"], "prompt_id": ["ok-1", "bad-2"]})
    with pytest.raises(PromptError, match=r"^row bad-2: .*'Mary' appears 0 time"):
        ioi.add_positions(df, gpt2_tok)
    with pytest.raises(PromptError, match="lacks column"):
        ioi.add_positions(df.drop(columns="io"), gpt2_tok)


def test_malformed_template_is_rejected():
    with pytest.raises(PromptError, match="name slots"):
        ioi.Template(99, "Then, [A] and [B] went home. [A] gave it to")
    with pytest.raises(PromptError, match="must not start"):
        ioi.Template(98, "[B] and [A] went home. [B] gave it to")
