"""Evaluators (installed as ``lina_bench.evaluators``): they measure generators and attention
variants and return :class:`lina_bench.api.schema.Metric` values. Registered in
``lina_bench.api.registry.evaluators``; the base class is :class:`lina_bench.evaluators.base.Evaluator`.

* ``module-profile`` -- parameter count and CPU/GPU forward latency of an attention variant.
* ``sample-determinism`` -- checks a generator's determinism contract and its sampling speed.
"""
