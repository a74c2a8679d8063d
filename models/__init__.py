"""Generators and attention variants (installed as ``lina_bench.models``).

* :mod:`lina_bench.models.attention` -- the attention-variant zoo (``attention.build``).
* :mod:`lina_bench.models.generator` -- the contract every generator family implements.
* :mod:`lina_bench.models.toy` -- a tiny built-in generator honouring that contract.
"""
