"""Suites: which generators, attention variants and evaluators to run, from YAML or a built-in name.

Format (every key but ``evaluators`` is optional)::

    name: my-suite              # defaults to the file name
    description: free text
    seed: 0                     # seeds every job (sample seeds, random inputs)
    device: cpu                 # cpu | cuda | cuda:N | auto (cuda when available)
    attention:                  # variants for evaluators of scope "attention"
      - softmax                 # a registry name ...
      - {name: lasad, label: lasad-1d, options: {decay: 1d}}   # ... or a mapping
    generators:                 # generators for evaluators of scope "generator"
      - name: toy
        options: {dim: 32}
        checkpoint: path/to/weights.safetensors   # optional, local file
        attention: [softmax, lina]                # optional: one build per variant
    samples:                    # images made elsewhere, for fid / clip-score / geneval
      - {name: lina-official, path: samples/lina_50k.npz}   # ADM npz, image folder or GenEval folder
    evaluators:
      - name: module-profile
        label: profile-small    # optional; names the jobs (label/variant), default: the name
        options: {dim: 64, num_heads: 4}
        only: [softmax]         # optional: the labels of the entries it measures, default: all of its kinds
    reports: [efficiency]       # optional: written from the suite's results after the jobs

The whole file is checked before anything runs; every problem is reported with its line.

A built-in suite may use files it makes itself (random-init weights, a reference set): its option strings
name them under the placeholder ``{assets}``, which :func:`load_suite` replaces with
``<out_dir>/assets/<suite name>/`` after the suite's builder, ``build_assets(folder)`` in
``lina_bench.suites.<suite name with underscores>``, has made them there (once; it skips files that exist).
"""

from __future__ import annotations

import difflib
import importlib
import re
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path
from typing import Any

import yaml

from lina_bench.api import registry
from lina_bench.api.errors import LinaBenchError
from lina_bench.api.files import path_identity
from lina_bench.api.geometry import GEOMETRY
from lina_bench.api.schema import config_hash

TOP_KEYS = {"name", "description", "seed", "device", "attention", "generators", "samples", "evaluators", "reports"}
ENTRY_KEYS = {"attention": {"name", "label", "options"},
              "generators": {"name", "label", "options", "checkpoint", "attention"},
              "samples": {"name", "path"},
              "evaluators": {"name", "label", "options", "only"},
              "reports": {"name", "options"}}
DEVICE_RE = re.compile(r"^(cpu|auto|cuda(:\d+)?)$")
DEFAULT_SUITE = "efficiency"
DEFAULT_OUT_DIR = "lina-bench-out"  # the CLI's default --out: where a built-in suite's assets go without one
ASSETS = "{assets}"
PLACEHOLDER_RE = re.compile(r"\{\w+\}")


class SuiteError(LinaBenchError):
    """An invalid suite; the message lists every problem with its location."""


@dataclass
class Entry:
    """One named thing in a suite: an attention variant, a generator or an evaluator."""

    name: str
    options: dict[str, Any] = field(default_factory=dict)
    label: str = ""
    checkpoint: str | None = None
    attention: list["Entry"] = field(default_factory=list)
    only: list[str] = field(default_factory=list)  # an evaluator's: labels of the entries it measures

    def __post_init__(self) -> None:
        self.label = self.label or self.name

    def config(self) -> dict[str, Any]:
        cfg: dict[str, Any] = {"name": self.name, "options": self.options}
        if self.checkpoint:
            path = Path(self.checkpoint)
            if path.is_dir():  # a checkpoint directory (e.g. LINA's diffusers-style pipeline folder)
                cfg["checkpoint"] = path_identity(path)
            else:
                stat = path.stat()
                cfg["checkpoint"] = {"path": str(path.resolve()), "size": stat.st_size, "mtime_ns": stat.st_mtime_ns}
        return cfg


@dataclass
class Job:
    """One evaluator on one target of a registered ``kind``: a variant, a generator (and variant) or a
    samples entry (``options["path"]``); ``key`` hashes its full config."""

    name: str
    suite: str
    evaluator: Entry
    generator: Entry | None
    variant: Entry | None
    config: dict[str, Any]
    kind: str
    samples: Entry | None = None

    @property
    def key(self) -> str:
        return config_hash(self.config)


@dataclass
class Suite:
    name: str
    description: str
    seed: int
    device: str
    attention: list[Entry]
    generators: list[Entry]
    evaluators: list[Entry]
    reports: list[Entry]
    source: str
    samples: list[Entry] = field(default_factory=list)

    def jobs(self) -> list[Job]:
        """Every job, in suite order: evaluators outer, then each target kind they measure, in its
        section's order (generators with variants: each variant)."""
        return [job for ev in self.evaluators for kind in registry.evaluators.get(ev.name).targets
                for job in jobs_of(self, ev, registry.targets.build(kind))]


def command_job(command: str, evaluator: Entry, target: Entry, kind: str, seed: int = 0, device: str = "cpu") -> Job:
    """The job a measuring command runs: the one job of a one-entry suite named ``cli:<command>``, so a
    command and a suite build, measure and store it the same way."""
    target_kind = registry.targets.build(kind)
    suite = Suite(f"cli:{command}", "", seed, device, [], [], [evaluator], [], f"<{command} command>")
    getattr(suite, target_kind.section).append(target)  # the section attribute holding that kind's entries
    return jobs_of(suite, evaluator, target_kind)[0]


def jobs_of(suite: "Suite", evaluator: Entry, kind: Any) -> list[Job]:
    """The jobs of one evaluator on the suite's entries of one target kind."""
    jobs = []
    for label, fields in kind.entries(suite):
        gen, var, samples = fields.get("generator"), fields.get("variant"), fields.get("samples")
        if evaluator.only and (samples or gen or var).label not in evaluator.only:
            continue
        config = {"suite": suite.name, "seed": suite.seed, "device": suite.device, "evaluator": evaluator.config(),
                  "generator": gen.config() if gen else None, "variant": var.config() if var else None}
        config.update(kind.job_config(fields))  # only kinds that need it add keys: older job keys stay valid
        jobs.append(Job(f"{evaluator.label}/{label}", suite.name, evaluator, gen, var, config, kind.name, samples))
    return jobs


def builtin_suites() -> dict[str, str]:
    """Built-in suite name -> YAML text."""
    folder = resources.files("lina_bench.suites")
    return {p.name.removesuffix(".yaml"): p.read_text() for p in folder.iterdir() if p.name.endswith(".yaml")}


def load_suite(spec: str | None, out_dir: str | Path | None = None) -> Suite:
    """A suite from a YAML path or a built-in name (None: the built-in ``efficiency`` suite); a built-in
    suite's assets are built in ``<out_dir>/assets/<name>/`` (out_dir None: ``lina-bench-out``)."""
    spec = spec or DEFAULT_SUITE
    builtins = builtin_suites()
    path = Path(spec)
    if path.is_file():
        try:
            text = path.read_text()
        except (OSError, UnicodeDecodeError) as exc:
            raise SuiteError(f"cannot read suite file {path}: {exc}") from exc
        return parse_suite(text, str(path), default_name=path.stem)
    if spec in builtins:
        assets = suite_assets(spec, out_dir) if ASSETS in builtins[spec] else None
        return parse_suite(builtins[spec], f"<built-in suite {spec}>", default_name=spec, assets=assets)
    close = difflib.get_close_matches(spec, builtins, n=2)
    hint = f"; did you mean {', '.join(repr(c) for c in close)}?" if close else ""
    raise SuiteError(f"no suite file {spec!r} and no built-in suite of that name{hint} "
                     f"(built-in: {', '.join(sorted(builtins))})")


def suite_assets(name: str, out_dir: str | Path | None = None) -> Path:
    """The assets folder ``<out_dir>/assets/<name>`` of built-in suite ``name``, after its builder
    ``lina_bench.suites.<name with underscores>.build_assets(folder)`` has made what is missing there."""
    module_name = f"lina_bench.suites.{name.replace('-', '_')}"
    try:
        module = importlib.import_module(module_name)
    except ModuleNotFoundError as exc:
        if exc.name != module_name:  # the builder exists but an import inside it failed
            raise
        module = None
    build_assets = getattr(module, "build_assets", None)
    if build_assets is None:
        raise SuiteError(f"built-in suite {name!r} uses {ASSETS} but has no asset builder: "
                         f"{module_name} must define build_assets(folder)")
    folder = Path(out_dir or DEFAULT_OUT_DIR) / "assets" / name
    try:
        build_assets(folder)
    except OSError as exc:
        raise SuiteError(f"cannot build the assets of suite {name!r} in {folder}: {exc}") from exc
    return folder


def _substitute(data: Any, assets: Path | None, problems: "_Problems", path: tuple = ()) -> Any:
    """``data`` with ``{assets}`` in every string replaced by the assets folder; any other placeholder, or
    ``{assets}`` without a folder (only built-in suites have one), is a problem."""
    if isinstance(data, dict):
        return {key: _substitute(value, assets, problems, path + (key,)) for key, value in data.items()}
    if isinstance(data, list):
        return [_substitute(value, assets, problems, path + (i,)) for i, value in enumerate(data)]
    if not isinstance(data, str):
        return data
    for placeholder in PLACEHOLDER_RE.findall(data):
        if placeholder != ASSETS:
            problems.add(path, f"unknown placeholder {placeholder} (known: {ASSETS})")
        elif assets is None:
            problems.add(path, f"{ASSETS} is only for built-in suites, which make their assets; in a suite file "
                               "give the path of a built-in suite's assets folder (<out>/assets/<suite>)")
    return data.replace(ASSETS, str(assets)) if assets is not None else data


def _locations(node: yaml.Node, path: tuple = (), out: dict | None = None,
               duplicates: list | None = None) -> dict[tuple, tuple[int, int]]:
    """Map every path (tuple of keys/indices) of a composed YAML document to its (line, column)."""
    out = {} if out is None else out
    out[path] = (node.start_mark.line + 1, node.start_mark.column + 1)
    if isinstance(node, yaml.MappingNode):
        seen = set()
        for key, value in node.value:
            k = key.value
            if k in seen and duplicates is not None:
                duplicates.append((path + (k,), (key.start_mark.line + 1, key.start_mark.column + 1)))
            seen.add(k)
            _locations(value, path + (k,), out, duplicates)
            out[path + (k,)] = (key.start_mark.line + 1, key.start_mark.column + 1)
    elif isinstance(node, yaml.SequenceNode):
        for i, item in enumerate(node.value):
            _locations(item, path + (i,), out, duplicates)
    return out


class _Problems:
    """Collects problems with their YAML locations."""

    def __init__(self, source: str, locations: dict[tuple, tuple[int, int]]) -> None:
        self.source, self.locations, self.items = source, locations, []

    def add(self, path: tuple, message: str) -> None:
        where = path
        while where not in self.locations and where:
            where = where[:-1]
        line, col = self.locations.get(where, (1, 1))
        dotted = ".".join(str(p) for p in path) or "<top>"
        self.items.append((line, col, f"{self.source}:{line}:{col}: {dotted}: {message}"))

    def raise_if_any(self) -> None:
        if self.items:
            count = f"{len(self.items)} problem{'s' if len(self.items) > 1 else ''}"
            lines = [text for _, _, text in sorted(self.items, key=lambda item: item[:2])]
            raise SuiteError(f"invalid suite ({count}):\n  " + "\n  ".join(lines))


def parse_suite(text: str, source: str = "<suite>", default_name: str = "suite", assets: Path | None = None) -> Suite:
    """Parse and validate suite YAML (``{assets}`` replaced by ``assets``, a built-in suite's assets
    folder); raises :class:`SuiteError` listing every problem."""
    try:
        node = yaml.compose(text, Loader=yaml.SafeLoader)
        data = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f"{source}:{mark.line + 1}:{mark.column + 1}" if mark else source
        raise SuiteError(f"invalid suite: {where}: not valid YAML: {getattr(exc, 'problem', exc)}") from exc
    duplicates: list = []
    problems = _Problems(source, _locations(node, duplicates=duplicates) if node is not None else {})
    for path, _ in duplicates:
        problems.add(path, "key given twice")
    if not isinstance(data, dict):
        problems.add((), f"a suite is a mapping with keys {', '.join(sorted(TOP_KEYS))}")
        problems.raise_if_any()
    for key in sorted(set(data) - TOP_KEYS):
        problems.add((key,), _unknown("key", key, TOP_KEYS))
    data = _substitute(data, assets, problems)

    name = data.get("name", default_name)
    if not isinstance(name, str) or not name:
        problems.add(("name",), "must be a non-empty string")
    description = data.get("description", "")
    if not isinstance(description, str):
        problems.add(("description",), "must be a string")
    seed = data.get("seed", 0)
    if not isinstance(seed, int) or isinstance(seed, bool) or seed < 0:
        problems.add(("seed",), f"must be a non-negative integer, got {seed!r}")
    device = data.get("device", "cpu")
    if not isinstance(device, str) or not DEVICE_RE.match(device):
        problems.add(("device",), f"must be cpu, cuda, cuda:N or auto, got {device!r}")

    attention = _entries(data, "attention", registry.attention, problems, reserved=GEOMETRY)
    generators = _entries(data, "generators", registry.generators, problems)
    samples = _samples(data, problems)
    evaluators = _entries(data, "evaluators", registry.evaluators, problems)
    reports = _entries(data, "reports", registry.reports, problems)
    if "evaluators" not in data:
        problems.add(("evaluators",), "a suite needs at least one evaluator")
    sections = {"attention": attention, "generators": generators, "samples": samples}
    for i, ev in enumerate(evaluators):
        kinds = [registry.targets.build(k) for k in registry.evaluators.get(ev.name).targets]
        if not any(sections.get(k.section) for k in kinds):
            problems.add(("evaluators", i), f"evaluator {ev.name!r} measures {' or '.join(k.noun for k in kinds)}, "
                                            f"but the suite lists none under "
                                            f"{' or '.join(repr(k.section) for k in kinds)}")
        labels = {entry.label for k in kinds for entry in sections.get(k.section, [])}
        for label in sorted(set(ev.only) - labels):
            problems.add(("evaluators", i, "only"), _unknown("entry label", label, labels))
    problems.raise_if_any()
    suite = Suite(name, description, seed, device, attention, generators, evaluators, reports, source, samples)
    seen: dict[str, int] = {}
    for job in suite.jobs():
        seen[job.name] = seen.get(job.name, 0) + 1
    for job_name in (n for n, c in seen.items() if c > 1):
        problems.add((), f"job {job_name!r} appears more than once; give repeated entries distinct labels")
    problems.raise_if_any()
    return suite


def _unknown(what: str, key: Any, valid: set[str]) -> str:
    close = difflib.get_close_matches(str(key), sorted(valid), n=1)
    hint = f"; did you mean {close[0]!r}?" if close else ""
    return f"unknown {what} {key!r}{hint} (valid: {', '.join(sorted(valid))})"


def _entries(data: dict, section: str, reg: registry.Registry, problems: _Problems,
             reserved: tuple[str, ...] = (), path: tuple | None = None) -> list[Entry]:
    """Validate a list of entries (names or mappings) under ``section``."""
    path = (section,) if path is None else path
    items = _get(data, path)
    if items is None:
        return []
    if not isinstance(items, list):
        problems.add(path, f"must be a list, got {type(items).__name__}")
        return []
    entries = []
    for i, item in enumerate(items):
        here = path + (i,)
        if isinstance(item, str):
            item = {"name": item}
        if not isinstance(item, dict):
            problems.add(here, f"must be a name or a mapping, got {type(item).__name__}")
            continue
        for key in sorted(set(item) - ENTRY_KEYS[section]):
            problems.add(here + (key,), _unknown("key", key, ENTRY_KEYS[section]))
        name, options, label = item.get("name"), item.get("options") or {}, item.get("label", "")
        if not isinstance(name, str):
            problems.add(here + ("name",) if "name" in item else here, "needs a 'name' (string)")
            continue
        if not isinstance(options, dict):
            problems.add(here + ("options",), f"must be a mapping, got {type(options).__name__}")
            continue
        if not isinstance(label, str):
            problems.add(here + ("label",), "must be a string")
            continue
        only = item.get("only", []) if section == "evaluators" else []
        if not isinstance(only, list) or not all(isinstance(o, str) for o in only):
            problems.add(here + ("only",), "must be a list of entry labels")
            continue
        if name not in reg:
            problems.add(here + ("name",), reg.unknown_message(name))
            continue
        entry = Entry(name, options, label, only=only)
        sub_reserved = reserved
        if section == "generators":
            entry.checkpoint = _checkpoint(item, here, problems)
            if "attention" in item:
                if "attention" not in registry.factory_parameters(reg.get(name)):
                    problems.add(here + ("attention",), f"generator {name!r} does not let its attention "
                                                        "variant be chosen")
                else:
                    entry.attention = _entries(data, "attention", registry.attention, problems,
                                               reserved=GEOMETRY, path=here + ("attention",))
                    sub_reserved = ("attention", "attention_options")
                    entry.options = dict(options)
        for problem in reg.check_options(name, options, reserved=sub_reserved):
            problems.add(here + ("options",), problem)
        if section in ("evaluators", "reports") and not reg.check_options(name, options):
            try:
                reg.build(name, **options)
            except LinaBenchError as exc:
                problems.add(here + ("options",), str(exc))
        entries.append(entry)
    return entries


def _samples(data: dict, problems: _Problems) -> list[Entry]:
    """The ``samples:`` section: ``{name, path}`` entries whose path is an npz or a folder."""
    items = data.get("samples")
    if items is None:
        return []
    if not isinstance(items, list):
        problems.add(("samples",), f"must be a list, got {type(items).__name__}")
        return []
    entries = []
    for i, item in enumerate(items):
        here = ("samples", i)
        if not isinstance(item, dict) or not isinstance(item.get("name"), str) or not isinstance(item.get("path"), str):
            problems.add(here, "must be a mapping {name: <label>, path: <npz or folder>}")
            continue
        for key in sorted(set(item) - ENTRY_KEYS["samples"]):
            problems.add(here + (key,), _unknown("key", key, ENTRY_KEYS["samples"]))
        try:
            registry.targets.build("samples").check(item["path"])
        except LinaBenchError as exc:
            problems.add(here + ("path",), str(exc))
            continue
        entries.append(Entry(item["name"], {"path": item["path"]}))
    return entries


def _get(data: Any, path: tuple) -> Any:
    for part in path:
        try:
            data = data[part]
        except (KeyError, IndexError, TypeError):
            return None
    return data


def _checkpoint(item: dict, here: tuple, problems: _Problems) -> str | None:
    checkpoint = item.get("checkpoint")
    if checkpoint is None:
        return None
    if not isinstance(checkpoint, str):
        problems.add(here + ("checkpoint",), "must be a path (string)")
    elif not Path(checkpoint).exists():
        problems.add(here + ("checkpoint",), f"checkpoint not found: {checkpoint} (a file, or a folder for "
                                             "generators that load one)")
    else:
        return checkpoint
    return None
