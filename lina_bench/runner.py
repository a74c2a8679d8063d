"""Moved to :mod:`lina_bench.engine.runner`; this path keeps working for one release."""

import sys

from lina_bench.engine import runner as _moved

sys.modules[__name__] = _moved
