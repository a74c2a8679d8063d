"""The generic registry: registration, lazy entries, plugins, suggestions, option checks."""

from __future__ import annotations

import sys
import textwrap
from pathlib import Path

import pytest

from lina_bench.api import registry
from lina_bench.api.errors import LinaBenchError
from lina_bench.api.registry import Registry


def make_factory(width: int, name: str = "x", ratio: float = 1.0, flag: bool = False, grid: tuple[int, int] = (1, 1)):
    """A factory with typed parameters."""
    return (width, name, ratio, flag, grid)


def test_register_get_build_and_duplicates():
    reg = Registry("thing")
    reg.register("f", make_factory)
    assert reg.build("f", width=3) == (3, "x", 1.0, False, (1, 1))
    assert "f" in reg and reg.names() == ["f"]
    with pytest.raises(LinaBenchError, match="already registered"):
        reg.register("f", make_factory)


def test_decorator_registration():
    reg = Registry("thing")

    @reg.register("g")
    def g() -> int:
        """Returns one."""
        return 1

    assert reg.build("g") == 1 and reg.describe("g") == "Returns one."


def test_lazy_entry_is_imported_on_first_use(tmp_path: Path, monkeypatch):
    (tmp_path / "lazy_mod_for_test.py").write_text("IMPORTED = True\ndef make():\n    return 42\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    reg = Registry("thing")
    reg.register("lazy", "lazy_mod_for_test:make")
    assert "lazy_mod_for_test" not in sys.modules
    assert reg.names() == ["lazy"] and "lazy_mod_for_test" not in sys.modules
    assert reg.build("lazy") == 42 and "lazy_mod_for_test" in sys.modules


def test_unknown_name_suggests_close_matches():
    with pytest.raises(LinaBenchError, match=r"unknown attention variant 'linear-dcw'; did you mean 'linear-dwc'"):
        registry.attention.get("linear-dcw")


def test_check_options_reports_unknown_wrong_type_missing_and_reserved():
    reg = Registry("thing")
    reg.register("f", make_factory)
    problems = reg.check_options("f", {"nmae": "a", "ratio": "big", "flag": 1, "grid": [2, 3]}, reserved=("name",))
    text = "\n".join(problems)
    assert "unknown option 'nmae'" in text and "did you mean 'name'" not in text  # 'name' is reserved
    assert "option 'ratio' of thing 'f' must be int/float, got str 'big'" in text
    assert "option 'flag' of thing 'f' must be bool" in text
    assert "needs option 'width'" in text
    assert not any(p.startswith("option 'grid'") for p in problems)  # a YAML list is a fine tuple
    assert reg.check_options("f", {"width": 2, "ratio": 3}) == []  # an int is a fine float
    assert reg.check_options("f", {"width": True}) == ["option 'width' of thing 'f' must be int, got bool True"]


def test_entry_point_plugins_register(tmp_path: Path, monkeypatch):
    """A third-party distribution adds an attention variant through the lina_bench.plugins group."""
    (tmp_path / "my_lb_plugin.py").write_text(textwrap.dedent("""
        from lina_bench.api import registry
        def register():
            registry.attention.register("plugin-softmax", "lina_bench.models.attention.softmax:SoftmaxAttention")
    """))
    dist = tmp_path / "my_lb_plugin-1.0.dist-info"
    dist.mkdir()
    (dist / "METADATA").write_text("Metadata-Version: 2.1\nName: my-lb-plugin\nVersion: 1.0\n")
    (dist / "entry_points.txt").write_text("[lina_bench.plugins]\nmine = my_lb_plugin:register\n")
    (tmp_path / "broken_lb_plugin-1.0.dist-info").mkdir()
    (tmp_path / "broken_lb_plugin-1.0.dist-info" / "METADATA").write_text(
        "Metadata-Version: 2.1\nName: broken-lb-plugin\nVersion: 1.0\n")
    (tmp_path / "broken_lb_plugin-1.0.dist-info" / "entry_points.txt").write_text(
        "[lina_bench.plugins]\nbroken = no_such_module_xyz:register\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    registry.reload_plugins()
    try:
        assert "plugin-softmax" in registry.attention.names()  # the broken plugin only warns
        from lina_bench.models import attention
        module = attention.build("plugin-softmax", dim=8, num_heads=2, grid=(2, 2))
        assert module.num_tokens == 4
    finally:
        registry.attention._entries.pop("plugin-softmax", None)
        registry.reload_plugins()


def test_registered_classes_are_checked_against_their_base_class():
    reg = Registry("evaluator", "lina_bench.api.evaluator:Evaluator")
    reg.register("not-an-evaluator", "collections:OrderedDict")
    with pytest.raises(LinaBenchError, match=r"evaluator 'not-an-evaluator' is registered as "
                                             r"collections.OrderedDict, which does not derive from "
                                             r"lina_bench.api.evaluator.Evaluator"):
        reg.get("not-an-evaluator")
    for kind in (registry.attention, registry.generators, registry.evaluators, registry.reports, registry.targets):
        assert kind.base and all(kind.get(name) for name in kind.names())  # every built-in passes its check
