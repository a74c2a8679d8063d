"""The generator benchmark script runs end to end with the tiny sizes and writes its CSV and markdown."""

from __future__ import annotations

import csv
import math
import re
import subprocess
import sys
from pathlib import Path

SCRIPT = Path(__file__).resolve().parent.parent / "benchmarks" / "bench_generators.py"
COLUMNS = ["pair", "measure", "setting", "a", "b", "unit", "a_value", "b_value", "speedup_b", "speedup_b_p25",
           "speedup_b_p75", "memory_unit", "a_memory", "b_memory", "memory_ratio_a_b"]


def test_generator_benchmark_writes_finite_ratios(tmp_path: Path):
    command = [sys.executable, str(SCRIPT), "--device", "cpu", "--sizes", "tiny", "--repeats", "2", "--threads", "1",
               "--positions", "4", "8", "--out", str(tmp_path)]
    proc = subprocess.run(command, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr
    with open(tmp_path / "generators.csv") as handle:
        reader = csv.DictReader(handle)
        assert reader.fieldnames == COLUMNS
        rows = list(reader)
    measured = {(r["pair"], r["measure"], r["setting"]) for r in rows}
    assert measured == {("DiT vs LiT", "sample", "32 px"), ("LlamaGen vs LASADGen", "decode step", "position 4"),
                        ("LlamaGen vs LASADGen", "decode step", "position 8"),
                        ("LINA vs NOVA", "sample", "32 px, vit_d2w32/vit_d2w32/mlp_d2w32, official sampling settings"),
                        ("LINA vs NOVA", "t2i transformer step", "256 px, vit_d2w32/vit_d2w32/mlp_d2w32"),
                        ("MAR", "sample", "mar-tiny")}
    for row in rows:
        values = [float(row["a_value"])] + ([] if row["pair"] == "MAR" else
                                            [float(row[k]) for k in ("b_value", "speedup_b_p25", "speedup_b",
                                                                     "speedup_b_p75")])
        assert all(math.isfinite(v) and v > 0 for v in values), row
        if row["pair"] != "MAR":
            assert float(row["speedup_b_p25"]) <= float(row["speedup_b"]) <= float(row["speedup_b_p75"])
    decode = [r for r in rows if r["measure"] == "decode step"]
    softmax_cache = [float(r["a_memory"]) for r in decode]
    assert softmax_cache[1] / softmax_cache[0] == (8 + 1) / (4 + 1)  # the KV cache grows with the position
    assert decode[0]["b_memory"] == decode[1]["b_memory"] and float(decode[0]["b_memory"]) > 0  # the state does not
    text = (tmp_path / "generators.md").read_text()
    assert re.search(r"^torch .*, \d+ threads, device cpu\.$", text, re.MULTILINE)
    assert "Sizes `tiny`" in text and "| DiT vs LiT | sample | 32 px | dit[softmax] | dit[lit] |" in text
    assert "B speed-up" in proc.stdout


def test_every_size_preset_has_valid_generator_options():
    """The CPU and GPU presets (too large to run here) name only options the generators take."""
    sys.path.insert(0, str(SCRIPT.parent))
    try:
        import bench_generators
    finally:
        sys.path.remove(str(SCRIPT.parent))
    from lina_bench.api import registry
    from lina_bench.models.lina.config import arch_table

    for name, size in bench_generators.SIZES.items():
        for generator, options in (("dit", size["dit"]), ("llamagen", size["llamagen"])):
            assert registry.generators.check_options(generator, options) == [], (name, generator)
        kinds = arch_table(extra=bench_generators.T2I_ARCHS)  # the official names and the script's own
        for config in (size["t2i"], size["c2i"] or size["t2i"]):
            assert all(arch in kinds[kind] for arch, kind in zip(config["arch"], kinds, strict=True)), name
