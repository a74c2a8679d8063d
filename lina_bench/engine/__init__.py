"""lina-bench's machinery on top of :mod:`lina_bench.api`: suites, the runner (the one path every
measurement takes), the results store, provenance and the regression checks."""
