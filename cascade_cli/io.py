"""What the command line reads and writes: cascade files (``-`` is standard input), input arrays,
and output files. Every failure is a CascadeError naming the file or the option."""
from __future__ import annotations

import contextlib
import os
import sys
from pathlib import Path
from typing import Iterator

from einsum_ir.errors import CascadeError
from einsum_ir.parser import MAX_SOURCE_BYTES, decode_source, parse, parse_file

STDIN = "-"
MAX_INPUT_BYTES = 16 * 2 ** 30  # an --inputs file; arrays are checked again against --max-memory


def read_cascade(path: str):
    """Parses the cascade file at ``path``, or standard input for ``-`` (unverified IR)."""
    if path != STDIN:
        return parse_file(path)
    stream = getattr(sys.stdin, "buffer", None)  # a text-only stdin (a test harness) has none
    if sys.stdin is None:
        raise CascadeError("standard input is closed", file="<stdin>",
                           hint="give the cascade file's path instead of -")
    data = (stream.read(MAX_SOURCE_BYTES + 1) if stream is not None
            else sys.stdin.read(MAX_SOURCE_BYTES + 1).encode("utf-8"))
    return parse(decode_source(data, "<stdin>"), "<stdin>")


def load_cascade(args):
    """The load sequence every command shares: parse, verify, resolve ``--set`` sizes.

    Returns (cascade, analysis, sizes)."""
    from einsum_ir.loading import load_resolved

    loaded = load_resolved(read_cascade(args.file), args.set)
    return loaded.cascade, loaded.facts, dict(loaded.sizes)


@contextlib.contextmanager
def output_errors(option: str, path: str | os.PathLike) -> Iterator[None]:
    """Turns a failure to write ``path`` (given with ``option``) into a CascadeError located
    by the option (``--out o.npz: error: ...``)."""
    where = f"{option} {path}"
    try:
        yield
    except IsADirectoryError:
        raise CascadeError("is a directory", hint="give a file name", file=where) from None
    except FileNotFoundError:
        raise CascadeError(f"directory {Path(path).parent} does not exist",
                           hint="create the directory first", file=where) from None
    except OSError as exc:
        reason = exc.strerror or exc.__class__.__name__
        raise CascadeError(f"cannot write: {reason}", hint="choose a path you can write to",
                           file=where) from None


def write_output(option: str, path: str | os.PathLike, data: str | bytes) -> None:
    """Writes ``data`` to exactly ``path``."""
    with output_errors(option, path):
        mode = "wb" if isinstance(data, bytes) else "w"
        with open(path, mode, **({} if isinstance(data, bytes) else {"encoding": "utf-8"})) as fh:
            fh.write(data)


def write_npz(option: str, path: str, arrays: dict) -> None:
    """Writes ``arrays`` to exactly ``path``, which must end in ``.npz`` (numpy would add it)."""
    import numpy as np

    if not path.endswith(".npz"):
        raise CascadeError("the file name must end in .npz", file=f"{option} {path}",
                           hint=f"for example {option} {Path(path).with_suffix('.npz')}")
    with output_errors(option, path), open(path, "wb") as fh:
        np.savez(fh, **arrays)


def read_npz(option: str, path: str) -> dict:
    """The arrays of an ``.npz`` file (no pickled objects), read with a size limit."""
    import zipfile

    import numpy as np

    where = f"{option} {path}"
    try:
        size = os.stat(path).st_size
        if os.path.isdir(path):
            raise IsADirectoryError(path)
    except FileNotFoundError:
        raise CascadeError("no such file", hint=f"{option} takes an .npz file such as one "
                           "written by `cascade eval --out`", file=where) from None
    except OSError as exc:
        raise CascadeError(f"cannot read: {exc.strerror or 'is a directory'}",
                           hint=f"{option} takes an .npz file", file=where) from None
    if size > MAX_INPUT_BYTES:
        raise CascadeError(f"the file is larger than {MAX_INPUT_BYTES // 2 ** 30} GiB",
                           hint="use smaller inputs", file=where)
    hint = "save named arrays with numpy.savez(path, Q=..., K=...)"
    try:
        data = np.load(path, allow_pickle=False)
        if not isinstance(data, np.lib.npyio.NpzFile):
            raise CascadeError("a single array, not an .npz archive of named arrays",
                               hint=hint, file=where)
        with data:
            _check_unpacked_size(option, path, data)
            return {name: data[name] for name in data.files}
    except (OSError, ValueError, EOFError, zipfile.BadZipFile, KeyError) as exc:
        raise CascadeError(f"not a readable .npz file ({exc})", hint=hint, file=where) from None


def _check_unpacked_size(option: str, path: str, data) -> None:
    """Refuses an archive whose arrays would unpack to more than --max-memory (a zip bomb)."""
    from einsum_ir.labelled import format_bytes, max_memory

    unpacked = sum(info.file_size for info in data.zip.infolist())
    if unpacked > max_memory.get():
        raise CascadeError(f"the arrays unpack to {format_bytes(unpacked)}, more than the limit of "
                           f"{format_bytes(max_memory.get())}", file=f"{option} {path}",
                           hint="use smaller inputs or raise --max-memory")
