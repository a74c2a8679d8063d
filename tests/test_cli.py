"""CLI surface: help, version, list, default suite, exit codes."""

from __future__ import annotations

from lina_bench import __version__

from cli_helpers import run_cli, run_console


def test_help_and_version():
    code, text = run_cli("--help")
    assert code == 0 and all(cmd in text for cmd in ("list", "run", "results"))
    code, text = run_cli("--version")
    assert code == 0 and __version__ in text


def test_list_everything_and_one_kind():
    code, text = run_cli("list")
    assert code == 0
    for name in ("softmax", "linear-sub-dwc", "lina", "lit", "lasad", "toy", "module-profile", "default"):
        assert name in text
    code, text = run_cli("list", "evaluators")
    assert code == 0 and "[generator]" in text and "softmax" not in text
    assert run_cli("list", "nothing")[0] == 2


def test_default_suite_runs_every_variant(tmp_path):
    proc = run_console("run", "--out", str(tmp_path / "out"), "--no-progress")
    assert proc.returncode == 0, proc.stderr
    for variant in ("softmax", "linear", "linear-sub", "linear-dwc", "linear-sub-dwc", "lina", "lit", "lasad"):
        assert f"module-profile/{variant} " in proc.stdout
    assert "sample-determinism/toy[lasad]" in proc.stdout and "11 ok, 0 failed" in proc.stdout
    again = run_console("run", "--out", str(tmp_path / "out"), "--no-progress")
    assert again.returncode == 0 and "11 already done" in again.stdout
    table = run_console("results", "--out", str(tmp_path / "out"))
    assert table.returncode == 0 and "module-profile/lina" in table.stdout and "forward_ms" in table.stdout


def test_usage_errors_exit_2():
    assert run_console("run", "--bogus").returncode == 2
    assert run_console("frobnicate").returncode == 2
