"""Options shared by several subcommands."""
from __future__ import annotations

import argparse

from einsum_ir import assignments


def parse_assignments(items: list[str] | None, flag: str = "--set") -> dict[str, int | float]:
    """``NAME=VALUE`` pairs (integers, ``4K`` style allowed; reals for real parameters, which
    ``resolve_sizes`` tells apart) from a repeatable option."""
    return assignments.parse_assignments(items, flag, example="P=1024 (or P=4K)", floats=True,
                                         kind=assignments.SIZE_KIND)


def add_set_option(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--set", action="append", metavar="NAME=VALUE", default=[],
                        help="override a rank size or parameter (repeatable), e.g. --set P=4096 "
                        "or, for a real parameter, --set CAP=0.5")


_BYTE_UNITS = {"": 1, "K": 2 ** 10, "M": 2 ** 20, "G": 2 ** 30, "T": 2 ** 40}


def parse_bytes(text: str) -> int:
    """An amount of memory for argparse: 4G, 512M, 1.5GiB or a number of bytes."""
    value = text.strip().upper().removesuffix("IB").removesuffix("B")
    unit = value[-1:] if value[-1:] in _BYTE_UNITS else ""
    try:
        amount = float(value[:-1] if unit else value)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not an amount of memory "
                                         "(for example 4G or 512M)") from None
    if not 0 < amount * _BYTE_UNITS[unit] < 2 ** 60:
        raise argparse.ArgumentTypeError(f"{text!r}: give a positive amount below 1024 PiB")
    return int(amount * _BYTE_UNITS[unit])


def non_negative_int(text: str) -> int:
    """An integer >= 0 for argparse (a seed)."""
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not an integer") from None
    if value < 0:
        raise argparse.ArgumentTypeError(f"{text} is negative; give an integer >= 0")
    return value


def add_json_option(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--json", action="store_true",
                        help="print the result as JSON on standard output")


def add_file_argument(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("file", metavar="FILE", help="the cascade file (.ein), or - for standard "
                        "input")
