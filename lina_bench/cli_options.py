"""Moved to :mod:`lina_bench.cli.options`; this path keeps working for one release."""

import sys

from lina_bench.cli import options as _moved

sys.modules[__name__] = _moved
