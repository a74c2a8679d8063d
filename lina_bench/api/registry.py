"""One generic name -> factory registry, used for attention variants, generators and evaluators.

Entries are either objects (usually classes or functions) or lazy ``"module:attr"`` strings that
are imported on first use, so listing names never imports torch. Third-party packages add entries
through the entry-point group ``lina_bench.plugins``: each entry point names a callable (called with
no arguments) or a module whose import registers its entries.
"""

from __future__ import annotations

import ast
import difflib
import importlib
import importlib.metadata
import inspect
import logging
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Generic, Iterator, TypeVar

from lina_bench.api.errors import LinaBenchError

log = logging.getLogger(__name__)

PLUGIN_GROUP = "lina_bench.plugins"
T = TypeVar("T")


def load_object(target: str) -> Any:
    """Import ``"package.module:attr"`` (the attr may be dotted) and return the attribute."""
    module_name, sep, attr = target.partition(":")
    if not sep or not module_name or not attr:
        raise LinaBenchError(f"lazy target {target!r} is not of the form 'module:attr'")
    obj: Any = importlib.import_module(module_name)
    for part in attr.split("."):
        obj = getattr(obj, part)
    return obj


@dataclass
class _Entry:
    target: Any  # the object, or a "module:attr" string until resolved
    lazy: bool

    def resolve(self) -> Any:
        if self.lazy:
            self.target, self.lazy = load_object(self.target), False
        return self.target


class Registry(Generic[T]):
    """Maps names to factories of one kind (``kind`` is used in messages, e.g. "attention variant")."""

    def __init__(self, kind: str, base: str | None = None) -> None:
        self.kind = kind
        self.base = base  # "module:attr" of the class every registered class must derive from
        self._entries: dict[str, _Entry] = {}

    def register(self, name: str, target: Any = None) -> Any:
        """Register ``target`` under ``name``; a string is a lazy ``"module:attr"``.

        Without ``target`` it returns a decorator. Registering a name twice is an error.
        """
        if target is None:
            def decorator(obj: Callable[..., T]) -> Callable[..., T]:
                self.register(name, obj)
                return obj
            return decorator
        if name in self._entries:
            raise LinaBenchError(f"{self.kind} {name!r} is already registered")
        self._entries[name] = _Entry(target, lazy=isinstance(target, str))
        return target

    def names(self) -> list[str]:
        load_plugins()
        return sorted(self._entries)

    def __contains__(self, name: object) -> bool:
        load_plugins()
        return name in self._entries

    def __iter__(self) -> Iterator[str]:
        return iter(self.names())

    def unknown_message(self, name: str) -> str:
        """The error text for an unknown name, with close matches when there are some."""
        close = difflib.get_close_matches(str(name), self.names(), n=3, cutoff=0.5)
        hint = f"; did you mean {', '.join(repr(c) for c in close)}?" if close else ""
        return f"unknown {self.kind} {name!r}{hint} (known: {', '.join(self.names()) or 'none'})"

    def get(self, name: str) -> Callable[..., T]:
        """The factory registered under ``name`` (imports it if lazy)."""
        if name not in self:
            raise LinaBenchError(self.unknown_message(name))
        factory = self._entries[name].resolve()
        if self.base and inspect.isclass(factory) and not issubclass(factory, base := load_object(self.base)):
            raise LinaBenchError(f"{self.kind} {name!r} is registered as {factory.__module__}.{factory.__qualname__}, "
                                 f"which does not derive from {base.__module__}.{base.__qualname__}")
        return factory

    def build(self, name: str, **options: Any) -> T:
        return self.get(name)(**options)

    def describe(self, name: str) -> str:
        """First line of the factory's docstring (read from the source of a lazy entry, not imported)."""
        node = self._source_node(name)
        doc = ast.get_docstring(node) if node is not None else inspect.getdoc(self.get(name))
        return doc.splitlines()[0] if doc else ""

    def class_attribute(self, name: str, attr: str) -> Any:
        """A class attribute of the factory, such as an evaluator's ``targets``. For a lazy entry not yet
        imported it is a literal assigned in the class body, read from the source (None when there is none);
        otherwise it is read from the class."""
        node = self._source_node(name)
        if node is None:
            return getattr(self.get(name), attr, None)
        for statement in node.body if isinstance(node, ast.ClassDef) else ():
            if isinstance(statement, ast.Assign) and any(getattr(t, "id", None) == attr for t in statement.targets):
                try:
                    return ast.literal_eval(statement.value)
                except ValueError:
                    return None
        return None

    def _source_node(self, name: str) -> ast.ClassDef | ast.FunctionDef | None:
        """The definition of a not yet imported lazy entry, found in its module's source; None otherwise."""
        if name not in self:
            raise LinaBenchError(self.unknown_message(name))
        entry = self._entries[name]
        if not entry.lazy:
            return None
        module, _, attr = entry.target.partition(":")
        path = _module_file(module)
        if path is None or "." in attr:
            return None
        for node in ast.parse(path.read_text()).body:
            if isinstance(node, (ast.ClassDef, ast.FunctionDef)) and node.name == attr:
                return node
        return None

    def check_options(self, name: str, options: dict[str, Any], reserved: tuple[str, ...] = ()) -> list[str]:
        """Problems with ``options`` for ``name``'s factory: unknown keys and simple type mismatches.

        ``reserved`` names parameters that the caller supplies itself (they may not be set here).
        """
        factory = self.get(name)
        params = factory_parameters(factory)
        accepts_any = any(p.kind is inspect.Parameter.VAR_KEYWORD for p in params.values())
        settable = {k: p for k, p in params.items()
                    if k not in reserved and p.kind in (p.POSITIONAL_OR_KEYWORD, p.KEYWORD_ONLY)}
        problems = []
        for key, value in options.items():
            if key in reserved:
                problems.append(f"option {key!r} of {self.kind} {name!r} is set by the suite, not here")
            elif key not in settable:
                if accepts_any:
                    continue
                close = difflib.get_close_matches(key, list(settable), n=1)
                hint = f"; did you mean {close[0]!r}?" if close else ""
                valid = ", ".join(sorted(settable)) or "none"
                problems.append(f"unknown option {key!r} for {self.kind} {name!r}{hint} (valid: {valid})")
            else:
                expected = _simple_type(settable[key].annotation)
                if expected and not _type_ok(value, expected):
                    names = "/".join(t.__name__ for t in expected)
                    problems.append(f"option {key!r} of {self.kind} {name!r} must be {names}, "
                                    f"got {type(value).__name__} {value!r}")
        missing = [k for k, p in settable.items() if p.default is inspect.Parameter.empty and k not in options]
        problems += [f"{self.kind} {name!r} needs option {k!r}" for k in missing]
        return problems


def _module_file(module: str) -> Path | None:
    """The source file of ``module``, found by the import system's finders without importing it or its
    packages (editable installs map packages through a finder of their own)."""
    spec, locations = None, None
    parts = module.split(".")
    for i in range(len(parts)):
        name = ".".join(parts[:i + 1])
        spec = next((found for finder in sys.meta_path if hasattr(finder, "find_spec")
                     for found in [finder.find_spec(name, locations)] if found is not None), None)
        if spec is None:
            return None
        locations = spec.submodule_search_locations
    origin = spec.origin if spec else None
    return Path(origin) if origin and origin.endswith(".py") else None


def factory_parameters(factory: Callable[..., Any]) -> dict[str, inspect.Parameter]:
    """The keyword parameters a factory (class or function) accepts."""
    target = factory.__init__ if inspect.isclass(factory) else factory
    params = dict(inspect.signature(target, eval_str=True).parameters)
    params.pop("self", None)
    return params


_SIMPLE = {int: (int,), float: (int, float), str: (str,), bool: (bool,), list: (list,), dict: (dict,),
           tuple: (list, tuple)}


def _simple_type(annotation: Any) -> tuple[type, ...] | None:
    """The YAML types accepted for a parameter annotated with a simple type (None: not checked)."""
    origin = getattr(annotation, "__origin__", None) or annotation
    args = getattr(annotation, "__args__", ())
    if origin in _SIMPLE:
        return _SIMPLE[origin]
    if args and type(None) in args:  # Optional[X] / X | None
        inner = [a for a in args if a is not type(None)]
        if len(inner) == 1 and _simple_type(inner[0]):
            return _simple_type(inner[0]) + (type(None),)
    return None


def _type_ok(value: Any, expected: tuple[type, ...]) -> bool:
    if isinstance(value, bool) and bool not in expected:
        return False  # YAML true/false is not a number
    return isinstance(value, expected)


_plugins_loaded = False


def load_plugins() -> None:
    """Load every ``lina_bench.plugins`` entry point once; a broken plugin is reported, not fatal."""
    global _plugins_loaded
    if _plugins_loaded:
        return
    _plugins_loaded = True
    for ep in importlib.metadata.entry_points(group=PLUGIN_GROUP):
        try:
            obj = ep.load()
            if callable(obj) and not inspect.ismodule(obj):
                obj()
        except Exception as exc:  # a third-party plugin must not break the CLI
            log.warning("lina-bench plugin %r (%s) failed to load: %s: %s",
                        ep.name, ep.value, type(exc).__name__, exc)


def reload_plugins() -> None:
    """Make the next registry query scan the entry points again (e.g. after installing a plugin)."""
    global _plugins_loaded
    _plugins_loaded = False


# The registries every part of lina-bench shares. Built-in entries are lazy.
attention: Registry[Any] = Registry("attention variant", "lina_bench.api.attention:AttentionModule")
generators: Registry[Any] = Registry("generator", "lina_bench.api.generator:Generator")
evaluators: Registry[Any] = Registry("evaluator", "lina_bench.api.evaluator:Evaluator")
reports: Registry[Any] = Registry("report", "lina_bench.api.report:Report")
targets: Registry[Any] = Registry("target kind", "lina_bench.api.evaluator:TargetKind")

for _name, _target in {
    "softmax": "lina_bench.models.attention.softmax:SoftmaxAttention",
    "linear": "lina_bench.models.attention.linear:LinearAttention",
    "linear-sub": "lina_bench.models.attention.linear:SubtractionLinearAttention",
    "linear-dwc": "lina_bench.models.attention.linear:LinearDWCAttention",
    "linear-sub-dwc": "lina_bench.models.attention.linear:SubtractionLinearDWCAttention",
    "lina": "lina_bench.models.attention.linear:LinaAttention",
    "lit": "lina_bench.models.attention.lit:LiTAttention",
    "lasad": "lina_bench.models.attention.lasad:LasadAttention",
}.items():
    attention.register(_name, _target)
generators.register("toy", "lina_bench.models.toy:ToyGenerator")
generators.register("lina", "lina_bench.models.lina.generator:LinaGenerator")
generators.register("mar", "lina_bench.models.mar.generator:MARGenerator")
generators.register("dit", "lina_bench.models.dit.generator:DiTGenerator")
generators.register("llamagen", "lina_bench.models.llamagen.generator:LlamaGenGenerator")
evaluators.register("module-profile", "lina_bench.evaluators.module_profile:ModuleProfile")
evaluators.register("sample-determinism", "lina_bench.evaluators.sample_determinism:SampleDeterminism")
evaluators.register("flops", "lina_bench.evaluators.flops:Flops")
evaluators.register("flops-sweep", "lina_bench.evaluators.flops:FlopsSweep")
evaluators.register("model-flops", "lina_bench.evaluators.flops:ModelFlops")
evaluators.register("speed", "lina_bench.evaluators.speed:Speed")
evaluators.register("model-speed", "lina_bench.evaluators.speed:ModelSpeed")
evaluators.register("decode-profile", "lina_bench.evaluators.decode_profile:DecodeProfile")
evaluators.register("fid", "lina_bench.evaluators.fid:Fid")
evaluators.register("geneval", "lina_bench.evaluators.geneval.pipeline:GenEval")
evaluators.register("clip-score", "lina_bench.evaluators.clip_score:ClipScore")
reports.register("efficiency", "lina_bench.reports.efficiency:EfficiencyReport")
reports.register("leaderboard", "lina_bench.reports.leaderboard:LeaderboardReport")
for _name, _target in {"attention": "AttentionKind", "generator": "GeneratorKind", "samples": "SamplesKind"}.items():
    targets.register(_name, f"lina_bench.evaluators.targets:{_target}")
