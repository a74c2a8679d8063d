"""Moved to :mod:`lina_bench.cli.geneval`; this path keeps working for one release."""

import sys

from lina_bench.cli import geneval as _moved

sys.modules[__name__] = _moved
