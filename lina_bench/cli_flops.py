"""Moved to :mod:`lina_bench.cli.flops`; this path keeps working for one release."""

import sys

from lina_bench.cli import flops as _moved

sys.modules[__name__] = _moved
