"""``python -m simulations.run`` for many argument lists, one after another in one interpreter.

A run refused before anything starts spends nearly all its time importing; this pays the
imports once for a whole catalogue of such runs. Each argument list runs the module as
``python -m`` does (as ``__main__``, so Hydra finds the configs the same way); after each, one
JSON line is printed with its exit code, everything it printed, and the digest of a watched
directory.

Usage: ``python -m helpers.cli_batch <watched directory> <JSON list of argument lists>``, from
the repository root with it and ``tests/`` on ``PYTHONPATH``.
"""

import contextlib
import io
import json
import runpy
import sys
from pathlib import Path

from conftest import digest


def run(arguments: list[str]) -> tuple[int, str]:
    """The exit code and the output of ``python -m simulations.run <arguments>``."""
    output = io.StringIO()
    sys.argv = ["simulations.run", *arguments]
    with contextlib.redirect_stdout(output), contextlib.redirect_stderr(output):
        try:
            runpy.run_module("simulations.run", run_name="__main__", alter_sys=True)
        except SystemExit as exit_:
            code = exit_.code if isinstance(exit_.code, int) else 1
        else:
            code = 0
    return code, output.getvalue()


if __name__ == "__main__":
    watched = Path(sys.argv[1])
    for arguments in json.loads(sys.argv[2]):
        code, output = run(arguments)
        print(json.dumps({"code": code, "output": output, "watched": digest(watched)}), flush=True)
