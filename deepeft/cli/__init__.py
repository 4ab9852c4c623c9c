"""The command line: thin; each command group lives in its own module and calls the engines.

Command modules (each defines ``register(subparsers)``): theory, check, bayes, study, train, lab.
"""
from __future__ import annotations

import argparse
import importlib
import json
import sys

from ..core.errors import DeepEFTError

_COMMAND_MODULES = ("theory_cmd", "check_cmd", "bayes_cmd", "study_cmd", "train_cmd", "lab_cmd")


def build_parser() -> argparse.ArgumentParser:
    from .. import __version__

    p = argparse.ArgumentParser(prog="deepeft", description="Predict and measure the effective theory of deep networks.")
    p.add_argument("--version", action="version", version=f"deepeft {__version__}")
    sub = p.add_subparsers(dest="command", metavar="COMMAND")
    for name in _COMMAND_MODULES:
        try:
            mod = importlib.import_module(f".{name}", __name__)
        except ModuleNotFoundError as exc:
            if exc.name and exc.name.endswith(name):
                continue
            raise
        mod.register(sub)
    return p


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if not getattr(args, "func", None):
        parser.print_help()
        return 2
    try:
        return int(args.func(args) or 0)
    except DeepEFTError as exc:
        if getattr(args, "json", False):
            print(json.dumps({"error": str(exc)}))
        else:
            print(f"deepeft: error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt as exc:
        print(f"deepeft: {exc or 'interrupted'}; finished results are kept", file=sys.stderr)
        return 130


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
