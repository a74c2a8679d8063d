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
    for name in ("softmax", "linear-sub-dwc", "lina", "lit", "lasad", "toy", "module-profile", "flops-sweep",
                 "model-speed", "efficiency", "smoke"):
        assert name in text
    code, text = run_cli("list", "evaluators")
    assert code == 0 and "[generator]" in text and "softmax" not in text
    assert run_cli("list", "nothing")[0] == 2


def test_smoke_suite_runs_every_variant(tmp_path):
    proc = run_console("run", "smoke", "--out", str(tmp_path / "out"), "--no-progress")
    assert proc.returncode == 0, proc.stderr
    for variant in ("softmax", "linear", "linear-sub", "linear-dwc", "linear-sub-dwc", "lina", "lit", "lasad"):
        assert f"module-profile/{variant} " in proc.stdout
    assert "sample-determinism/toy[lasad]" in proc.stdout and "11 ok, 0 failed" in proc.stdout
    again = run_console("run", "smoke", "--out", str(tmp_path / "out"), "--no-progress")
    assert again.returncode == 0 and "11 already done" in again.stdout
    table = run_console("results", "--out", str(tmp_path / "out"))
    assert table.returncode == 0 and "module-profile/lina" in table.stdout and "forward_ms" in table.stdout


def test_main_job_is_the_efficiency_suite(tmp_path):
    """`lina-bench run` with no suite: FLOPs tables, sweep + crossover + plot, latency/memory, summary."""
    out = tmp_path / "out"
    proc = run_console("run", "--out", str(out), "--no-progress")
    assert proc.returncode == 0, proc.stderr
    assert "64 ok, 0 failed" in proc.stdout
    report = out / "efficiency"
    for name in ("summary.md", "flops_modules.csv", "flops_sweep.csv", "flops_sweep.png", "speed.csv"):
        assert (report / name).stat().st_size > 0, name
    summary = (report / "summary.md").read_text()
    assert "| lina           | 0.7916 (-13.2%)" in summary  # c2i 256px, width 768
    assert "49.9935 (-61.2%)" in summary and "128.8490 (+0.0%)" in summary  # the LINA paper's figure
    assert "`lina`: 125 tokens (160 px, 10x10 grid)" in summary  # crossover, closed form
    assert "1481.76" in summary  # softmax at 2048 px (20480 tokens)
    speed = (report / "speed.csv").read_text()
    assert all(v in speed for v in ("softmax", "lina", "lasad"))
    again = run_console("run", "--out", str(out), "--no-progress")
    assert again.returncode == 0 and "64 already done" in again.stdout and "wrote" in again.stdout


def test_usage_errors_exit_2():
    assert run_console("run", "--bogus").returncode == 2
    assert run_console("frobnicate").returncode == 2
