"""Moved to :mod:`lina_bench.engine.provenance`; this path keeps working for one release."""

import sys

from lina_bench.engine import provenance as _moved

sys.modules[__name__] = _moved
