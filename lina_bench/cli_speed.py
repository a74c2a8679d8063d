"""Moved to :mod:`lina_bench.cli.speed`; this path keeps working for one release."""

import sys

from lina_bench.cli import speed as _moved

sys.modules[__name__] = _moved
