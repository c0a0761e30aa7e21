"""Entry point of the ``cascade`` command. Subcommands live in ``cascade_cli/commands/*.py``.

Each command module defines ``register(subparsers)``, which adds its parser and sets
``func=callable(args) -> int``. Bad input raises CascadeError, printed as a located diagnostic with
exit code 1; other exceptions are internal errors (traceback only with CASCADE_DEBUG=1).
"""
from __future__ import annotations

import argparse
import importlib
import os
import pkgutil
import sys
import traceback

from einsum_ir.errors import CascadeError

from . import commands


class _Parser(argparse.ArgumentParser):
    def error(self, message):  # argparse's own errors: same shape as ours, exit 1
        self.print_usage(sys.stderr)
        print(f"{self.prog}: error: {message}", file=sys.stderr)
        sys.exit(1)


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(prog="cascade", description="Compile, analyse, simulate and generate kernels "
                     "for attention written as cascades of extended Einsums.")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", parser_class=_Parser)
    for info in sorted(pkgutil.iter_modules(commands.__path__), key=lambda m: m.name):
        module = importlib.import_module(f"{commands.__name__}.{info.name}")
        if hasattr(module, "register"):
            module.register(sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if not getattr(args, "func", None):
        parser.print_help()
        return 1
    try:
        return int(args.func(args) or 0)
    except CascadeError as exc:
        print(exc.render(), file=sys.stderr)
        return 1
    except MemoryError:
        print("cascade: error: out of memory; try smaller sizes (--set P=...)", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130
    except BrokenPipeError:
        return 0
    except Exception as exc:  # a bug in cascade, not in the user's input
        if os.environ.get("CASCADE_DEBUG"):
            traceback.print_exc()
        print(f"cascade: internal error: {exc.__class__.__name__}: {exc}\n"
              "(set CASCADE_DEBUG=1 for the traceback, and please report it)", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
