"""FLOP counts: fvcore (with our handles) = FlopCounterMode (halved) = closed form, for every variant;
the LINA paper's module figure; the CLI's JSON contract and errors."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest
import torch
from torch import nn

from lina_bench.api import registry
from lina_bench.api.errors import LinaBenchError
from lina_bench.api.generator import build_generator
from lina_bench.evaluators.base import AttentionTarget, ModuleSetting
from lina_bench.evaluators.flops import analytic_macs, count_attention, count_fvcore, count_generator, count_torch
from lina_bench.models import attention
from lina_bench.models.attention.base import AttentionModule

from cli_helpers import assert_same_rows, run_cli, stored_rows

SETTINGS = [ModuleSetting(48, 4, (5, 7), 3, 2), ModuleSetting(64, 2, (8, 8), 0, 1),
            ModuleSetting(768, 12, (16, 16), 64, 1)]


@pytest.mark.parametrize("setting", SETTINGS, ids=lambda s: f"C{s.dim}-H{s.num_heads}-{s.grid}-p{s.prefix}-b{s.batch}")
@pytest.mark.parametrize("variant", attention.names())
def test_three_counters_agree(variant: str, setting: ModuleSetting):
    target = AttentionTarget(variant)
    fv, params = count_attention(target, setting, "fvcore")
    torch_meta, params_meta = count_attention(target, setting, "torch")
    closed = analytic_macs(variant, setting.dim, setting.num_heads, setting.grid, setting.prefix, setting.batch)
    assert fv.total == torch_meta.total == sum(closed.values())
    assert params == params_meta
    assert {op: c for op, c in fv.by_operator.items()} == closed  # same operator split
    assert "unknown" not in fv.uncounted_ops
    module = target.build(setting)  # real tensors give the same torch count as meta ones
    with torch.no_grad():
        assert count_torch(module, setting.inputs()).total == fv.total


@pytest.mark.parametrize("variant", ["linear", "linear-dwc", "lina", "lit", "lasad"])
def test_counters_on_the_triton_custom_ops_agree_with_the_closed_form(variant: str):
    """On backend="triton" the attention runs as one custom op (in Triton's interpreter here), which
    fvcore and FlopCounterMode count through our handles and FLOP formulas: same closed form."""
    setting = ModuleSetting(32, 2, (8, 8), 4, 2)
    closed = sum(analytic_macs(variant, 32, 2, (8, 8), 4, 2).values())
    module = AttentionTarget(variant, {"backend": "triton"}).build(setting)
    with torch.no_grad():
        fv, fc = count_fvcore(module, setting.inputs()), count_torch(module, setting.inputs())
    assert any(op.endswith("attention") for op in fv.by_operator), fv.by_operator
    assert fv.total == fc.total == closed


@pytest.mark.parametrize("options", [{"decay": "none", "chunk_size": 16}, {"chunk_size": 100}])
def test_lasad_chunking_in_closed_form(options):
    setting = ModuleSetting(32, 2, (9, 9), 5, 1)
    fv, _ = count_attention(AttentionTarget("lasad", options), setting, "fvcore")
    assert fv.total == sum(analytic_macs("lasad", 32, 2, (9, 9), 5, 1, options).values())


# LINA's own numbers: evaluations/flops/flops_results.txt at commit f13f7c39066a1a60d025a5440bdb8d9304772862
# (fvcore, B=1, N=5120 = 1024 prefix + 64x64, width 1536, 16 heads).
PAPER_LINA = {"total": 49_993_482_240, "linear": 48_318_382_080, "matmul": 1_517_813_760, "conv": 157_286_400,
              "qkv": 36_238_786_560, "proj": 12_079_595_520, "dw_conv": 157_286_400}
PAPER_SOFTMAX = {"total": 128_849_018_880, "attention": 80_530_636_800, "linear": 48_318_382_080}


def test_reproduces_lina_paper_module_figure():
    setting = ModuleSetting(1536, 16, (64, 64), 1024, 1)
    lina, _ = count_attention(AttentionTarget("lina"), setting)
    soft, _ = count_attention(AttentionTarget("softmax"), setting)
    assert lina.total == PAPER_LINA["total"]
    assert lina.by_operator == {k: PAPER_LINA[k] for k in ("linear", "matmul", "conv")}
    assert {k: lina.by_module[k] for k in ("qkv", "proj", "dw_conv")} == {
        k: PAPER_LINA[k] for k in ("qkv", "proj", "dw_conv")}
    assert soft.total == PAPER_SOFTMAX["total"]
    assert soft.by_operator == {"linear": PAPER_SOFTMAX["linear"],
                                "scaled_dot_product_attention": PAPER_SOFTMAX["attention"]}
    assert round(1 - lina.total / soft.total, 3) == 0.612  # "saves about 61%"


def test_elementwise_option_counts_them_and_norms():
    setting = ModuleSetting(16, 2, (4, 4), 2, 1)
    plain, _ = count_attention(AttentionTarget("lasad"), setting)
    full, _ = count_attention(AttentionTarget("lasad"), setting, elementwise=True)
    assert "elementwise" in plain.uncounted_ops and "aten::group_norm" in plain.uncounted_ops["elementwise"]
    assert full.total > plain.total and "group_norm" in full.by_operator
    assert "elementwise" not in full.uncounted_ops


class FFTMixer(nn.Module):
    """Uses an op no FLOP handle knows."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.fft.fft(x, dim=1).real


def test_unknown_ops_are_reported_not_dropped():
    report = count_fvcore(FFTMixer(), (torch.randn(1, 8, 4),))
    assert report.total == 0 and "aten::fft_fft" in report.uncounted_ops["unknown"]


def test_generator_counts_and_attention_share():
    gen = build_generator("toy", {"attention": "softmax", "depth": 2, "dim": 32, "grid": [4, 4], "prefix": 4})
    fv, tc = count_generator(gen), count_generator(gen, counter="torch")
    assert [s.report.total for s in fv.stages] == [s.report.total for s in tc.stages]
    denoiser = fv.stages[0]
    per_block = sum(analytic_macs("softmax", 32, 2, (4, 4), 4).values())
    assert denoiser.attention_share == pytest.approx(2 * per_block / denoiser.report.total)
    assert all("unknown" not in s.report.uncounted_ops for s in fv.stages)  # the embedding lookup is data movement


def test_cli_json_contract():
    code, text = run_cli("flops", "module", "--variant", "lina", "--dim", "64", "--heads", "4", "--grid", "16x16",
                         "--prefix", "64", "--batch", "2", "--json")
    assert code == 0
    data = json.loads(text)
    assert {"variant", "gmacs", "by_operator", "by_module", "params", "convention"} <= set(data)
    expected = sum(analytic_macs("lina", 64, 4, (16, 16), 64, 2).values())
    assert data["variant"] == "lina" and data["gmacs"] == expected / 1e9
    assert sum(data["by_operator"].values()) == pytest.approx(data["gmacs"])
    assert sum(data["by_module"].values()) == pytest.approx(data["gmacs"])
    assert data["params"] == sum(p.numel() for p in attention.build("lina", dim=64, num_heads=4, grid=(16, 16),
                                                                       prefix=64).parameters())
    code, text = run_cli("flops", "model", "--generator", "toy", "--attention", "lit", "--json")
    assert code == 0 and 0 < json.loads(text)["attention_share"] < 1
    code, text = run_cli("flops", "module", "--variant", "lasad", "--dim", "16", "--heads", "2", "--grid", "3x3",
                         "--option", "decay=1d", "--counter", "torch")
    assert code == 0 and "GMACs" in text


class FixedLength(AttentionModule):
    """Like the official decoders: runs only at 320 tokens."""

    def __init__(self, dim: int, num_heads: int, grid: tuple[int, int], prefix: int = 0) -> None:
        super().__init__(dim, num_heads, grid, prefix)
        self.proj = nn.Linear(dim, dim)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        assert x.shape[1] == 320, "expected N=320"
        return self.proj(x)


@pytest.mark.parametrize("args,message", [
    (["--variant", "softmx"], "did you mean 'softmax'"),
    (["--variant", "lina", "--heads", "5"], "heads (5) must divide the width (64)"),
    (["--variant", "lina", "--grid", "0x4"], "not a grid of two positive sizes"),
    (["--variant", "lina", "--dim", "0"], "Invalid value for '--dim'"),
    (["--variant", "fixed-320"], "cannot run with"),
    (["--variant", "lina", "--counter", "torch", "--elementwise"], "only by the fvcore counter"),
    (["--variant", "lasad", "--option", "decay"], "is not key=value"),
])
def test_cli_errors_exit_2(args, message):
    registry.attention.register("fixed-320", FixedLength)
    try:
        base = {"--variant": "lina", "--dim": "64", "--heads": "4", "--grid": "8x8"}
        for flag, value in zip(args[::2], args[1::2], strict=False):
            base[flag] = value
        argv = [x for kv in base.items() for x in kv] + [a for a in args if a == "--elementwise"]
        code, text = run_cli("flops", "module", *argv)
        assert code == 2 and message in text, text
    finally:
        registry.attention._entries.pop("fixed-320")


def test_fixed_length_variant_at_its_length_counts():
    registry.attention.register("fixed-320", FixedLength)
    try:
        report, _ = count_attention(AttentionTarget("fixed-320"), ModuleSetting(8, 2, (16, 16), 64))
        assert report.total == 320 * 8 * 8
    finally:
        registry.attention._entries.pop("fixed-320")


def test_count_attention_rejects_unknown_counter():
    with pytest.raises(LinaBenchError, match="unknown FLOP counter"):
        count_attention(AttentionTarget("lina"), SETTINGS[0], "ptflops")


def test_meta_counts_survive_a_transformers_model_load():
    """transformers swaps torch.linspace while it builds a model; if that is when torch first caches the
    constructors `with torch.device(...)` redirects, the real linspace ignores the device context from
    then on. Counting on the meta device must still work (fresh process: the cache is process-wide)."""
    code = """
import torch
from transformers.initialization import meta_device_safe_creation_ops
with meta_device_safe_creation_ops(), torch.device("meta"):
    torch.empty(1)
from lina_bench.evaluators.base import AttentionTarget, ModuleSetting
from lina_bench.evaluators.flops import count_attention
print(count_attention(AttentionTarget("lasad"), ModuleSetting(48, 4, (5, 7), 3, 2), "torch")[0].total)
"""
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert int(proc.stdout.split()[-1]) == sum(analytic_macs("lasad", 48, 4, (5, 7), 3, 2).values())


COUNTERS = ("fvcore", "torch", "analytic")


@pytest.fixture
def gqa_plugin():
    """tests/plugin_variant.py's variant, registered by its entry-point function (loaded as an entry point
    is) for one test only."""
    registry.load_object("plugin_variant:register")()
    yield "test-gqa"
    registry.attention._entries.pop("test-gqa")


@pytest.mark.parametrize("options,kv_macs", [({}, 10240), ({"kv_heads": 2}, 20480)])
def test_plugin_variant_brings_its_own_closed_form(gqa_plugin: str, options: dict, kv_macs: int):
    """A plugin's AttentionModule.analytic_macs is all the closed form needs: the three counters agree
    with it and with the hand count, in the API and through ``lina-bench flops module``."""
    setting = ModuleSetting(32, 4, (4, 4), 4, 2)  # N = 20, C = 32, d = 8, B = 2
    # per sample: q and proj 2 N C^2 = 40960, kv 2 N C G d = 10240 G, QK^T and PV 2 N^2 C = 25600
    expected = 2 * (40960 + kv_macs + 25600)
    reports = {c: count_attention(AttentionTarget(gqa_plugin, options), setting, c)[0] for c in COUNTERS}
    assert {c: r.total for c, r in reports.items()} == dict.fromkeys(COUNTERS, expected)
    assert reports["fvcore"].by_operator == reports["analytic"].by_operator
    assert "unknown" not in reports["fvcore"].uncounted_ops
    option_args = [arg for key, value in options.items() for arg in ("--option", f"{key}={value}")]
    for counter in COUNTERS:
        code, text = run_cli("flops", "module", "--variant", gqa_plugin, "--dim", "32", "--heads", "4", "--grid",
                             "4x4", "--prefix", "4", "--batch", "2", *option_args, "--counter", counter, "--json")
        assert code == 0, text
        assert json.loads(text)["macs"] == expected


def test_variant_without_a_closed_form_is_a_clear_error():
    registry.attention.register("fixed-320", FixedLength)
    registry.attention.register("softmax-function", lambda **kwargs: attention.build("softmax", **kwargs))
    try:
        with pytest.raises(LinaBenchError, match="no closed-form FLOP count for attention variant 'FixedLength'"):
            count_attention(AttentionTarget("fixed-320"), SETTINGS[0], "analytic")
        with pytest.raises(LinaBenchError, match="'softmax-function' .* not an AttentionModule subclass"):
            analytic_macs("softmax-function", 8, 2, (2, 2))
    finally:
        registry.attention._entries.pop("fixed-320")
        registry.attention._entries.pop("softmax-function")


@pytest.mark.parametrize("cfg", [None, 2.5])
def test_model_flops_add_up_over_stages(cfg: float | None):
    """``flops model --json``: each stage's macs = an independent fvcore count of the toy's network on
    the batch; per image = macs / batch x calls (x2 under CFG); totals and attention share add up."""
    from lina_bench.evaluators.base import EvalContext
    from lina_bench.evaluators.flops import ModelFlops

    options = {"attention": "lina", "depth": 2, "steps": 3, "grid": [4, 4], "patch": 2, "cfg": cfg}
    batch, cfg_factor = 2, 1 if cfg is None else 2
    code, text = run_cli("flops", "model", "--generator", "toy", "--batch", str(batch), "--json",
                         *[arg for k, v in options.items() for arg in ("--set", f"{k}={json.dumps(v)}")])
    assert code == 0, text
    data = json.loads(text)
    gen = build_generator("toy", options)
    tokens, labels = torch.zeros(batch, 16, 32, dtype=torch.float64), torch.zeros(batch, dtype=torch.long)
    with torch.no_grad():
        macs = {"denoiser": count_fvcore(gen.denoiser, (tokens, labels)).total,
                "decoder": count_fvcore(gen.decoder, (tokens,)).total}
    per_image = {"denoiser": macs["denoiser"] / batch * 3 * cfg_factor, "decoder": macs["decoder"] / batch}
    attention_per_image = 2 * sum(analytic_macs("lina", 32, 2, (4, 4), 4, batch).values()) / batch * 3 * cfg_factor

    stages = {s["name"]: s for s in data["stages"]}
    assert [s["name"] for s in data["stages"]] == ["denoiser", "decoder"]
    assert {n: (s["calls_per_image"], s["cfg_doubles_batch"]) for n, s in stages.items()} == {
        "denoiser": (3, cfg is not None), "decoder": (1, False)}
    assert {n: s["macs"] for n, s in stages.items()} == macs
    for name, s in stages.items():
        assert s["gmacs_per_image"] == pytest.approx(per_image[name] / 1e9, rel=1e-12)
        assert s["gmacs_per_image"] == pytest.approx(s["gmacs_per_call"] * s["calls_per_image"], rel=1e-12)
    assert data["gmacs_per_image"] == pytest.approx(sum(per_image.values()) / 1e9, rel=1e-12)
    assert data["attention_share"] == pytest.approx(attention_per_image / sum(per_image.values()), rel=1e-12)
    assert stages["denoiser"]["attention_share"] == pytest.approx(attention_per_image / per_image["denoiser"])
    assert stages["decoder"]["attention_share"] == 0
    assert data["attention_modules"] == ["denoiser.blocks.0.attn", "denoiser.blocks.1.attn"]
    assert (data["macs"], data["calls_per_image"]) == (macs["denoiser"], 3)  # top-level: the main stage

    metrics = {m.name: m.value for m in ModelFlops(batch=batch).evaluate(gen, EvalContext()).metrics}
    assert metrics["gmacs_per_call"] == stages["denoiser"]["gmacs_per_call"]
    assert metrics["gmacs_per_image"] == data["gmacs_per_image"]
    assert metrics["attention_share"] == data["attention_share"]
    assert metrics["attention_gmacs_per_image"] == pytest.approx(attention_per_image / 1e9, rel=1e-12)
    assert metrics["params"] == sum(p.numel() for p in gen.parameters())
    assert {n: metrics[f"gmacs_per_image.{n}"] for n in stages} == {n: s["gmacs_per_image"] for n, s in stages.items()}
    code, text = run_cli("flops", "model", "--generator", "toy", "--batch", str(batch),
                         *[arg for k, v in options.items() for arg in ("--set", f"{k}={json.dumps(v)}")])
    assert code == 0 and all(f"stage {name}: one call on 2 image(s)" in text for name in stages)
    assert f"{data['gmacs_per_image']:.6g}" in text.split("total")[1]


def test_flops_commands_and_suite_store_the_same_rows(write_suite, tmp_path):
    """`flops module` / `flops model` store the rows the `flops` / `model-flops` suite evaluators store."""
    assert run_cli("flops", "module", "--variant", "lina", "--dim", "64", "--heads", "4", "--grid", "8x8",
                   "--prefix", "4", "--out", str(tmp_path / "cmd"))[0] == 0
    assert run_cli("flops", "model", "--generator", "toy", "--set", "steps=3", "--out", str(tmp_path / "cmd"))[0] == 0
    path = write_suite("""\
attention: [lina]
generators: [{name: toy, options: {steps: 3}}]
evaluators:
  - {name: flops, options: {dim: 64, num_heads: 4, grid: [8, 8], prefix: 4}}
  - model-flops
""")
    assert run_cli("run", str(path), "--out", str(tmp_path / "suite"), "--no-progress")[0] == 0
    assert_same_rows(tmp_path / "cmd", tmp_path / "suite")
    rows = stored_rows(tmp_path / "cmd")
    assert rows["gmacs"]["value"] * 1e9 == pytest.approx(sum(analytic_macs("lina", 64, 4, (8, 8), 4).values()))
    assert rows["gmacs"]["protocol"]["variant"] == {"name": "lina", "options": {}}
    assert run_cli("flops", "module", "--variant", "lina", "--dim", "64", "--heads", "4", "--grid", "8x8",
                   "--out", str(tmp_path / "none"), "--no-store")[0] == 0
    assert not (tmp_path / "none" / "results.sqlite").exists()
