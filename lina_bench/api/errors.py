"""Exceptions that the CLI turns into exit codes (see ``lina_bench.cli``)."""


class LinaBenchError(ValueError):
    """Bad usage or bad input: unknown names, invalid suites, missing files. Exit code 2."""


class JobFailed(Exception):
    """A job or a check failed while running. Exit code 1."""
