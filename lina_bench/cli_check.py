"""Moved to :mod:`lina_bench.cli.check`; this path keeps working for one release."""

import sys

from lina_bench.cli import check as _moved

sys.modules[__name__] = _moved
