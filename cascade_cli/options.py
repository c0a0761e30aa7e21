"""Options shared by several subcommands."""
from __future__ import annotations

import argparse

from einsum_ir.errors import CascadeError


def parse_assignments(items: list[str] | None, flag: str = "--set") -> dict[str, int]:
    """``NAME=VALUE`` pairs (integers) from a repeatable option."""
    out: dict[str, int] = {}
    for item in items or []:
        name, sep, value = item.partition("=")
        if not sep or not name.strip():
            raise CascadeError(f"{flag} {item}: expected NAME=VALUE", hint=f"for example {flag} P=1024")
        try:
            out[name.strip()] = int(value.strip().replace("_", ""))
        except ValueError:
            # Accept 1K / 4K / 1M style sizes.
            text = value.strip().upper()
            scale = {"K": 1024, "M": 1024 ** 2}.get(text[-1:])
            if scale and text[:-1].isdigit():
                out[name.strip()] = int(text[:-1]) * scale
            else:
                raise CascadeError(f"{flag} {item}: {value!r} is not an integer") from None
    return out


def add_set_option(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--set", action="append", metavar="NAME=VALUE", default=[],
                        help="override a rank size or parameter (repeatable), e.g. --set P=4096")
