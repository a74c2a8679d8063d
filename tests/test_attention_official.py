"""Every attention variant against fixtures made by running the official LINA modules.

Fixtures: tests/fixtures/official (see its README: official commit, files, classes). Each holds
the official module's state_dict, an input and the official output, in float32.
Tolerance: 1e-5 absolute and relative (float32, same formulas, different op order).
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
from safetensors import safe_open

from lina_bench.models import attention

FIXTURES = Path(__file__).parent / "fixtures" / "official"
MANIFEST = json.loads((FIXTURES / "manifest.json").read_text())
FILES = sorted(p.name for p in FIXTURES.glob("*.safetensors"))


def load_fixture(name: str) -> tuple[dict, dict[str, torch.Tensor], torch.Tensor, torch.Tensor]:
    with safe_open(FIXTURES / name, framework="pt") as f:
        meta = f.metadata()
        tensors = {k: f.get_tensor(k) for k in f.keys()}
    state = {k.removeprefix("state."): v for k, v in tensors.items() if k.startswith("state.")}
    return meta, state, tensors["input"], tensors["output"]


def test_every_variant_with_an_official_module_has_a_fixture():
    variants = {name.split("__")[0] for name in FILES}
    assert variants == set(attention.names()) - {"lasad"}  # LASADGen's code is not public
    assert {name.split("__")[1] for name in FILES} >= {"p64_16x16.safetensors", "p0_10x10.safetensors"}


@pytest.mark.parametrize("name", FILES, ids=[f.removesuffix(".safetensors") for f in FILES])
def test_variant_matches_official(name: str):
    meta, state, x, expected = load_fixture(name)
    assert meta["commit"] == "f13f7c39066a1a60d025a5440bdb8d9304772862"
    module = attention.build(meta["variant"], dim=int(meta["dim"]), num_heads=int(meta["num_heads"]),
                             grid=(int(meta["grid_h"]), int(meta["grid_w"])), prefix=int(meta["prefix"]))
    module.load_state_dict(state, strict=True)
    module.eval()
    with torch.no_grad():
        out = module(x)
    torch.testing.assert_close(out, expected, atol=1e-5, rtol=1e-5)


def test_manifest_lists_every_fixture():
    assert MANIFEST["commit"] == "f13f7c39066a1a60d025a5440bdb8d9304772862"
    assert {entry["file"] for entry in MANIFEST["fixtures"]} == set(FILES)
