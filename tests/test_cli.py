"""The ``circuitgen`` command line: score, prompts and bench end to end, and one-line errors."""

from __future__ import annotations

import json
import os
import pathlib
import re
import subprocess
import sys

import pandas as pd
import pytest
import torch

from circuitgen import bench, cli, ioi, models
from circuitgen.paths import PROMPTS_DIR

HAND = PROMPTS_DIR / "handwritten-examples.csv"
TINY_SPEC = """
model: tiny-gpt2
task: ioi
classes:
  movers: {heads: ["1.0", "1.3"], positions: [END], signature: {from: END, to: IO}}
  inhibit: {heads: ["0.2"], positions: [S2, END], signature: {from: END, to: S2}}
"""


@pytest.fixture()
def spec_file(tmp_path) -> pathlib.Path:
    path = tmp_path / "tiny.yaml"
    path.write_text(TINY_SPEC)
    return path


def run_main(capsys, *argv) -> tuple[int, str, str]:
    rc = cli.main([str(a) for a in argv])
    out, err = capsys.readouterr()
    return rc, out, err


def assert_one_line_error(rc: int, err: str, *needles: str) -> None:
    assert rc == 2, err
    lines = [ln for ln in err.splitlines() if ln.strip()]
    assert len(lines) == 1, f"want one line on stderr, got:\n{err}"
    assert lines[0].startswith("circuitgen: error:"), lines[0]
    assert "Traceback" not in err
    for needle in needles:
        assert needle in lines[0], (needle, lines[0])


def plain_logit_diffs(name: str, df: pd.DataFrame) -> list[float]:
    """IO - S at the last token from the plain ``transformers`` model, BOS prepended, one prompt
    at a time (no TransformerLens, no padding, no circuitgen batching)."""
    hf, tok = models.hf_model_and_tokenizer(name)
    hf.eval()
    out = []
    with torch.no_grad():
        for r in df.itertuples():
            ids = [tok.bos_token_id] + tok(r.prompt, add_special_tokens=False)["input_ids"]
            logits = hf(torch.tensor([ids])).logits[0, -1]
            io, s = (tok(" " + n, add_special_tokens=False)["input_ids"] for n in (r.io, r.s))
            assert len(io) == len(s) == 1
            out.append(float(logits[io[0]] - logits[s[0]]))
    return out


# ---- score ----------------------------------------------------------------------------------

def test_handwritten_examples_are_new_templates():
    df = pd.read_csv(HAND, keep_default_na=False)
    assert 8 <= len(df) <= 10 and {"prompt", "io", "s", "note"} <= set(df.columns)
    assert (df.note != "").all()
    # No hand-written prompt is a generator template with its slots filled, in either order.
    patterns = [re.compile("^" + re.sub(r"\\\[(A|B|PLACE|OBJECT)\\\]", r"\\w+", re.escape(t.text)) + "$")
                for t in ioi.TEMPLATES]
    assert patterns[0].match(ioi.render(0, "ABBA", "Mary", "John"))
    for prompt in df.prompt:
        assert not any(p.match(prompt) for p in patterns), prompt


def test_score_handwritten_prompts(capsys, tmp_path, spec_file):
    out = tmp_path / "sub" / "scores.csv"
    rc, stdout, err = run_main(capsys, "score", "--model", "tiny-gpt2", "--circuit", spec_file,
                               "--prompts", HAND, "--out", out, "--batch-size", "4")
    assert rc == 0, err
    scores = pd.read_csv(out, keep_default_na=False)
    given = pd.read_csv(HAND, keep_default_na=False)
    assert len(scores) == len(given)
    assert list(scores.note) == list(given.note), "extra columns pass through in order"
    for col in ("logit_diff", "circuit_logit_diff", "faithfulness", "sig_movers", "sig_inhibit",
                "ko_movers", "ko_inhibit", "status", "pos_end"):
        assert col in scores.columns, col
    assert (scores.status == "ok").all()
    meta = json.loads(out.with_name("scores.meta.json").read_text())
    assert meta["model"] == "tiny-gpt2" and meta["n_scored"] == len(given) and meta["n_flagged"] == 0
    assert meta["ablation"]["method"] == "mean" and meta["knockouts"] is True
    ratio = scores.circuit_logit_diff.mean() / scores.logit_diff.mean()
    assert meta["faithfulness_ratio_of_means"] == pytest.approx(ratio, rel=1e-5)
    # The summary: counts, the quartile table and the ratio of means.
    assert f"scored {len(given)} of {len(given)} prompts (0 flagged)" in stdout
    assert "faithfulness (ratio of means): " + f"{ratio:.3f}" in stdout
    for word in ("mean", "25%", "50%", "75%", "logit_diff", "ko_movers", "sig_inhibit"):
        assert word in stdout
    # The logit difference is the model's own, from a plain transformers forward pass.
    want = plain_logit_diffs("tiny-gpt2", given)
    assert scores.logit_diff.tolist() == pytest.approx(want, abs=1e-3)
    assert "scoring" in err, "a progress bar on stderr"


@pytest.mark.slow
def test_score_logit_diff_matches_transformers_on_the_embedded_model(capsys, tmp_path):
    df = pd.read_csv(HAND, keep_default_na=False).iloc[[0, 2, 7, 9]]
    prompts = tmp_path / "four.csv"
    df.to_csv(prompts, index=False)
    spec = tmp_path / "small.yaml"
    spec.write_text("model: smollm2-135m\ntask: ioi\nclasses:\n"
                    "  late: {heads: [\"20.3\", \"25.1\"], positions: [END],"
                    " signature: {from: END, to: IO}}\n")
    out = tmp_path / "s.csv"
    rc, stdout, err = run_main(capsys, "score", "--model", "smollm2-135m", "--circuit", spec,
                               "--prompts", prompts, "--out", out, "--no-knockouts", "--no-progress")
    assert rc == 0, err
    scores = pd.read_csv(out)
    want = plain_logit_diffs("smollm2-135m", df)
    assert scores.logit_diff.tolist() == pytest.approx(want, abs=1e-3)
    assert min(want) > 0, "the real model prefers the indirect object on these prompts"
    assert "ko_late" not in scores.columns and "scored 4 of 4" in stdout


def test_ablation_option_and_reference(capsys, tmp_path, spec_file):
    ref = tmp_path / "ref.csv"
    ioi.generate_prompts("tiny-gpt2", n=8, seed=5).save(ref)
    results = {}
    for name, extra in {"zero": ["--ablation", "zero"], "ref": ["--reference", ref],
                        "own": []}.items():
        out = tmp_path / f"{name}.csv"
        rc, _, err = run_main(capsys, "score", "--model", "tiny-gpt2", "--circuit", spec_file,
                              "--prompts", HAND, "--out", out, "--no-progress", "--no-knockouts", *extra)
        assert rc == 0, err
        results[name] = (pd.read_csv(out), json.loads(out.with_name(f"{name}.meta.json").read_text()))
    assert results["zero"][1]["ablation"]["method"] == "zero"
    assert results["ref"][1]["ablation"]["sources"][0].startswith("the given reference table")
    assert results["ref"][1]["ablation"]["group_by"] == ["order"]
    assert "ko_movers" not in results["own"][0].columns
    own, zero, withref = (results[k][0].circuit_logit_diff for k in ("own", "zero", "ref"))
    assert not own.equals(zero) and not own.equals(withref)
    pd.testing.assert_series_equal(results["own"][0].logit_diff, results["zero"][0].logit_diff)


def test_skip_invalid_scores_the_rest(capsys, tmp_path, spec_file):
    bad = tmp_path / "bad.csv"
    _bad_rows().to_csv(bad, index=False)
    out = tmp_path / "s.csv"
    rc, stdout, err = run_main(capsys, "score", "--model", "tiny-gpt2", "--circuit", spec_file,
                               "--prompts", bad, "--out", out, "--skip-invalid", "--no-progress")
    assert rc == 0, err
    scores = pd.read_csv(out, keep_default_na=False)
    assert len(scores) == 4 and (scores.status == "ok").sum() == 1
    assert "scored 1 of 4 prompts (3 flagged)" in stdout and "flagged row 1" in stdout


# ---- bad input: exit 2 and one line ---------------------------------------------------------

def _bad_rows() -> pd.DataFrame:
    return pd.DataFrame({
        "prompt": ["When Mary and John went to the store, John gave a drink to",
                   "When Mary and John went to the store, Bob gave a drink to",
                   "When Mary and John went to the store, John gave a drink to ",
                   "When Xiaoling and John went to the store, John gave a drink to"],
        "io": ["Mary", "Mary", "Mary", "Xiaoling"], "s": ["John"] * 4,
    })


def test_unknown_model(capsys, tmp_path, spec_file):
    rc, _, err = run_main(capsys, "score", "--model", "no-such-model", "--circuit", spec_file,
                          "--prompts", HAND, "--out", tmp_path / "s.csv")
    assert_one_line_error(rc, err, "unknown model 'no-such-model'", "smollm2-135m")


def test_unreachable_hub_in_a_subprocess(tmp_path, spec_file):
    """The real entry point (python -m circuitgen): status 2, one line, no traceback."""
    env = os.environ | {"HF_HUB_OFFLINE": "1"}
    proc = subprocess.run(
        [sys.executable, "-m", "circuitgen", "score", "--model", "nobody-here/no-such-model-xyz",
         "--circuit", str(spec_file), "--prompts", str(HAND), "--out", str(tmp_path / "s.csv")],
        capture_output=True, text=True, env=env, timeout=300)
    assert_one_line_error(proc.returncode, proc.stderr, "nobody-here/no-such-model-xyz",
                          "unreachable", "smollm2-135m")
    assert not (tmp_path / "s.csv").exists()


@pytest.mark.parametrize("text, needle", [
    ("model: x\ntask: ioi\nclasses:\n  a: {heads: [9.10], positions: [END]}\n", "Quote it"),
    ("model: x\ntask: ioi\nclasses:\n  a: {heads: [\"1.0\"], positions: [END\n", "not valid YAML"),
    ("model: x\ntask: ioi\nclases: {}\n", "did you mean 'classes'"),
])
def test_malformed_spec(capsys, tmp_path, text, needle):
    spec = tmp_path / "bad.yaml"
    spec.write_text(text)
    rc, _, err = run_main(capsys, "score", "--model", "tiny-gpt2", "--circuit", spec,
                          "--prompts", HAND, "--out", tmp_path / "s.csv")
    assert_one_line_error(rc, err, needle, "bad.yaml")


def test_missing_spec_file(capsys, tmp_path):
    rc, _, err = run_main(capsys, "score", "--model", "tiny-gpt2", "--circuit", tmp_path / "no.yaml",
                          "--prompts", HAND, "--out", tmp_path / "s.csv")
    assert_one_line_error(rc, err, "no such circuit spec")


def test_missing_csv(capsys, tmp_path, spec_file):
    rc, _, err = run_main(capsys, "score", "--model", "tiny-gpt2", "--circuit", spec_file,
                          "--prompts", tmp_path / "nothing.csv", "--out", tmp_path / "s.csv")
    assert_one_line_error(rc, err, "no prompt set at", "nothing.csv")


def test_missing_columns(capsys, tmp_path, spec_file):
    csv = tmp_path / "cols.csv"
    pd.read_csv(HAND).drop(columns=["s"]).to_csv(csv, index=False)
    rc, _, err = run_main(capsys, "score", "--model", "tiny-gpt2", "--circuit", spec_file,
                          "--prompts", csv, "--out", tmp_path / "s.csv")
    assert_one_line_error(rc, err, "missing column(s) ['s']")


def test_invalid_rows_without_skip_invalid(capsys, tmp_path, spec_file):
    bad = tmp_path / "bad.csv"
    _bad_rows().to_csv(bad, index=False)
    rc, _, err = run_main(capsys, "score", "--model", "tiny-gpt2", "--circuit", spec_file,
                          "--prompts", bad, "--out", tmp_path / "s.csv", "--no-progress")
    assert_one_line_error(rc, err, "3 of 4 prompts cannot be scored", "row 1", "(and 2 more rows)",
                          "--skip-invalid")
    assert not (tmp_path / "s.csv").exists()


def test_spec_that_does_not_fit_the_model(capsys, tmp_path):
    rc, _, err = run_main(capsys, "score", "--model", "tiny-gpt2", "--circuit", "gpt2-ioi",
                          "--prompts", HAND, "--out", tmp_path / "s.csv")
    assert_one_line_error(rc, err, "does not exist in model 'tiny-gpt2'")


def test_usage_errors(capsys, tmp_path, spec_file):
    with pytest.raises(SystemExit) as exc:
        cli.main(["score", "--model", "tiny-gpt2", "--prompts", str(HAND), "--out", "x.csv"])
    assert_one_line_error(exc.value.code, capsys.readouterr().err, "--circuit")
    with pytest.raises(SystemExit) as exc:
        cli.main(["score", "--circuit", str(spec_file), "--prompts", str(HAND), "--out", "x.csv",
                  "--ablation", "median"])
    assert_one_line_error(exc.value.code, capsys.readouterr().err, "invalid choice: 'median'")
    rc, _, err = run_main(capsys, "score", "--model", "tiny-gpt2", "--circuit", spec_file,
                          "--prompts", HAND, "--out", tmp_path / "s.txt")
    assert_one_line_error(rc, err, "ending in .csv")
    rc, _, err = run_main(capsys, "score", "--model", "tiny-gpt2", "--circuit", spec_file,
                          "--prompts", HAND, "--out", tmp_path / "s.csv", "--ablation", "zero",
                          "--reference", HAND)
    assert_one_line_error(rc, err, "--reference")


@pytest.mark.parametrize("sub", [[], ["score"], ["prompts"], ["bench"]])
def test_help(capsys, sub):
    with pytest.raises(SystemExit) as exc:
        cli.main([*sub, "--help"])
    assert exc.value.code == 0
    out = capsys.readouterr().out
    assert out.startswith("usage: circuitgen")
    assert {"score": "--skip-invalid", "prompts": "--orders", "bench": "--memory-prompts"}.get(
        sub[0] if sub else "", "score") in out


def test_one_line_keeps_single_messages_and_counts_rows():
    assert cli.one_line("a\n  b\n\nc") == "a b c"
    msg = "12 of 20 prompts cannot be scored:\n  row 3: bad\n  row 5: worse\n  ... and 2 more\nFix"
    line = cli.one_line(msg)
    assert "\n" not in line and line.startswith("12 of 20 prompts cannot be scored; first: row 3: bad")
    assert "(and 11 more rows)" in line


# ---- prompts --------------------------------------------------------------------------------

def test_prompts_command(capsys, tmp_path):
    out = tmp_path / "p.csv"
    rc, stdout, err = run_main(capsys, "prompts", "--model", "tiny-gpt2", "-n", 12, "--seed", 3,
                               "--out", out, "--templates", 0, 4, "--orders", "ABBA")
    assert rc == 0, err
    df = pd.read_csv(out, keep_default_na=False)
    meta = json.loads(out.with_name("p.meta.json").read_text())
    assert len(df) == 12 and set(df.template) == {0, 4} and set(df.order) == {"ABBA"}
    assert meta["seed"] == 3 and meta["templates"] == [0, 4]
    want = ioi.generate_prompts(models.gpt2_tokenizer(), n=12, seed=3, templates=[0, 4],
                                orders=["ABBA"]).df
    assert df.prompt.tolist() == want.prompt.tolist()
    dropped = meta["n_names_dropped"]
    assert f"names dropped (not one token with a leading space): {dropped} of" in stdout
    assert dropped > 0 and meta["names_dropped"][0] in stdout


def test_prompts_with_a_tokenizer_folder(capsys, tmp_path):
    folder = tmp_path / "tok"
    models.smollm2_tokenizer().save_pretrained(folder)
    out = tmp_path / "p.csv"
    rc, stdout, err = run_main(capsys, "prompts", "--tokenizer", folder, "-n", 5, "--out", out)
    assert rc == 0, err
    by_name = ioi.generate_prompts("smollm2-135m", n=5, seed=0).df
    assert pd.read_csv(out).prompt.tolist() == by_name.prompt.tolist()


def test_prompts_bad_input(capsys, tmp_path):
    rc, _, err = run_main(capsys, "prompts", "--model", "tiny-gpt2", "-n", 5, "--out",
                          tmp_path / "p.csv", "--templates", 99)
    assert_one_line_error(rc, err, "template ids run from 0")
    rc, _, err = run_main(capsys, "prompts", "--model", "tiny-gpt2", "-n", 0, "--out", tmp_path / "p.csv")
    assert_one_line_error(rc, err, "-n must be at least 1")
    rc, _, err = run_main(capsys, "prompts", "--tokenizer", "no-such-tokenizer", "--out", tmp_path / "p.csv")
    assert_one_line_error(rc, err, "no-such-tokenizer")


# ---- bench ----------------------------------------------------------------------------------

def test_stand_in_spec_fits_and_has_every_class():
    from circuitgen import circuits

    template = circuits.load_circuit("gpt2-ioi")
    for n_layers, n_heads in ((2, 4), (30, 9), (12, 12)):
        spec = bench.stand_in_spec("m", n_layers, n_heads)
        circuits.validate_for_model(spec, n_layers, n_heads)
        assert list(spec.classes) == list(template.classes)
        heads = spec.heads()
        assert len(heads) == len(set(heads))
        assert circuits.parse_circuit(spec.to_yaml()).classes.keys() == spec.classes.keys()


def test_interleaved_alternates_and_takes_every_repeat():
    calls = []
    times = bench.interleaved({"a": lambda: calls.append("a"), "b": lambda: calls.append("b")}, 3)
    assert calls == ["a", "b", "a", "b", "b", "a", "a", "b"]
    assert all(len(v) == 3 and min(v) >= 0 for v in times.values())


def test_bench_end_to_end(tmp_path):
    out = tmp_path / "bench.json"
    proc = subprocess.run(
        [sys.executable, "-m", "circuitgen", "bench", "--model", "tiny-gpt2", "--n-prompts", "8",
         "--batch-size", "4", "--repeats", "1", "--patch-prompts", "3", "--memory-prompts", "16",
         "--json", str(out)],
        capture_output=True, text=True, timeout=900)
    assert proc.returncode == 0, proc.stderr[-3000:]
    table = {}
    for line in proc.stdout.splitlines():
        cells = re.split(r"\s{2,}", line.strip())
        if len(cells) >= 2 and _is_number(cells[1]):
            table[cells[0]] = cells[1:]
    from circuitgen.bench import TARGETS  # the targets issue 10 set; the table must print them

    want = {"scorer / forward throughput, knock-outs off": f">= {TARGETS['scorer_ko_off']}",
            "scorer / forward throughput, knock-outs on (7 classes)": f">= {TARGETS['scorer_ko_on']}",
            "all-heads patching: fast exact / TransformerLens loop, speed-up":
                f">= {TARGETS['patch_speedup']:g}x",
            "all-heads patching: largest |fast - TransformerLens|": "<= 1e-04",
            "attribution patching / fast exact, speed-up": "-",
            "attribution patching vs exact, Pearson r": "-",
            "peak RSS scoring 16 prompts (GiB, whole process)": "< 4"}
    for label, target in want.items():
        assert label in table, f"{label!r} missing from:\n{proc.stdout}"
        assert table[label][1] == target
        if target != "-":  # the verdict must follow from the value and the target
            op, bound = target.split()
            value, bound = float(table[label][0]), float(bound.rstrip("x"))
            met = {">=": value >= bound, "<=": value <= bound, "<": value < bound}[op]
            if value != bound:  # (a value printed as the bound itself may be rounded onto it)
                assert table[label][2] == ("met" if met else "MISSED"), (label, table[label])
    res = json.loads(out.read_text())
    sc, pa, mem = res["scorer"], res["patching"], res["memory"]
    assert sc["n_prompts"] == 8 and 0 < sc["scorer_ko_on"] and 0 < sc["scorer_ko_off"]
    assert pa["patch_max_abs_diff"] <= 1e-4, "the fast exact method must agree with TransformerLens"
    assert pa["n_heads"] == 8
    printed = float(table["attribution patching vs exact, Pearson r"][0])
    assert pa["attribution_pearson_r"] == pytest.approx(printed, abs=6e-4)
    assert pa["patch_max_abs_diff"] == pytest.approx(
        float(table["all-heads patching: largest |fast - TransformerLens|"][0]), rel=0.05, abs=1e-12)
    assert mem["n_prompts"] == mem["n_scored"] == 16
    assert 0 < mem["rss_before_scoring_bytes"] <= mem["peak_rss_bytes"] < 8 * 1024 ** 3
    # The whole-process peak covers the model load as well as the scoring.
    assert mem["peak_rss_bytes"] >= max(mem["peak_rss_at_load_bytes"], mem["peak_rss_while_scoring_bytes"])
    assert {r["label"] for r in res["rows"]} >= {
        "all-heads patching: largest |fast - TransformerLens|"}


def _is_number(tok: str) -> bool:
    try:
        float(tok)
        return True
    except ValueError:
        return False
