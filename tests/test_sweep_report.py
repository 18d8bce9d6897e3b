"""The sweep chapters' shared body (circuitgen.sweep_report) against the sweeps module called
directly, on the random tiny GPT-2."""

from __future__ import annotations

import matplotlib

matplotlib.use("Agg")

import pandas as pd
import pytest
import torch

from circuitgen import ioi, sweep_report, sweeps, tables, variations


@pytest.fixture(scope="module")
def report(tiny_spec, tmp_path_factory):
    out = tmp_path_factory.mktemp("run")
    spec_path = out / "tiny.yaml"
    tiny_spec.to_yaml(spec_path)
    grad = torch.is_grad_enabled()
    try:
        yield sweep_report.run("domain", "tiny-gpt2", seed=0, n_per_condition=3,
                               circuit=str(spec_path), output_dir=str(out), base="sport")
    finally:
        torch.set_grad_enabled(grad)


def test_report_scores_are_the_sweep_of_the_saved_prompts(report, tiny_gpt2, tiny_spec):
    saved = ioi.load_prompt_set(report.saved["prompt set"], require_meta=True)
    assert saved.df.prompt.tolist() == report.prompt_set.df.prompt.tolist()
    direct = sweeps.run_sweep(tiny_gpt2, tiny_spec, variations.generate_domain(tiny_gpt2, 3, seed=0), seed=0)
    pd.testing.assert_series_equal(report.scores.circuit_logit_diff, direct.circuit_logit_diff)
    on_disk = tables.ScoreTable.load(report.saved["scores"]).scores()
    pd.testing.assert_frame_equal(on_disk, report.scores)
    assert report.base == "sport"
    pd.testing.assert_frame_equal(report.table, sweeps.by_condition(direct, seed=0))


def test_report_sections_say_what_the_sweeps_module_says(report):
    lines = report.check_lines()
    assert lines[-1] == sweeps.reference_line(report.scores)
    assert lines[:-1] == sweeps.flag_lines(report.scores, report.prompt_set, report.table)
    assert report.table_text().startswith(f"main signature: {report.table.attrs['signature']}; "
                                          "reference condition: sport")
    contrasts = sweeps.contrast_table(report.scores, "sport", seed=0)
    pd.testing.assert_frame_equal(report.contrasts, contrasts)
    assert report.prompt_lines()[:2] == [f"prompt set saved: {sweeps.shown_path(report.saved['prompt set'])}",
                                        f"scores saved: {sweeps.shown_path(report.saved['scores'])}"]
    found = report.findings()
    assert found["base"] == "sport" and found["n_prompts"] == len(report.scores)
    assert found["skipped"] == sweeps.names_or_none(report.prompt_set.meta.get("conditions_skipped") or {})
    fig = report.figure("Domain variation")
    assert "Domain variation: tiny-gpt2" in fig.axes[0].get_title() + fig.get_suptitle()


def test_an_absent_base_falls_back_to_the_first_condition(tiny_spec, tmp_path):
    spec_path = tmp_path / "tiny.yaml"
    tiny_spec.to_yaml(spec_path)
    grad = torch.is_grad_enabled()
    try:
        rep = sweep_report.run("domain", "tiny-gpt2", n_per_condition=2, circuit=str(spec_path),
                               output_dir=str(tmp_path), base="no-such-condition")
    finally:
        torch.set_grad_enabled(grad)
    assert rep.base == rep.table.index[0]
