"""The leaderboard report: tables from a store filled with known rows, every format parsed back."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
from html.parser import HTMLParser
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from PIL import Image
from store_helpers import MODELS, add_job, fill_store, toy_info

from lina_bench.reports.leaderboard_plots import pareto_front

from cli_helpers import run_cli

FID_A, FID_B, FID_SAMPLES = ("FID [target=generator, reference=a.npz]", "FID [target=generator, reference=b.npz]",
                             "FID [target=samples, reference=a.npz]")
GFLOPS = "GFLOPs/image (fvcore, 1 MAC = 1 FLOP)"
@pytest.fixture(scope="module")
def report_dir(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("store")
    fill_store(out).close()
    code, text = run_cli("report", "--out", str(out))
    assert code == 0, text
    return out / "report"


def test_csv_rows_columns_values_and_protocol_separation(report_dir: Path):
    table = pd.read_csv(report_dir / "leaderboard.csv", keep_default_na=False, na_values=[""])
    assert list(table.columns[:3]) == ["generator", "checkpoint", "variant"]
    # Quality first (FID per protocol, IS, GenEval per tag then overall), cost after.
    assert list(table.columns[3:6]) == [FID_A, FID_B, FID_SAMPLES]
    assert list(table.columns[-2:]) == ["Params (M)", GFLOPS]
    assert [c for c in table.columns if c.startswith("GenEval")][-1] == "GenEval overall"
    rows = table.set_index(["generator", "variant"])
    for variant, fid_a, fid_b, gflops, params in MODELS:
        assert rows.loc[("toy", variant), FID_A] == fid_a  # same protocol, one column, every variant
        assert rows.loc[("toy", variant), GFLOPS] == gflops
        assert rows.loc[("toy", variant), "Params (M)"] == pytest.approx(params / 1e6)
        if fid_b is None:
            assert np.isnan(rows.loc[("toy", variant), FID_B])  # a missing metric is an empty cell
        else:
            assert rows.loc[("toy", variant), FID_B] == fid_b
    assert rows.loc[("lina-official", np.nan), FID_SAMPLES] == 1.9
    assert table.loc[table.generator == "lina-official", "checkpoint"].item() == "lina_50k.npz"
    assert rows.loc[("t2i", "lina"), "GenEval counting"] == pytest.approx(0.25)
    modules = pd.read_csv(report_dir / "attention_modules.csv", keep_default_na=False)
    assert modules[["generator", "variant", "Latency (ms)"]].values.tolist() == [["", "softmax", 2.0],
                                                                                 ["", "lina", 1.0]]


def _markdown_table(text: str, title: str) -> pd.DataFrame:
    block = text.split(f"## {title}\n\n", 1)[1].split("\n\n", 1)[0].splitlines()
    cells = [[c.strip() for c in re.split(r"(?<!\\)\|", line)[1:-1]] for line in block]
    return pd.DataFrame(cells[2:], columns=cells[0])


def test_markdown_marks_the_best_by_direction(report_dir: Path):
    text = (report_dir / "leaderboard.md").read_text()
    table = _markdown_table(text, "Generators").set_index(["generator", "variant"])
    assert table.loc[("toy", "lina"), FID_A] == "**2.5**"  # lower FID is better
    assert table.loc[("toy", "softmax"), FID_A] == "3"
    assert table.loc[("toy", "softmax"), FID_B] == "**4**"
    assert table.loc[("toy", "lina"), "IS [reference=a.npz]"] == "**97.5**"  # higher IS is better
    assert table.loc[("toy", "linear"), GFLOPS] == "**5**"
    assert "**" not in "".join(table["Params (M)"])  # a count has no direction: nothing marked
    assert table.loc[("toy", "linear"), FID_B] == ""
    assert set(table["GenEval overall"]) - {""} == {"**0.3**"}  # ties are all marked
    modules = _markdown_table(text, "Attention modules").set_index("variant")
    assert modules.loc["lina", "Latency (ms)"] == "**1**"
    assert '"reference":"b.npz"' in text  # every column's protocol is written out
    assert "![FID vs GFLOPs per image (Pareto front in red)](fid_vs_gflops.png)" in text


class _Cells(HTMLParser):
    """Table cells (text and id) and every URL the page would load."""

    def __init__(self) -> None:
        super().__init__()
        self.tables: list[list[list[tuple[str, str]]]] = []
        self.sources: list[str] = []
        self._cell: list[str] | None = None

    def handle_starttag(self, tag, attrs):
        attrs = dict(attrs)
        self.sources += [attrs[k] for k in ("src", "href") if k in attrs]
        if tag == "table":
            self.tables.append([])
        elif tag == "tr":
            self.tables[-1].append([])
        elif tag in ("td", "th"):
            self._cell, self._id = [], attrs.get("id", "")

    def handle_data(self, data):
        if self._cell is not None:
            self._cell.append(data)

    def handle_endtag(self, tag):
        if tag in ("td", "th") and self._cell is not None:
            self.tables[-1][-1].append(("".join(self._cell).strip(), self._id))
            self._cell = None


def test_html_is_self_contained_and_highlights_the_best(report_dir: Path):
    page = (report_dir / "leaderboard.html").read_text()
    parser = _Cells()
    parser.feed(page)
    assert all(s.startswith("data:image/png;base64,") for s in parser.sources) and parser.sources
    assert "<link" not in page and "http" not in page.replace("http-equiv", "")
    header, *rows = parser.tables[0]
    names = [text for text, _ in header]
    assert names[:6] == ["generator", "checkpoint", "variant", FID_A, FID_B, FID_SAMPLES]
    lina = next(r for r in rows if r[0][0] == "toy" and r[2][0] == "lina")
    text, cell_id = lina[names.index(FID_A)]
    assert text == "2.5"
    best_rule = re.search(r"((?:#\w+(?:, )?)+)\s*\{\s*font-weight: bold;\s*background-color: #ffe58f", page)
    assert best_rule and f"#{cell_id}" in best_rule.group(1)
    softmax = next(r for r in rows if r[0][0] == "toy" and r[2][0] == "softmax")
    assert f"#{softmax[names.index(FID_A)][1]}" not in best_rule.group(1)


def test_latex_uses_booktabs_and_compiles(report_dir: Path, tmp_path: Path):
    tex = (report_dir / "leaderboard.tex").read_text()
    assert all(rule in tex for rule in ("\\toprule", "\\midrule", "\\bottomrule"))
    assert "\\textbf{2.5}" in tex and "lina\\_50k.npz" in tex
    if shutil.which("pdflatex") is None:
        pytest.skip("no LaTeX compiler (pdflatex) installed; the table was checked as text")
    shutil.copy(report_dir / "leaderboard.tex", tmp_path / "leaderboard.tex")
    (tmp_path / "doc.tex").write_text("\\documentclass{article}\\usepackage{booktabs}\\usepackage{graphicx}"
                                      "\\begin{document}\\input{leaderboard.tex}\\end{document}\n")
    done = subprocess.run(["pdflatex", "-interaction=nonstopmode", "-halt-on-error", "doc.tex"], cwd=tmp_path,
                          capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stdout[-2000:]
    assert (tmp_path / "doc.pdf").stat().st_size > 1000


def test_plots_are_written(report_dir: Path):
    for stem in ("fid_vs_gflops", "geneval_tags"):
        with Image.open(report_dir / f"{stem}.png") as image:
            assert image.size[0] > 300 and len(np.unique(np.asarray(image.convert("L")))) > 10
        assert (report_dir / f"{stem}.svg").read_text().lstrip().startswith("<?xml")
    assert not (report_dir / "cost_vs_resolution.png").exists()  # no flops-sweep rows, no plot


def test_pareto_front_against_brute_force():
    rng = np.random.default_rng(0)
    cost, error = rng.integers(0, 8, 40).astype(float), rng.integers(0, 8, 40).astype(float)
    dominated = [any((cost[j] <= cost[i] and error[j] <= error[i]) and (cost[j], error[j]) != (cost[i], error[i])
                     for j in range(40)) for i in range(40)]
    front = pareto_front(cost, error)
    expected = {(cost[i], error[i]) for i in range(40) if not dominated[i]}
    assert {(cost[i], error[i]) for i in front} == expected and len(front) == len(expected)
    assert list(cost[front]) == sorted(cost[front])


def test_cost_vs_resolution_plot_from_a_flops_sweep(tmp_path: Path):
    suite = tmp_path / "sweep.yaml"
    suite.write_text("name: sweep\nattention: [softmax, lina]\nevaluators:\n"
                     "  - {name: flops-sweep, options: {dim: 64, num_heads: 4, resolutions: [64, 128]}}\n")
    assert run_cli("run", str(suite), "--out", str(tmp_path), "--no-progress")[0] == 0
    code, text = run_cli("report", "--out", str(tmp_path), "--format", "md")
    assert code == 0, text
    assert (tmp_path / "report" / "cost_vs_resolution.png").is_file()
    assert not (tmp_path / "report" / "leaderboard.html").exists()  # only the formats asked for
    assert "cost_vs_resolution.png" in (tmp_path / "report" / "leaderboard.md").read_text()


def test_the_most_recent_result_fills_a_cell(tmp_path: Path):
    store = fill_store(tmp_path)
    config = {"generator": {"name": "toy", "options": {}}, "variant": "lina", "evaluator": "fid", "again": 1}
    add_job(store, "fid-a.npz/toy[lina]", "lina", "fid", [("fid", 2.0, "1", False)],
         {"evaluator": {"name": "fid", "reference": "a.npz"}, "generator": toy_info("lina")}, config=config,
         finished="2026-11-30T10:00:00+00:00")
    store.close()
    code, text = run_cli("report", "--out", str(tmp_path), "--format", "csv,md")
    assert code == 0, text
    table = pd.read_csv(tmp_path / "report" / "leaderboard.csv").set_index(["generator", "variant"])
    assert table.loc[("toy", "lina"), FID_A] == 2.0
    assert "1 older result(s) for a cell already filled were left out" in (tmp_path / "report" /
                                                                          "leaderboard.md").read_text()


def test_report_errors(tmp_path: Path):
    code, text = run_cli("report", "--out", str(tmp_path))
    assert code == 2 and "no results store" in text
    suite = tmp_path / "determinism.yaml"
    suite.write_text("generators: [toy]\nevaluators: [{name: sample-determinism, "
                     "options: {num_samples: 2, batch_sizes: [1, 2]}}]\n")
    code, text = run_cli("run", str(suite), "--out", str(tmp_path), "--no-progress")
    assert code == 0, text
    code, text = run_cli("report", "--out", str(tmp_path))  # determinism rows only
    assert code == 2 and "is a leaderboard metric" in text
    fill_store(tmp_path).close()
    code, text = run_cli("report", "--out", str(tmp_path), "--format", "md,pdf")
    assert code == 2 and "pdf" in text
    code, text = run_cli("report", "--out", str(tmp_path), "--run", "nope")
    assert code == 2 and "no run 'nope'" in text
    code, text = run_cli("report", "--out", str(tmp_path), "--output", str(tmp_path / "elsewhere"), "--format", "csv")
    assert code == 0 and (tmp_path / "elsewhere" / "leaderboard.csv").is_file(), text


def test_leaderboard_as_a_suite_report(tmp_path: Path):
    suite = tmp_path / "board.yaml"
    suite.write_text("name: board\ngenerators: [{name: toy, attention: [softmax, lina]}]\n"
                     "evaluators: [model-flops]\nreports: [{name: leaderboard, options: {formats: [csv]}}]\n")
    code, text = run_cli("run", str(suite), "--out", str(tmp_path), "--no-progress")
    assert code == 0, text
    table = pd.read_csv(tmp_path / "board" / "leaderboard.csv")
    stored = json.loads(run_cli("results", "--out", str(tmp_path), "--format", "json")[1])
    expected = {r["variant"]: r["value"] for r in stored if r["metric"] == "gmacs_per_image"}
    assert dict(zip(table.variant, table[GFLOPS], strict=True)) == pytest.approx(expected, rel=1e-12)


def _chromium() -> str:
    path = shutil.which("chromium") or shutil.which("chromium-browser")
    if path is None:
        pytest.skip("no Chromium: install Debian's `chromium` package (.ci/run does) to run the browser test")
    pytest.importorskip("playwright.sync_api", reason="playwright (in the [test] extra) is not installed")
    return path


def test_html_page_in_a_real_browser(report_dir: Path, tmp_path: Path):
    """Headless Chromium loads the page (nothing from the network), sorts a column by clicking its
    header (numbers in order, empty cells last, twice: ascending then descending) and renders it."""
    from playwright.sync_api import sync_playwright

    flags = ["--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run", "--disable-background-networking",
             "--disable-component-update", "--disable-sync"]
    with sync_playwright() as driver:
        browser = driver.chromium.launch(executable_path=_chromium(), args=flags)
        try:
            page = browser.new_page()
            requests: list[str] = []
            page.on("request", lambda request: requests.append(request.url))
            page.goto((report_dir / "leaderboard.html").as_uri())
            table = page.locator("table.leaderboard").first
            header = table.locator("thead th").nth(3)
            assert header.text_content().strip() == FID_A
            column = table.locator("tbody tr td:nth-child(4)")
            header.click()
            assert header.get_attribute("aria-sort") == "ascending"
            assert column.all_text_contents()[:4] == ["2.5", "3", "5", ""]
            header.click()
            assert header.get_attribute("aria-sort") == "descending"
            assert column.all_text_contents()[:4] == ["5", "3", "2.5", ""]
            page.screenshot(path=str(tmp_path / "page.png"), full_page=True)
        finally:
            browser.close()
    assert [url for url in requests if not url.startswith(("file:", "data:"))] == []
    with Image.open(tmp_path / "page.png") as shot:
        pixels = np.asarray(shot.convert("L"))
    assert pixels.shape[0] > 400 and pixels.std() > 5 and len(np.unique(pixels)) > 20  # not blank
