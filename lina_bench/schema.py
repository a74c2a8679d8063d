"""Moved to :mod:`lina_bench.api.schema`; this path keeps working for one release."""

import sys

from lina_bench.api import schema as _moved

sys.modules[__name__] = _moved
