"""Suites are validated up front; every problem is reported with its location; exit code 2."""

from __future__ import annotations

import numpy as np
import pytest

from lina_bench.engine.suite import SuiteError, builtin_suites, load_suite, parse_suite

from cli_helpers import run_console

GOOD = """\
name: small
seed: 3
attention: [softmax, {name: lasad, label: lasad-1d, options: {decay: 1d}}]
generators:
  - name: toy
    options: {dim: 16, grid: [4, 4]}
    attention: [linear]
evaluators:
  - name: module-profile
    options: {dim: 16, num_heads: 2, grid: [4, 4], prefix: 2, repeats: 1}
  - sample-determinism
"""


def test_good_suite_expands_to_jobs():
    suite = parse_suite(GOOD, "good.yaml")
    names = [job.name for job in suite.jobs()]
    assert names == ["module-profile/softmax", "module-profile/lasad-1d", "sample-determinism/toy[linear]"]
    keys = {job.key for job in suite.jobs()}
    assert len(keys) == 3
    again = parse_suite(GOOD.replace("seed: 3", "seed: 4"), "good.yaml")
    assert not keys & {job.key for job in again.jobs()}  # the key covers the whole config


def test_builtin_suites_are_valid(tmp_path):
    assert {"efficiency", "smoke", "quality-smoke"} <= set(builtin_suites())
    for name in builtin_suites():
        assert load_suite(name, tmp_path).jobs()


BAD = """\
name: bad
seed: -1
devise: cpu
attention:
  - softmx
  - {name: lasad, options: {decya: 1d}}
generators:
  - name: toy
    options: {dim: "wide"}
    checkpoint: /no/such/weights.safetensors
evaluators:
  - name: module-profile
    options: {repeats: 1.5, bogus: 1}
  - name: sample-determinism
    options: {num_samples: 0}
"""


def test_every_problem_is_reported_with_its_line():
    with pytest.raises(SuiteError) as info:
        parse_suite(BAD, "bad.yaml")
    text = str(info.value)
    expected = [
        "bad.yaml:2:1: seed: must be a non-negative integer, got -1",
        "bad.yaml:3:1: devise: unknown key 'devise'; did you mean 'device'?",
        "bad.yaml:5:5: attention.0.name: unknown attention variant 'softmx'; did you mean 'softmax'?",
        "bad.yaml:6:19: attention.1.options: unknown option 'decya' for attention variant 'lasad'; "
        "did you mean 'decay'?",
        "bad.yaml:9:5: generators.0.options: option 'dim' of generator 'toy' must be int, got str 'wide'",
        "bad.yaml:10:5: generators.0.checkpoint: checkpoint not found: /no/such/weights.safetensors (a file, or a "
        "folder for generators that load one)",
        "bad.yaml:13:5: evaluators.0.options: option 'repeats' of evaluator 'module-profile' must be int",
        "bad.yaml:13:5: evaluators.0.options: unknown option 'bogus' for evaluator 'module-profile'",
        "bad.yaml:15:5: evaluators.1.options: num_samples and every batch size must be >= 1",
    ]
    for line in expected:
        assert line in text, f"missing: {line}\n---\n{text}"
    assert text.startswith("invalid suite (9 problems)")


@pytest.mark.parametrize("text,message", [
    ("evaluators: [module-profile]\nattention: [softmax\n", "not valid YAML"),
    ("- just\n- a list\n", "a suite is a mapping"),
    ("attention: softmax\nevaluators: [module-profile]\n", "attention: must be a list, got str"),
    ("attention: [softmax]\n", "evaluators: a suite needs at least one evaluator"),
    ("evaluators: [module-profile]\n", "measures attention variants, but the suite lists none"),
    ("evaluators: [sample-determinism]\nattention: [softmax]\n", "measures generators, but the suite lists none"),
    ("attention: [softmax, softmax]\nevaluators: [module-profile]\n",
     "job 'module-profile/softmax' appears more than once"),
    ("name: a\nname: b\nattention: [softmax]\nevaluators: [module-profile]\n", "2:1: name: key given twice"),
    ("attention: [{name: 3}]\nevaluators: [module-profile]\n", "needs a 'name' (string)"),
    ("attention: [{name: lina, options: [1]}]\nevaluators: [module-profile]\n", "options: must be a mapping"),
    ("attention: [{name: lina, options: {dim: 8}}]\nevaluators: [module-profile]\n",
     "option 'dim' of attention variant 'lina' is set by the suite"),
    ("device: gpu\nattention: [softmax]\nevaluators: [module-profile]\n", "must be cpu, cuda, cuda:N or auto"),
    ("samples: [{name: x, path: /no/such.npz}]\nevaluators: [{name: clip-score}]\n",
     "1:21: samples.0.path: samples not found or not an .npz / folder: /no/such.npz"),
    ("samples: [x.npz]\nevaluators: [{name: clip-score}]\n",
     "must be a mapping {name: <label>, path: <npz or folder>}"),
    ("evaluators: [{name: clip-score}]\n",
     "measures generators or sample folders, but the suite lists none under 'generators' or 'samples'"),
])
def test_bad_suites(text: str, message: str):
    with pytest.raises(SuiteError, match="invalid suite") as info:
        parse_suite(text, "s.yaml")
    assert message in str(info.value)


def test_cli_exit_code_2_and_no_traceback(write_suite, tmp_path):
    path = write_suite(BAD)
    proc = run_console("run", str(path), "--out", str(tmp_path / "out"))
    assert proc.returncode == 2
    assert "Traceback" not in proc.stderr and "did you mean 'softmax'" in proc.stderr
    assert not (tmp_path / "out").exists()  # nothing ran
    proc = run_console("run", str(tmp_path / "missing.yaml"))
    assert proc.returncode == 2 and "no suite file" in proc.stderr


def test_samples_entries_make_jobs_for_the_evaluators_that_measure_samples(tmp_path):
    np.savez(tmp_path / "s.npz", arr_0=np.zeros((2, 8, 8, 3), np.uint8))
    (tmp_path / "p.txt").write_text("a dog\n")
    suite = parse_suite(f"""
attention: [softmax]
generators: [toy]
samples: [{{name: official, path: {tmp_path / 's.npz'}}}]
evaluators: [module-profile, {{name: clip-score, options: {{prompts: {tmp_path / 'p.txt'}}}}}]
""", "s.yaml")
    jobs = {job.name: job for job in suite.jobs()}
    assert list(jobs) == ["module-profile/softmax", "clip-score/toy", "clip-score/official"]
    assert [job.kind for job in jobs.values()] == ["attention", "generator", "samples"]
    config = jobs["clip-score/official"].config["samples"]
    assert config["name"] == "official" and config["files"] == 1 and config["path"] == str(tmp_path / "s.npz")
    assert "samples" not in jobs["clip-score/toy"].config  # older job keys stay as they were
