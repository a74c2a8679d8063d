"""Moved to :mod:`lina_bench.api.registry`; this path keeps working for one release."""

import sys

from lina_bench.api import registry as _moved

sys.modules[__name__] = _moved
