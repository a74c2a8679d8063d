"""Moved to :mod:`lina_bench.engine.suite`; this path keeps working for one release."""

import sys

from lina_bench.engine import suite as _moved

sys.modules[__name__] = _moved
