"""Reports (installed as ``lina_bench.reports``): leaderboard tables, plots and regression checks
built from the results store. The first reports arrive with the efficiency suite."""
