"""``python -m lina_bench.cli``: the ``lina-bench`` command."""

from lina_bench.cli import main

main()
