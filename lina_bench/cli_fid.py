"""Moved to :mod:`lina_bench.cli.fid`; this path keeps working for one release."""

import sys

from lina_bench.cli import fid as _moved

sys.modules[__name__] = _moved
