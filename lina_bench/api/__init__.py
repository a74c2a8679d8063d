"""lina-bench's contracts: what plugins (models, kernels, evaluators, reports) and third parties build on.

* :mod:`~lina_bench.api.errors` -- the exceptions that become exit codes;
* :mod:`~lina_bench.api.schema` -- the result schema (what a stored row holds);
* :mod:`~lina_bench.api.registry` -- the one name -> factory registry (lazy, plugins via entry points);
* :mod:`~lina_bench.api.evaluator` -- Evaluator, Measurement, EvalContext, ModuleSetting, TargetKind;
* :mod:`~lina_bench.api.generator` -- the generator contract (Generator, GeneratorInfo, CostStage, seeds);
* :mod:`~lina_bench.api.attention` -- AttentionModule, the base of every attention variant;
* :mod:`~lina_bench.api.report` -- Report, the base of reports;
* :mod:`~lina_bench.api.files`, :mod:`~lina_bench.api.distributed` -- hashes, atomic writes, torchrun ranks.

Importing this package imports none of them (and no torch): ``lina-bench list`` stays fast.
"""
