"""Moved to :mod:`lina_bench.engine.store`; this path keeps working for one release."""

import sys

from lina_bench.engine import store as _moved

sys.modules[__name__] = _moved
