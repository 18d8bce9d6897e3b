"""The four tasks of the task axis (greater-than, agreement, capitals, pronouns) through the task
interface. Oracles are independent of the library: token indices written by hand from the
tokenizer's pieces, the answer words spelled out, the metric computed here from a tiny model's
logits with torch (softmax for greater-than), counterfactuals compared token by token."""

from __future__ import annotations

import importlib
import json
import re

import pandas as pd
import pytest
import torch

import circuitgen
from circuitgen import circuits, eap, scorer
from circuitgen import nodes as N
from circuitgen.task import PromptError, get_task
from circuitgen.tasks import words as W
from circuitgen.tasks.handwritten import heldout_path, load_heldout

TASKS = ("greater_than", "agreement", "capitals", "pronouns")
# tiny-gpt2 has GPT-2's tokenizer, which reads years as two-digit tokens: greater-than refuses it.
MODELS = {t: (["tiny_llama"] if t == "greater_than" else ["tiny_llama", "tiny_gpt2"]) for t in TASKS}
CASES = [(t, m) for t in TASKS for m in MODELS[t]]
# where a counterfactual may differ from its prompt (the other positions must be equal)
CHANGED = {"greater_than": ("TENS", "ONES"), "agreement": ("SUBJ",), "capitals": ("COUNTRY",),
           "pronouns": ("NAME",)}


@pytest.fixture
def model(request):
    return request.getfixturevalue(request.param)


def _ids(tok, text):
    return [tok.bos_token_id] + tok(text, add_special_tokens=False)["input_ids"]


def _word(tok, word, space=True):
    ids = tok((" " if space else "") + word, add_special_tokens=False)["input_ids"]
    assert len(ids) == 1, word
    return ids[0]


def _locate(task, tok, **row):
    return get_task(task).locate(tok, row, 0)


# --------------------------------------------------------------------------------------------
# Registry, layers, word lists


def test_registered_with_their_positions_and_metric():
    want = {"greater_than": (("TENS", "ONES", "END"), "prob_diff"),
            "agreement": (("SUBJ", "END"), "logit_diff"),
            "capitals": (("COUNTRY", "END"), "logit_diff"),
            "pronouns": (("NAME", "END"), "logit_diff")}
    for name, (positions, metric) in want.items():
        task = get_task(name)
        assert (task.positions, task.metric) == (positions, metric)
        assert name in circuitgen.task_names() and task.counterfactual_column == "cf_prompt"
        assert task.group_columns == ("template",)
    tasks_layer = dict(circuitgen.LAYERS)["tasks"]
    for mod in ("tasks.common", "tasks.words", *(f"tasks.{t}" for t in TASKS)):
        assert mod in tasks_layer


def test_word_lists_refusals_on_smollm2(tiny_llama):
    """The counts the word lists' comments state, for the SmolLM2 tokenizer, are recorded in the
    generated table's provenance, never dropped silently."""
    tok = tiny_llama.tokenizer
    meta = {t: get_task(t).generate(tok, n=4, seed=0).attrs["circuitgen"] for t in TASKS}
    assert meta["greater_than"]["nouns_refused"] == ["abduction", "insurgency", "notoriety", "overhaul",
                                                     "slump", "stint"]
    assert meta["greater_than"]["n_nouns_given"] == len(W.YEAR_NOUNS) == 121
    assert meta["agreement"]["n_noun_pairs_refused"] == 0
    assert meta["pronouns"]["female_names_refused"] == ["Natalie", "Megan"]
    assert meta["pronouns"]["n_male_names_refused"] == 0
    caps = meta["capitals"]
    assert "Thailand" in caps["countries_refused"] and "France" not in caps["countries_refused"]
    assert (caps["n_countries_refused"], caps["n_countries_kept"], caps["n_countries_given"]) == (31, 32, 63)
    for word in ("Bangkok", "Hanoi", "Kyiv"):  # refused because the capital is several tokens
        assert len(tok(" " + word, add_special_tokens=False)["input_ids"]) > 1


# --------------------------------------------------------------------------------------------
# Positions on hand-checked prompts (indices counted by hand, BOS at 0)


def test_positions_greater_than(tiny_llama):
    tok = tiny_llama.tokenizer
    # BOS The war lasted from the year ' ' 1 7 3 2 to the year ' ' 1 7
    #  0   1   2    3     4    5   6    7  8 9 10 11 12 13 14  15 16 17
    assert _locate("greater_than", tok, prompt="The war lasted from the year 1732 to the year 17",
                   start=1732) == {"pos_tens": 10, "pos_ones": 11, "pos_end": 17, "n_tokens": 18}
    # BOS The war lasted from ' ' 1 8 6 5 to ' ' 1 8
    #  0   1   2    3     4   5  6 7 8 9 10 11 12 13
    assert _locate("greater_than", tok, prompt="The war lasted from 1865 to 18",
                   start="1865") == {"pos_tens": 8, "pos_ones": 9, "pos_end": 13, "n_tokens": 14}


@pytest.mark.parametrize("model", ["tiny_llama", "tiny_gpt2"], indirect=True)
def test_positions_word_tasks(model):
    tok = model.tokenizer  # both tokenizers split these prompts into the same pieces
    # BOS The keys to the cabinet | BOS The books on the shelf
    assert _locate("agreement", tok, prompt="The keys to the cabinet", subject="keys",
                   number="plural") == {"pos_subj": 2, "pos_end": 5, "n_tokens": 6}
    assert _locate("agreement", tok, prompt="The books on the shelf", subject="books", number="plural",
                   attractor="shelf") == {"pos_subj": 2, "pos_end": 5, "n_tokens": 6}
    # BOS The capital of France is
    assert _locate("capitals", tok, prompt="The capital of France is", country="France", capital="Paris",
                   cf_country="Poland") == {"pos_country": 4, "pos_end": 5, "n_tokens": 6}
    # BOS Question : What is the capital of France ? Answer :
    #  0     1     2   3   4  5     6     7    8   9   10   11
    assert _locate("capitals", tok, prompt="Question: What is the capital of France? Answer:",
                   country="France", capital="Paris", cf_country="Poland") == {
        "pos_country": 8, "pos_end": 11, "n_tokens": 12}
    # BOS So Mary is such a good friend , isn 't
    assert _locate("pronouns", tok, prompt="So Mary is such a good friend, isn't", name="Mary",
                   gender="female") == {"pos_name": 2, "pos_end": 10, "n_tokens": 11}
    # BOS Well , John is really talented , isn 't
    assert _locate("pronouns", tok, prompt="Well, John is really talented, isn't", name="John",
                   gender="male") == {"pos_name": 3, "pos_end": 9, "n_tokens": 10}


# --------------------------------------------------------------------------------------------
# Answers spelled out


def test_answers_spelled_out(tiny_llama):
    tok = tiny_llama.tokenizer
    gt = get_task("greater_than").answer_tokens(tok, {"start": 1732, "prompt": "from 1732 to 17"})
    assert gt == ([_word(tok, d, space=False) for d in "456789"], [_word(tok, d, space=False) for d in "012"])
    # the equal tens digit (3) is in neither set
    assert _word(tok, "3", space=False) not in gt[0] + gt[1]
    # a prompt ending one digit later compares the ones digit: 1798 -> 179: 9 later, 0-7 earlier
    late = get_task("greater_than").answer_tokens(tok, {"start": "1798", "prompt": "from 1798 to 179"})
    assert late == ([_word(tok, "9", space=False)], [_word(tok, d, space=False) for d in "01234567"])
    assert get_task("agreement").answer_tokens(tok, {"subject": "keys", "number": "plural"}) == (
        [_word(tok, w) for w in ("are", "were", "have")], [_word(tok, w) for w in ("is", "was", "has")])
    assert get_task("agreement").answer_tokens(tok, {"subject": "key", "number": "singular"}) == (
        [_word(tok, w) for w in ("is", "was", "has")], [_word(tok, w) for w in ("are", "were", "have")])
    assert get_task("capitals").answer_tokens(tok, {"country": "France", "capital": "Paris",
                                                    "cf_country": "Poland"}) == (
        [_word(tok, "Paris")], [_word(tok, "Warsaw")])
    assert get_task("pronouns").answer_tokens(tok, {"name": "Mary", "gender": "female"}) == (
        [_word(tok, "she")], [_word(tok, "he")])
    assert get_task("pronouns").answer_tokens(tok, {"name": "John", "gender": "male"}) == (
        [_word(tok, "he")], [_word(tok, "she")])


FACTS = {"France": "Paris", "Germany": "Berlin", "Japan": "Tokyo", "Egypt": "Cairo", "Peru": "Lima",
         "Norway": "Oslo", "Kenya": "Nairobi", "Cuba": "Havana", "Greece": "Athens", "Spain": "Madrid"}


@pytest.mark.parametrize("task,model", CASES, indirect=["model"])
def test_generated_prompts(task, model):
    """Every generated prompt: answers one token each, its counterfactual aligned and different
    exactly at the positions it should be, the partner what the task says it is."""
    tok = model.tokenizer
    t = get_task(task)
    df = t.generate(tok, n=24, seed=1)
    assert len(df) == 24
    assert (t.generate(tok, n=24, seed=1).prompt == df.prompt).all()  # seeded
    assert df.template.value_counts().max() - df.template.value_counts().min() <= 1  # balanced
    for idx, row in zip(df.index, df.to_dict("records")):
        pos = t.locate(tok, row, idx)
        answer, wrong = t.answer_tokens(tok, row)
        assert answer and wrong and not set(answer) & set(wrong)
        clean, cf = _ids(tok, row["prompt"]), _ids(tok, row["cf_prompt"])
        assert len(clean) == len(cf) == pos["n_tokens"] and pos["pos_end"] == len(clean) - 1
        differ = {i for i, (a, b) in enumerate(zip(clean, cf)) if a != b}
        allowed = {pos[t.position_column(p)] for p in CHANGED[task]}
        assert differ and differ <= allowed, (row["prompt"], row["cf_prompt"])
        if task == "greater_than":
            start = str(row["start"])
            assert 10 <= int(start[-2:]) <= 89 and row["cf_start"] == start[:2] + "01"
            assert row["prompt"].endswith(start[:2])
            assert row["cf_prompt"].replace(row["cf_start"], start) == row["prompt"]
            assert differ == {pos["pos_tens"]} | ({pos["pos_ones"]} if start[-1] != "1" else set())
        elif task == "agreement":
            other = {"singular": 1, "plural": 0}[row["number"]]
            pair = next(p for p in W.NOUN_PAIRS if row["subject"] in p)
            assert row["subject"] == pair[1 - other] and row["cf_subject"] == pair[other]
            assert tok.decode([clean[pos["pos_subj"]]]).strip() == row["subject"]
            assert tok.decode([cf[pos["pos_subj"]]]).strip() == row["cf_subject"]
            same = row["attractor_number"] == row["number"]
            assert row["condition"] == ("attractor_same" if same else "attractor_other")
        elif task == "capitals":
            assert row["cf_country"] != row["country"] and row["capital"] == W.CAPITALS[row["country"]]
            assert row["cf_capital"] == W.CAPITALS[row["cf_country"]] != row["capital"]
            if row["country"] in FACTS:
                assert row["capital"] == FACTS[row["country"]]
            if row["cf_country"] in FACTS:
                assert row["cf_capital"] == FACTS[row["cf_country"]]
            assert row["country"] not in W.CAPITAL_NOT_LARGEST + tuple(W.CAPITALS_EXCLUDED)
            assert answer == [_word(tok, row["capital"])] and wrong == [_word(tok, row["cf_capital"])]
        else:
            names = {"female": W.FEMALE_NAMES, "male": W.MALE_NAMES}
            other = {"female": "male", "male": "female"}[row["gender"]]
            assert row["name"] in names[row["gender"]] and row["cf_name"] in names[other]
            assert answer == [_word(tok, {"female": "she", "male": "he"}[row["gender"]])]


def test_counterfactuals_of_hand_written_rows(tiny_llama):
    tok = tiny_llama.tokenizer
    gt = get_task("greater_than").counterfactuals(pd.DataFrame(
        {"prompt": ["The war lasted from the year 1732 to the year 17"], "start": [1732]}), tok)
    assert gt.cf_prompt.tolist() == ["The war lasted from the year 1701 to the year 17"]
    ag = get_task("agreement").counterfactuals(pd.DataFrame(
        {"prompt": ["The keys to the cabinet", "The child near the doors"], "subject": ["keys", "child"],
         "number": ["plural", "singular"]}), tok)
    assert ag.cf_prompt.tolist() == ["The key to the cabinet", "The children near the doors"]
    cap = get_task("capitals").counterfactuals(pd.DataFrame(
        {"prompt": ["The capital of France is"], "country": ["France"], "capital": ["Paris"],
         "cf_country": ["Poland"]}), tok)
    assert cap.cf_prompt.tolist() == ["The capital of Poland is"] and cap.cf_capital.tolist() == ["Warsaw"]
    pr = get_task("pronouns").counterfactuals(pd.DataFrame(
        {"prompt": ["So Mary is such a good friend, isn't"] * 6, "name": ["Mary"] * 6,
         "gender": ["female"] * 6}), tok, seed=3)
    assert all(n in W.MALE_NAMES for n in pr.cf_name)
    assert pr.cf_prompt.tolist() == [f"So {n} is such a good friend, isn't" for n in pr.cf_name]


# --------------------------------------------------------------------------------------------
# Refusals: one line, saying what is wrong


REFUSALS = [
    ("greater_than", {"prompt": "The war lasted from the year 1795 to the year 17", "start": 1795},
     "tens digit 9"),
    ("greater_than", {"prompt": "The war lasted from the year 1705 to the year 17", "start": 1705},
     "tens digit 0"),
    ("greater_than", {"prompt": "The war lasted from the year 1790 to the year 179", "start": 1790},
     "ones digit 0"),
    ("greater_than", {"prompt": "The war lasted from the year 1732 to the year 18", "start": 1732},
     "must end with the start's leading digits 17"),
    ("greater_than", {"prompt": "The war lasted from the year 1732 to the year", "start": 1732},
     "must end with the start's leading digits 17"),
    ("greater_than", {"prompt": "From 1732 to 1732, then to 17", "start": 1732}, "appears 2 times"),
    ("greater_than", {"prompt": "The war lasted to 17", "start": "17x"}, "not a number"),
    ("agreement", {"prompt": "The keys", "subject": "keys", "number": "plural"}, "is the last token"),
    ("agreement", {"prompt": "The keys to the cabinet", "subject": "keys", "number": "singular"},
     "'keys' is plural, but number says singular"),
    ("agreement", {"prompt": "The keys to the cabinet", "subject": "keys", "number": "dual"},
     "not 'singular' or 'plural'"),
    ("agreement", {"prompt": "The keys to the cabinet", "subject": "lock", "number": "singular"},
     "appears 0 times"),
    ("capitals", {"prompt": "The capital of France is ", "country": "France", "capital": "Paris",
                  "cf_country": "Poland"}, "ends with whitespace"),
    ("capitals", {"prompt": "The capital of France", "country": "France", "capital": "Paris",
                  "cf_country": "Poland"}, "is the last token"),
    ("pronouns", {"prompt": "So Mary is such a good friend, isn't", "name": "Mary", "gender": "male"},
     "'Mary' is female in the name lists"),
    ("pronouns", {"prompt": "So Mary is such a good friend, isn't", "name": "Mary", "gender": "robot"},
     "not 'female' or 'male'"),
]


@pytest.mark.parametrize("task,row,message", REFUSALS)
def test_refusals_locate(tiny_llama, task, row, message):
    with pytest.raises(PromptError, match=message.replace("(", r"\(")) as err:
        get_task(task).locate(tiny_llama.tokenizer, row, 7)
    assert str(err.value).startswith("row 7: ") and "\n" not in str(err.value)


def test_refusals_answers_and_counterfactuals(tiny_llama, tiny_gpt2):
    tok = tiny_llama.tokenizer
    cap = get_task("capitals")
    with pytest.raises(PromptError, match="'Bangkok' is 2 tokens"):
        cap.answer_tokens(tok, {"country": "Thailand", "capital": "Bangkok", "cf_country": "France"})
    with pytest.raises(PromptError, match="must differ"):
        cap.answer_tokens(tok, {"country": "France", "capital": "Paris", "cf_country": "France"})
    with pytest.raises(PromptError, match="add a cf_capital column"):
        cap.answer_tokens(tok, {"country": "France", "capital": "Paris", "cf_country": "Atlantis"})
    assert cap.answer_tokens(tok, {"country": "France", "capital": "Paris", "cf_country": "Atlantis",
                                   "cf_capital": "Rome"})[1] == [_word(tok, "Rome")]
    with pytest.raises(PromptError, match="must align token for token"):  # Czechia: 2 tokens
        cap.counterfactuals(pd.DataFrame({"prompt": ["The capital of France is"], "country": ["France"],
                                          "capital": ["Paris"], "cf_country": ["Czechia"]}), tok)
    with pytest.raises(PromptError, match="no other-number form of the subject 'sheep'"):
        get_task("agreement").counterfactuals(pd.DataFrame(
            {"prompt": ["The sheep near the barn"], "subject": ["sheep"], "number": ["plural"]}), tok)
    with pytest.raises(PromptError, match="of the other gender"):
        get_task("pronouns").counterfactuals(pd.DataFrame(
            {"prompt": ["So Mary is such a good friend, isn't"], "name": ["Mary"], "gender": ["female"],
             "cf_name": ["Anna"]}), tok)
    gt = get_task("greater_than")
    with pytest.raises(PromptError, match="does not split numbers into single digits") as err:
        gt.locate(tiny_gpt2.tokenizer, {"prompt": "The war lasted from the year 1732 to the year 17",
                                        "start": 1732}, 0)
    assert "[' 17', '32']" in str(err.value)
    with pytest.raises(PromptError, match="single digits"):
        gt.generate(tiny_gpt2.tokenizer, n=2)
    with pytest.raises(PromptError, match="lacks column"):
        gt.check_columns(pd.DataFrame({"prompt": ["x"]}))


def test_scorer_reports_refused_rows(tiny_llama):
    df = pd.DataFrame({"prompt": ["The capital of France is", "The capital of Thailand is"],
                       "country": ["France", "Thailand"], "capital": ["Paris", "Bangkok"],
                       "cf_country": ["Poland", "France"]})
    checked = scorer.check_prompts(tiny_llama, df, "capitals")
    assert checked.status.iloc[0] == "ok" and checked.pos_country.iloc[0] == 4
    assert checked.status.iloc[1].startswith("row 1: ") and "'Bangkok' is 2 tokens" in checked.status.iloc[1]


# --------------------------------------------------------------------------------------------
# The metric, by hand from a tiny model's logits


def _spec(task):
    first = get_task(task).positions[0]
    return circuits.parse_circuit(f"""
model: tiny
task: {task}
classes:
  readers: {{heads: ["1.0", "1.1"], positions: [END]}}
  early: {{heads: ["0.1"], positions: [{first}, END]}}
""", source=f"<{task} spec>")


def _hand_metric(model, task, row):
    tok = model.tokenizer
    logits = model(torch.tensor([_ids(tok, row["prompt"])]))[0, -1].detach().double()
    if task == "greater_than":
        p = torch.softmax(logits, -1)
        tens = int(str(row["start"])[-2])
        later = sum(p[_word(tok, str(d), space=False)] for d in range(tens + 1, 10))
        earlier = sum(p[_word(tok, str(d), space=False)] for d in range(tens))
        return float(later - earlier)
    if task == "agreement":
        sing = [logits[_word(tok, w)] for w in ("is", "was", "has")]
        plur = [logits[_word(tok, w)] for w in ("are", "were", "have")]
        diff = sum(sing) / 3 - sum(plur) / 3
        return float(diff if row["number"] == "singular" else -diff)
    if task == "capitals":
        return float(logits[_word(tok, row["capital"])] - logits[_word(tok, W.CAPITALS[row["cf_country"]])])
    she, he = logits[_word(tok, "she")], logits[_word(tok, "he")]
    return float(she - he if row["gender"] == "female" else he - she)


@pytest.mark.parametrize("task,model", CASES, indirect=["model"])
def test_metric_against_hand_computation(task, model):
    """The scorer's model metric (batched, right-padded, read at END) equals the metric computed
    here one prompt at a time from the logits; under resample ablation the all-heads circuit is
    the model and the empty circuit is the counterfactual-carrying run."""
    df = get_task(task).generate(model.tokenizer, n=10, seed=4)
    scores = scorer.score_circuit(model, _spec(task), df, ablation=scorer.Ablation("resample"),
                                  batch_size=4, progress=False, knockouts=False)
    want = [_hand_metric(model, task, r) for r in df.to_dict("records")]
    tol = 1e-6 if task == "greater_than" else 1e-4
    assert scores.logit_diff.to_numpy() == pytest.approx(want, abs=tol)
    assert scores.attrs["circuitgen"]["task"] == task


# --------------------------------------------------------------------------------------------
# A planted circuit, recovered through the task interface


@pytest.mark.parametrize("task", TASKS)
def test_planted_head_recovered(tiny_llama, task):
    """Every head's W_O but 1.2's zeroed: only 1.2 writes, and in the last layer only its END
    position reaches the logits. Through the task (its positions, counterfactuals, metric):
    EAP-IG ranks 1.2@END first and gives every other head nothing; the one-node circuit 1.2@END
    has normalised faithfulness 1 under resample ablation, and a circuit of any other head 0."""
    model = tiny_llama
    df = get_task(task).generate(model.tokenizer, n=8, seed=2)
    dh = model.cfg.d_head
    weights = [dict(b.attn.named_parameters())["_original_component.o_proj._original_component.weight"]
               for b in model.blocks]
    saved = [w.detach().clone() for w in weights]
    planted = circuits.parse_circuit(f"model: tiny\ntask: {task}\nclasses:\n"
                                     "  p: {heads: ['1.2'], positions: [END]}\n")
    other = circuits.parse_circuit(f"model: tiny\ntask: {task}\nclasses:\n"
                                   "  o: {heads: ['1.0', '1.1', '0.0', '0.1', '0.2'], positions: [ALL]}\n")
    abl = scorer.Ablation("resample")
    try:
        with torch.no_grad():
            for layer, w in enumerate(weights):
                for h in range(model.cfg.n_heads):
                    if (layer, h) != (1, 2):
                        w[:, h * dh:(h + 1) * dh] = 0
        table = eap.eap_ig_nodes(model, df, steps=3, task=task, progress=False)
        kept = scorer.score_circuit(model, planted, df, ablation=abl, progress=False, knockouts=False)
        rest = scorer.score_circuit(model, other, df, ablation=abl, progress=False, knockouts=False)
    finally:
        with torch.no_grad():
            for w, s in zip(weights, saved):
                w.copy_(s)
    assert set(table.role) == {*get_task(task).positions, "other"}
    assert N.top_nodes(table, 1)[0].label == "1.2@END"
    heads = table[table["kind"] == "head"].set_index("node")["score"]
    assert heads["1.2@END"] != 0 and heads.drop("1.2@END").abs().max() < 1e-3 * abs(heads["1.2@END"])
    assert kept.attrs["circuitgen"]["normalised_faithfulness"] == pytest.approx(1.0, abs=1e-4)
    assert rest.attrs["circuitgen"]["normalised_faithfulness"] == pytest.approx(0.0, abs=1e-4)


# --------------------------------------------------------------------------------------------
# The reference model does each task (slow: the 135M model)

# Measured on 2026-12-03 (40 prompts, seed 0; LAB_NOTEBOOK.md): greater-than 40/40, mean prob_diff
# 0.59; agreement 38/40, 1.75 (attractor of the same number 20/20, of the other 18/20); capitals
# 39/40, 8.7; pronouns 40/40, 3.6. Hand-written held-out: 34/34, 0.67; 32/34, 1.82; 32/32, 9.1;
# 30/32, 4.0. The floors below leave room for numerical noise, not for a broken task.
FLOORS = {"greater_than": (0.9, 0.4), "agreement": (0.85, 1.0), "capitals": (0.9, 5.0),
          "pronouns": (0.9, 2.0)}


@pytest.mark.parametrize("source", ["generated", "heldout"])
@pytest.mark.parametrize("task", TASKS)
def test_smollm2_does_the_task(smollm2, task, source):
    """Accuracy and mean metric on 40 generated prompts (or the 32-34 hand-written held-out
    ones), batched through the task interface; the first three prompts' metric also by hand, one
    at a time."""
    from circuitgen import batch as B

    df = (get_task(task).generate(smollm2.tokenizer, n=40, seed=0) if source == "generated"
          else load_heldout(task, smollm2.tokenizer))
    with torch.no_grad():
        batch = B.encode(smollm2, df, task=task)
        values = B.logit_diff(B.forward(smollm2, batch), batch)
    hand = [_hand_metric(smollm2, task, r) for r in df.head(3).to_dict("records")]
    assert values[:3].numpy() == pytest.approx(hand, abs=1e-3 if task != "greater_than" else 1e-5)
    accuracy, mean = float((values > 0).float().mean()), float(values.mean())
    print(f"{task} ({source}): accuracy {accuracy:.3f}, mean {get_task(task).metric} {mean:.3f} "
          f"(n={len(df)})")
    min_acc, min_mean = FLOORS[task]
    assert accuracy >= min_acc and mean >= min_mean


# --------------------------------------------------------------------------------------------
# The command line: generate a task's prompts, then score them


@pytest.mark.parametrize("task", TASKS)
def test_cli_prompts_then_score(tmp_path, capsys, tiny_llama, task):
    """`circuitgen prompts --task T` writes a CSV (+ .meta.json with the refused words) that
    `circuitgen score --task T` scores; the model metric in the scores equals the hand metric."""
    from circuitgen import cli

    prompts, scores = tmp_path / "p.csv", tmp_path / "s.csv"
    assert cli.main(["prompts", "--task", task, "--model", "tiny-llama", "--n", "12", "--seed", "2",
                     "--out", str(prompts)]) == 0
    out = capsys.readouterr().out
    assert f"wrote 12 {task} prompts" in out and "refused (not one token" in out
    meta = json.loads(prompts.with_name("p.meta.json").read_text())
    assert meta["task"] == task and meta["seed"] == 2 and meta["tokenizer"] == "tiny-llama"
    df = pd.read_csv(prompts, keep_default_na=False)
    assert len(df) == 12 and set(get_task(task).required_columns) <= set(df.columns)
    assert (df.prompt == get_task(task).generate(tiny_llama.tokenizer, n=12, seed=2).prompt).all()
    spec = tmp_path / "c.yaml"
    spec.write_text(f"model: tiny-llama\ntask: {task}\nclasses:\n  r: {{heads: ['1.0'], positions: [END]}}\n")
    args = ["score", "--model", "tiny-llama", "--task", task, "--circuit", str(spec), "--prompts",
            str(prompts), "--out", str(scores), "--no-progress", "--ablation", "resample"]
    assert cli.main(args) == 0, capsys.readouterr().err
    scored = pd.read_csv(scores)
    want = [_hand_metric(tiny_llama, task, r) for r in df.to_dict("records")]
    assert scored.logit_diff.to_numpy() == pytest.approx(want, abs=1e-6 if task == "greater_than" else 1e-4)
    assert json.loads(scores.with_name("s.meta.json").read_text())["task"] == task
    # mean ablation groups the counterfactuals by template: 12 prompts are too few, said in one line
    capsys.readouterr()
    assert cli.main([*args[:-1], "mean"]) == 2
    err = capsys.readouterr().err.strip()
    assert "\n" not in err and "fewer than 20 counterfactual prompts" in err


def test_cli_prompts_refusals(tmp_path, capsys):
    from circuitgen import cli

    out = str(tmp_path / "p.csv")
    assert cli.main(["prompts", "--task", "greater_than", "--model", "tiny-gpt2", "--n", "4",
                     "--out", out]) == 2
    assert "does not split numbers into single digits" in capsys.readouterr().err
    assert cli.main(["prompts", "--task", "capitals", "--orders", "ABBA", "--n", "4", "--out", out]) == 2
    assert "options of the IOI generator" in capsys.readouterr().err


# --------------------------------------------------------------------------------------------
# Hand-written held-out prompts (data/heldout/)


def _template_pattern(template: str) -> re.Pattern:
    """A generator template as a regex: each slot one word, as the generator fills it."""
    return re.compile(re.sub(r"\\\{\w+\\\}", r"\\w+", re.escape(template)))


@pytest.mark.parametrize("task", TASKS)
def test_heldout_prompts(tiny_llama, task):
    """At least 30 per task, none in a generator template, every row scored with the task's own
    code on the SmolLM2 tokenizer, each counterfactual differing only where it should."""
    tok = tiny_llama.tokenizer
    raw = pd.read_csv(heldout_path(task), keep_default_na=False, dtype=str)
    assert len(raw) >= 30 and raw.prompt.is_unique and (raw.note != "").all()
    assert raw.template.str.startswith(f"hand:{task}:").all()
    templates = importlib.import_module(f"circuitgen.tasks.{task}").TEMPLATES
    family_templates = {tpl for conds in _families(task).values() for c in conds.values()
                        for tpl in c.templates}
    patterns = [_template_pattern(t) for t in (*templates, *sorted(family_templates))]
    generated = get_task(task).generate(tok, n=len(templates), seed=0)
    assert all(any(p.fullmatch(q) for p in patterns) for q in generated.prompt)  # the check bites
    for prompt in raw.prompt:
        assert not any(p.fullmatch(prompt) for p in patterns), prompt
        assert prompt not in set(generated.prompt)
    frame = load_heldout(task, tok)
    assert len(frame) == len(raw) and frame.attrs["skipped"] == []
    assert frame.prompt_id.tolist() == list(range(len(raw)))
    t = get_task(task)
    for row in frame.to_dict("records"):
        clean, cf = _ids(tok, row["prompt"]), _ids(tok, row["cf_prompt"])
        differ = {i for i, (a, b) in enumerate(zip(clean, cf)) if a != b}
        assert len(clean) == len(cf) == row["n_tokens"] and row["pos_end"] == len(clean) - 1
        assert differ and differ <= {row[t.position_column(p)] for p in CHANGED[task]}, row["prompt"]
    if task == "pronouns":
        assert set(raw.gender) == {"female", "male"} and (raw.gender == "female").sum() == len(raw) // 2


def test_heldout_rows_another_tokenizer_cannot_score_are_recorded(tiny_gpt2):
    """GPT-2's tokenizer splits some capitals (Nairobi): those rows are skipped and recorded with
    their reason, the rest kept; greater-than's years are never split into digits there: refused."""
    raw = pd.read_csv(heldout_path("capitals"), keep_default_na=False)
    frame = load_heldout("capitals", tiny_gpt2.tokenizer)
    skipped = frame.attrs["skipped"]
    assert skipped and len(frame) + len(skipped) == len(raw)
    assert all("tokens with a leading space" in s["reason"] for s in skipped)
    assert {s["row"] for s in skipped}.isdisjoint(frame.prompt_id)
    with pytest.raises(PromptError, match="no row can be scored"):
        load_heldout("greater_than", tiny_gpt2.tokenizer)


# --------------------------------------------------------------------------------------------
# Variation families (issue 20 item 2)


def _families(task):
    return importlib.import_module(f"circuitgen.tasks.{task}").FAMILIES


FAMILY_CASES = [(t, f) for t in TASKS for f in _families(t)]


def _condition_facts(task, cond, row, tok):
    """What each condition promises, checked on one row against the word lists and by hand."""
    if task == "greater_than":
        start = str(row["start"])
        if cond == "new_nouns":
            assert row["noun"] in W.NEW_YEAR_NOUNS and row["noun"] not in W.YEAR_NOUNS
        if cond == "late_centuries":
            assert start[:2] in ("18", "19")
        if cond == "late_start":
            assert 91 <= int(start[-2:]) <= 98 and row["prompt"].endswith(" " + start[:3])
            ones = int(start[-1])
            assert get_task(task).answer_tokens(tok, row) == (
                [_word(tok, str(d), space=False) for d in range(ones + 1, 10)],
                [_word(tok, str(d), space=False) for d in range(ones)])
        if cond == "distractor":
            other = row["distractor"]
            assert other[:2] == start[:2] and other[2] != start[2] and other in row["cf_prompt"]
        if cond == "prices":
            assert f"${start}" in row["prompt"]
    elif task == "agreement":
        forms = {"irregular": W.IRREGULAR_PAIRS, "collective": W.COLLECTIVE_PAIRS}
        if cond in forms:
            assert any(row["subject"] in pair for pair in forms[cond])
        same = row["attractor_number"] == row["number"]
        if row["family"] == "adversarial":
            assert same == (cond == "base")
        if cond == "two_attractors_other":
            pair = next(p for p in W.NOUN_PAIRS if row["attractor2"] in p)
            assert ("singular", "plural")[pair.index(row["attractor2"])] == row["attractor_number"] \
                != row["number"]
    elif task == "capitals":
        if cond == "not_largest":
            assert row["country"] in W.CAPITAL_NOT_LARGEST
        else:
            assert row["country"] not in W.CAPITAL_NOT_LARGEST
        if cond == "distractor_country":
            assert row["distractor"] not in (row["country"], row["cf_country"])
            assert row["distractor"] in row["prompt"] and row["distractor"] in row["cf_prompt"]
        if cond == "wrong_capital_named":
            assert row["cf_capital"] in row["prompt"] and row["cf_capital"] == W.CAPITALS[row["cf_country"]]
    else:
        genders = {"female": (W.FEMALE_NAMES, W.RARE_FEMALE_NAMES), "male": (W.MALE_NAMES, W.RARE_MALE_NAMES)}
        common, rare = genders[row["gender"]]
        assert row["name"] in (rare if cond == "rare_names" else common)
        if cond == "distractor_name":
            other = "male" if row["gender"] == "female" else "female"
            assert row["distractor"] in genders[other][0] and row["distractor"] != row["cf_name"]


@pytest.mark.parametrize("task,family", FAMILY_CASES)
def test_variation_families(tiny_llama, task, family):
    """At least three families a task, each a base and at least one other condition of 40
    prompts over at least 5 templates; every row one the task scores, its counterfactual aligned
    and different only where it should be, and what its condition promises."""
    tok = tiny_llama.tokenizer
    t = get_task(task)
    assert len(_families(task)) >= 3
    conditions = _families(task)[family]
    assert "base" in conditions and len(conditions) >= 2
    df = t.generate_family(family, tok, n_per_condition=40, seed=0)
    assert set(df.condition) == set(conditions) and (df.family == family).all()
    for cond, part in df.groupby("condition"):
        assert len(part) == 40 and part.template.nunique() >= 5, cond
        assert part.template.str.startswith(f"{cond}:").all()
    assert df.prompt_id.tolist() == list(range(len(df)))
    for idx, row in zip(df.index, df.to_dict("records")):
        pos = t.locate(tok, row, idx)
        answer, wrong = t.answer_tokens(tok, row)
        assert answer and wrong and not set(answer) & set(wrong)
        clean, cf = _ids(tok, row["prompt"]), _ids(tok, row["cf_prompt"])
        differ = {i for i, (a, b) in enumerate(zip(clean, cf)) if a != b}
        assert len(clean) == len(cf) == pos["n_tokens"]
        assert differ and differ <= {pos[t.position_column(p)] for p in CHANGED[task]}, row["prompt"]
        _condition_facts(task, row["condition"], row, tok)
    again = t.generate_family(family, tok, n_per_condition=40, seed=0)
    assert again.prompt.tolist() == df.prompt.tolist()
    assert t.generate_family(family, tok, n_per_condition=40, seed=1).prompt.tolist() != df.prompt.tolist()


def test_unknown_family_refused(tiny_llama):
    with pytest.raises(PromptError, match="unknown capitals family 'nope'"):
        get_task("capitals").generate_family("nope", tiny_llama.tokenizer)
