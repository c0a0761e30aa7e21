"""Entry point of the ``cascade`` command. Subcommands live in ``cascade_cli/commands/*.py``.

Each command module defines ``register(subparsers)``, which adds its parsers and sets
``func=callable(args) -> int``. Command modules import numpy, sympy, networkx and torch inside
their functions, so that ``--help`` and ``check`` start fast. Bad input raises CascadeError,
printed as a located diagnostic with exit code 1; other exceptions are internal errors (exit 2
like a usage error, with the traceback only under CASCADE_DEBUG=1).
"""
from __future__ import annotations

import argparse
import importlib
import os
import sys
import traceback
import warnings

from einsum_ir.errors import CascadeError

from . import version
from .options import parse_bytes

# The commands in the order of the workflow: (name, module in commands/, example).
GROUPS = (
    ("the language", (
        ("check", "check", "cascade check examples/attention/causal.ein"),
        ("show", "check", "cascade show examples/attention/gqa.ein --json"),
        ("eval", "eval", "cascade eval examples/attention/causal.ein --set P=64 --out out.npz"),
        ("grad", "grad", "cascade grad examples/attention/causal.ein --wrt Q,K,V -o causal_grad.ein"),
    )),
    ("target-free analyses and rewrites", (
        ("passes", "analyze", "cascade passes examples/attention/mha_3pass.ein"),
        ("work", "analyze", "cascade work examples/attention/causal.ein --set P=1K"),
        ("footprint", "analyze", "cascade footprint examples/attention/causal.ein --dtype float16"),
        ("rewrite", "analyze",
         "cascade rewrite examples/attention/mha_3pass.ein --pass online-softmax"),
    )),
    ("accelerator model", (
        ("import-arch", "import_arch",
         "cascade import-arch examples/archs/timeloop/eyeriss_like.yaml -o eyeriss.yaml"),
        ("simulate", "simulate", "cascade simulate examples/attention/causal.ein --arch fusemax"),
        ("map", "simulate",
         "cascade map examples/attention/mha_3pass.ein --arch fusemax --save best.yaml"),
        ("reproduce", "reproduce", "cascade reproduce fusemax --plots plots/"),
        ("sweep", "sweep", "cascade sweep examples/sweeps/fusemax_pareto.yaml -o results.parquet"),
        ("plot", "plot", "cascade plot results.parquet --pareto latency,area --by workload"),
    )),
    ("GPU (Triton)", (
        ("compile", "compile", "cascade compile examples/attention/causal.ein -o kernel.py"),
        ("run", "compile", "cascade run examples/attention/causal.ein --dtype float32 --check"),
    )),
    ("tour", (
        ("demo", "demo", "cascade demo"),
    )),
)
MODULE_OF = {name: module for _, commands in GROUPS for name, module, _ in commands}
EXAMPLE_OF = {name: example for _, commands in GROUPS for name, _, example in commands}

EXIT_CODES = """exit status:
  0  success
  1  bad input: the diagnostic names the file, line and column, or the option
  2  usage error (unknown option, missing argument), or an internal error
  3  `run --check`: the kernel does not match the reference interpreter
  130  interrupted"""


class _Parser(argparse.ArgumentParser):
    def error(self, message):  # argparse's own errors: same shape as ours, exit 2 (usage)
        self.print_usage(sys.stderr)
        print(f"{self.prog}: error: {message}", file=sys.stderr)
        sys.exit(2)


class _Version(argparse.Action):
    def __call__(self, parser, namespace, values, option_string=None):
        print(f"cascade {version()}")
        parser.exit()


def _command_list(helps: dict[str, str]) -> str:
    lines = ["commands, in the order of the workflow:"]
    for title, commands in GROUPS:
        lines.append(f"\n  {title}:")
        for name, _, example in commands:
            lines.append(f"    {name:11} {helps.get(name, '')}")
            lines.append(f"    {'':11}   e.g. {example}")
    lines.append("\nFILE is a cascade file, or - for standard input. "
                 "`cascade COMMAND --help` for a command's options.\n")
    return "\n".join(lines) + "\n" + EXIT_CODES


def build_parser(command: str | None = None) -> argparse.ArgumentParser:
    """The parser of every command, or (faster to import) of ``command``'s module only."""
    parser = _Parser(prog="cascade", formatter_class=argparse.RawDescriptionHelpFormatter,
                     description="Compile, analyse, simulate and generate kernels for attention "
                     "written as cascades of extended Einsums.")
    parser.add_argument("--version", action=_Version, nargs=0, help="print the version and exit")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", parser_class=_Parser,
                                help="one of the commands below")
    modules = [MODULE_OF[command]] if command in MODULE_OF else list(dict.fromkeys(MODULE_OF.values()))
    for module in modules:
        importlib.import_module(f"{__package__}.commands.{module}").register(sub)
    helps = {action.dest: action.help for action in sub._choices_actions}
    sub._choices_actions.clear()  # listed in workflow order in the epilog instead
    parser.epilog = _command_list(helps)
    for name, subparser in sub.choices.items():
        subparser.formatter_class = argparse.RawDescriptionHelpFormatter
        subparser.epilog = f"example:\n  {EXAMPLE_OF[name]}\n\n{EXIT_CODES}"
        if name not in ("demo", "reproduce", "import-arch"):
            subparser.add_argument("--max-memory", metavar="BYTES", type=parse_bytes,
                                 default=None, help="refuse to evaluate when one array or all "
                                 "tensors together would take more (default 4G)")
    return parser


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else list(argv)
    parser = build_parser(argv[0] if argv else None)
    args = parser.parse_args(argv)
    if not getattr(args, "func", None):
        parser.print_help()
        return 2
    try:
        with warnings.catch_warnings():
            warnings.showwarning = _show_warning
            return _run(args)
    except CascadeError as exc:
        if (exc.span is None and exc.file is None and getattr(args, "file", None)
                and not exc.message.startswith("-")):  # an option's error names the option
            exc.file = "<stdin>" if args.file == "-" else args.file
        print(exc.render(), file=sys.stderr)
        return 1
    except MemoryError:
        print("cascade: error: out of memory\nhint: try smaller sizes (--set P=...)",
              file=sys.stderr)
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


def _show_warning(message, category, filename, lineno, file=None, line=None):
    """Our warnings (a category with ``cli_plain``, e.g. what an imported Timeloop design does
    not model) print as ``warning: ...``; others as Python prints them."""
    if getattr(category, "cli_plain", False):
        print(f"warning: {message}", file=file or sys.stderr)
    else:
        _DEFAULT_SHOW(message, category, filename, lineno, file, line)


_DEFAULT_SHOW = warnings.showwarning


def _run(args) -> int:
    if getattr(args, "max_memory", None) is None:
        return int(args.func(args) or 0)
    from einsum_ir.labelled import max_memory

    token = max_memory.set(args.max_memory)
    try:
        return int(args.func(args) or 0)
    finally:
        max_memory.reset(token)


if __name__ == "__main__":
    sys.exit(main())
