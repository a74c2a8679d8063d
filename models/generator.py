"""Moved to :mod:`lina_bench.api.generator`; this path keeps working for one release."""

import sys

from lina_bench.api import generator as _moved

sys.modules[__name__] = _moved
