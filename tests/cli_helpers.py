"""Helpers to run the CLI in tests."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import tempfile
from pathlib import Path

from click.testing import CliRunner

from lina_bench.cli import cli


def run_cli(*args: str) -> tuple[int, str]:
    """Run the CLI in-process the way the console script does; returns (exit code, output)."""
    runner = CliRunner()
    result = runner.invoke(cli, list(args), prog_name="lina-bench", catch_exceptions=False)
    return result.exit_code, result.output


def run_console(*args: str, cwd: Path | None = None) -> subprocess.CompletedProcess:
    """Run ``lina-bench`` as a subprocess (real exit codes, real stderr)."""
    return subprocess.run([sys.executable, "-c", "from lina_bench.cli import main; main()", *args],
                          capture_output=True, text=True, cwd=cwd, timeout=300)


_STOP_AFTER = """
import os, signal, sys
from importlib import import_module
module_name, _, path = sys.argv.pop(1).partition(":")
count = int(sys.argv.pop(1))
owner = import_module(module_name)
*parents, name = path.split(".")
for part in parents:
    owner = getattr(owner, part)
real, calls = getattr(owner, name), [0]
def wrapped(*args, **kwargs):
    result = real(*args, **kwargs)
    calls[0] += 1
    if calls[0] == count:
        os.kill(os.getpid(), signal.SIGSTOP)
    return result
setattr(owner, name, wrapped)
from lina_bench.cli import main
main()
"""


def kill_9_after(target: str, calls: int, *args: str) -> None:
    """Run ``lina-bench *args`` in a subprocess that stops itself right after the ``calls``-th return of
    ``target`` ("module:attr" or "module:Class.method"), then ``kill -9`` it.

    The kill lands at an observed event (e.g. the 2nd finished shard), not after a sleep, so the
    test does not depend on how fast the machine is."""
    with tempfile.TemporaryFile() as log:  # a file, not a pipe: a full pipe would block the child
        proc = subprocess.Popen([sys.executable, "-c", _STOP_AFTER, target, str(calls), *args],
                                stdout=subprocess.DEVNULL, stderr=log)
        _, status = os.waitpid(proc.pid, os.WUNTRACED)
        if not os.WIFSTOPPED(status):  # ended before the event: the test cannot go on
            log.seek(0)
            raise AssertionError(f"the command ended before call {calls} of {target} "
                                 f"(exit {os.waitstatus_to_exitcode(status)}): {log.read()[-2000:].decode()}")
        os.kill(proc.pid, signal.SIGKILL)
        os.waitpid(proc.pid, 0)
        proc.returncode = -signal.SIGKILL


def stored_rows(out_dir: Path) -> dict[str, dict]:
    """The current rows of ``out_dir``'s results store, by metric name (``lina-bench results``)."""
    import json

    code, text = run_cli("results", "--out", str(out_dir), "--format", "json")
    assert code == 0, text
    return {row["metric"]: row for row in json.loads(text)}


def assert_same_rows(command_out: Path, suite_out: Path) -> None:
    """A command and a suite stored the same measurement: metric names, protocols and values equal."""
    command, suite = stored_rows(command_out), stored_rows(suite_out)
    assert command.keys() == suite.keys() and command
    for metric, row in command.items():
        assert row["protocol"] == suite[metric]["protocol"], metric
        assert row["value"] == suite[metric]["value"], metric
