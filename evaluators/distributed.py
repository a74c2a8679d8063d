"""Moved to :mod:`lina_bench.api.distributed`; this path keeps working for one release."""

import sys

from lina_bench.api import distributed as _moved

sys.modules[__name__] = _moved
