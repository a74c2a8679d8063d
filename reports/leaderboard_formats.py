"""The leaderboard's file formats: markdown, LaTeX (booktabs), one self-contained HTML page, CSV.

pandas' ``Styler`` renders the HTML and LaTeX tables (best cells marked through its CSS hook) and
``DataFrame.to_markdown`` the markdown; the HTML page around the table (sorting script, embedded
plots) is written here because no kept library makes a self-contained sortable page without
network access.
"""

from __future__ import annotations

import base64
import html
from pathlib import Path

import pandas as pd

from lina_bench.api.files import write_text_atomic
from lina_bench.api.schema import canonical_json
from lina_bench.reports.base import provenance_line
from lina_bench.reports.leaderboard import ROW_KEYS, Table
from lina_bench.reports.leaderboard_plots import Plot

BEST_HTML = "font-weight: bold; background-color: #ffe58f"
BEST_LATEX = "textbf:--rwrap;"
PROTOCOL_RULE = ("Two numbers share a column only when their metric and protocol are equal; a metric measured "
                 "under several protocols has one column per protocol, its header naming the fields that differ.")


def format_number(value: float) -> str:
    """Large values with thousands separators, others with 4 significant digits; NaN as empty."""
    if pd.isna(value):
        return ""
    return f"{value:,.0f}" if abs(value) >= 1000 else f"{value:.4g}"


def protocol_lines(table: Table) -> list[str]:
    """``header: protocol`` for every column (what a reader needs to reproduce the number)."""
    return [f"{column.header}: {canonical_json(column.protocol)}" for column in table.columns]


def markdown(tables: list[Table], plots: list[Plot], provenance: str) -> str:
    """The leaderboard as markdown (best values in bold), for READMEs and PR comments."""
    lines = ["# Leaderboard", "", provenance, "", PROTOCOL_RULE, ""]
    for table in tables:
        text = table.frame().astype(object)
        best = table.best()
        for i in range(len(table.columns)):
            text.iloc[:, len(ROW_KEYS) + i] = [f"**{format_number(v)}**" if mark else format_number(v)
                                               for v, mark in zip(table.values.iloc[:, i], best.iloc[:, i],
                                                                  strict=True)]
        text = text.map(lambda cell: str(cell).replace("|", "\\|"))
        text.columns = [str(c).replace("|", "\\|") for c in text.columns]
        lines += [f"## {table.title}", "", text.to_markdown(index=False, disable_numparse=True), ""]
        lines += [f"- {note}" for note in table.notes]
        lines += ["<details><summary>Protocol of each column</summary>", ""]
        lines += [f"- `{line}`" for line in protocol_lines(table)] + ["", "</details>", ""]
    if plots:
        lines += ["## Plots", ""] + [f"![{plot.title}]({plot.png.name})" for plot in plots] + [""]
    return "\n".join(lines)


def styled(table: Table, best_css: str, escape: str) -> pd.io.formats.style.Styler:
    """The table as a pandas Styler: numbers formatted, best cells given ``best_css``, text escaped."""
    frame = table.frame()
    numeric = list(frame.columns[len(ROW_KEYS):])
    marks = table.best()
    css = pd.DataFrame("", index=frame.index, columns=frame.columns)
    for i, name in enumerate(numeric):
        css.loc[marks.iloc[:, i].to_numpy(), name] = best_css
    styler = frame.style.hide(axis="index").apply(lambda _: css, axis=None)
    styler = styler.format(format_number, subset=numeric).format(escape=escape, subset=list(ROW_KEYS))
    return styler.format_index(escape=escape, axis=1)


LATEX_SPECIALS = {"\\": r"\textbackslash{}", "&": r"\&", "%": r"\%", "$": r"\$", "#": r"\#", "_": r"\_",
                  "{": r"\{", "}": r"\}", "~": r"\textasciitilde{}", "^": r"\textasciicircum{}"}


def latex_escape(text: str) -> str:
    """Escape LaTeX's special characters in free text (captions, notes). Styler escapes the table
    cells itself; pandas has no public function for text outside a table."""
    return "".join(LATEX_SPECIALS.get(char, char) for char in text)


def latex(tables: list[Table], provenance: str) -> str:
    """The leaderboard as LaTeX ``table`` floats with booktabs rules (``\\usepackage{booktabs}``)."""
    parts = [f"% lina-bench leaderboard; {provenance}",
             "% needs \\usepackage{booktabs} and \\usepackage{graphicx} (\\resizebox)", ""]
    for table in tables:
        tabular = styled(table, BEST_LATEX, "latex").to_latex(
            hrules=True, column_format="l" * len(ROW_KEYS) + "r" * len(table.columns))
        notes = [latex_escape(line) for line in table.notes + protocol_lines(table)]
        parts += ["\\begin{table}[t]", "\\centering", "\\scriptsize", f"\\caption{{{latex_escape(table.title)}}}",
                  "\\resizebox{\\linewidth}{!}{%", tabular.rstrip() + "}", "",
                  "\\raggedright\\tiny " + " \\\\\n".join(notes), "\\end{table}", ""]
    return "\n".join(parts)


SORT_SCRIPT = """
document.querySelectorAll("table.leaderboard").forEach(function (table) {
  table.querySelectorAll("thead th").forEach(function (th, col) {
    th.style.cursor = "pointer";
    th.title = "click to sort";
    th.addEventListener("click", function () {
      var ascending = th.getAttribute("aria-sort") !== "ascending";
      table.querySelectorAll("thead th").forEach(function (other) { other.removeAttribute("aria-sort"); });
      th.setAttribute("aria-sort", ascending ? "ascending" : "descending");
      var body = table.tBodies[0];
      var rows = Array.prototype.slice.call(body.rows);
      var key = function (row) {
        var text = row.cells[col].textContent.trim();
        var number = parseFloat(text.replace(/,/g, ""));
        return text === "" ? null : (isNaN(number) ? text : number);
      };
      rows.sort(function (a, b) {
        var x = key(a), y = key(b);
        if (x === null || y === null) { return x === y ? 0 : (x === null ? 1 : -1); }  // empty cells last
        var order = x < y ? -1 : (x > y ? 1 : 0);
        return ascending ? order : -order;
      });
      rows.forEach(function (row) { body.appendChild(row); });
    });
  });
});
"""

PAGE_STYLE = """
body { font-family: sans-serif; margin: 2em; color: #222; }
table.leaderboard { border-collapse: collapse; font-size: 13px; margin-bottom: 0.5em; }
table.leaderboard th, table.leaderboard td { border-bottom: 1px solid #ccc; padding: 4px 8px; }
table.leaderboard td { text-align: right; }
table.leaderboard th[aria-sort="ascending"]::after { content: " \\25B2"; }
table.leaderboard th[aria-sort="descending"]::after { content: " \\25BC"; }
.protocols { font-size: 11px; color: #555; }
figure img { max-width: 100%; }
"""


def html_page(tables: list[Table], plots: list[Plot], provenance: str) -> str:
    """One self-contained page: sortable tables (click a header), best values highlighted, plots
    embedded as data URIs; it loads nothing from the network."""
    body = [f"<h1>Leaderboard</h1><p>{html.escape(provenance)}</p><p>{html.escape(PROTOCOL_RULE)}</p>"]
    for table in tables:
        body.append(f"<h2>{html.escape(table.title)}</h2>")
        body.append(styled(table, BEST_HTML, "html").to_html(table_attributes='class="leaderboard"'))
        items = "".join(f"<li>{html.escape(line)}</li>" for line in table.notes + protocol_lines(table))
        body.append(f'<details class="protocols"><summary>Protocol of each column</summary><ul>{items}</ul>'
                    "</details>")
    for plot in plots:
        data = base64.b64encode(plot.png.read_bytes()).decode()
        body.append(f'<figure><img alt="{html.escape(plot.title)}" src="data:image/png;base64,{data}">'
                    f"<figcaption>{html.escape(plot.title)}</figcaption></figure>")
    return (f'<!DOCTYPE html>\n<html lang="en"><head><meta charset="utf-8"><title>lina-bench leaderboard</title>'
            f"<style>{PAGE_STYLE}</style></head>\n<body>\n" + "\n".join(body) +
            f"\n<script>{SORT_SCRIPT}</script>\n</body></html>\n")


def csv_files(tables: list[Table], out_dir: Path) -> list[Path]:
    """``leaderboard.csv`` (the generator table, or the only table) and ``attention_modules.csv``."""
    files = []
    for table in tables:
        name = "attention_modules.csv" if table.title == "Attention modules" else "leaderboard.csv"
        write_text_atomic(out_dir / name, table.frame().to_csv(index=False))
        files.append(out_dir / name)
    return files


def write_formats(tables: list[Table], plots: list[Plot], results: pd.DataFrame, out_dir: Path,
                  formats: tuple[str, ...]) -> list[Path]:
    """Write the chosen formats into ``out_dir``; return the files written."""
    provenance = provenance_line(results)
    files = []
    for fmt, name, render in (("md", "leaderboard.md", lambda: markdown(tables, plots, provenance)),
                              ("html", "leaderboard.html", lambda: html_page(tables, plots, provenance)),
                              ("tex", "leaderboard.tex", lambda: latex(tables, provenance))):
        if fmt in formats:
            write_text_atomic(out_dir / name, render())
            files.append(out_dir / name)
    return files + (csv_files(tables, out_dir) if "csv" in formats else [])
