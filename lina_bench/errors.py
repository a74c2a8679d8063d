"""Moved to :mod:`lina_bench.api.errors`; this path keeps working for one release."""

import sys

from lina_bench.api import errors as _moved

sys.modules[__name__] = _moved
