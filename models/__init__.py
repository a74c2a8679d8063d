"""Generators and attention variants (installed as ``lina_bench.models``).

* :mod:`lina_bench.models.attention` -- the attention-variant zoo (``attention.build``).
* :mod:`lina_bench.api.generator` -- the contract every generator family implements.
* :mod:`lina_bench.models.toy` -- a tiny built-in generator honouring that contract.
* :mod:`lina_bench.models.contract` -- :func:`check_generator_contract`, the contract as a check.
"""

from lina_bench.models.contract import ContractViolation, check_generator_contract

__all__ = ["ContractViolation", "check_generator_contract"]
