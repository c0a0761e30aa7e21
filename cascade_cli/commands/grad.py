"""``cascade grad FILE [--wrt Q,K] [--outputs O] [-o FILE_grad.ein] [--forward FILE_fwd.ein]``:
the reverse-mode gradient cascade (einsum_ir.autodiff)."""
from __future__ import annotations

from einsum_ir.errors import CascadeError

from ..io import read_cascade, write_output
from ..options import add_file_argument, add_set_option, parse_assignments


def register(sub) -> None:
    p = sub.add_parser("grad", help="derive the cascade computing the gradients of the inputs")
    add_file_argument(p)
    p.add_argument("--wrt", metavar="X,Y", help="the inputs to differentiate (default: all)")
    p.add_argument("--outputs", metavar="O", help="the outputs whose gradients (seeds dO) are "
                   "given (default: all)")
    p.add_argument("--no-lse", action="store_true", help="differentiate each softmax as written "
                   "(through its max) instead of saving its log-sum-exp")
    p.add_argument("-o", "--output", metavar="OUT.ein", help="write the gradient cascade here "
                   "(default: print it)")
    p.add_argument("--forward", metavar="FWD.ein", help="also write the forward cascade with the "
                   "saved values (the log-sum-exps) as extra outputs")
    p.add_argument("--check", action="store_true", help="compare the gradient with central "
                   "differences of the cascade on random inputs (float64, the --set sizes) and "
                   "print the largest relative difference")
    add_set_option(p)
    p.set_defaults(func=run)


def _names(text: str | None, option: str) -> list[str] | None:
    if text is None:
        return None
    names = [n.strip() for n in text.split(",") if n.strip()]
    if not names:
        raise CascadeError("give at least one name", file=option, hint=f"for example {option} Q,K")
    return names


def run(args) -> int:
    from einsum_ir.autodiff import gradient
    from einsum_ir.parser import parse
    from einsum_ir.printer import format_cascade

    cascade = read_cascade(args.file)
    wrt, outputs = _names(args.wrt, "--wrt"), _names(args.outputs, "--outputs")
    try:
        result = gradient(cascade, wrt, outputs, save_lse=not args.no_lse)
    except CascadeError as exc:
        if exc.span is None and exc.file is None:
            exc.file = args.file
        raise
    seeds = ", ".join(f"{s} (of {o})" for o, s in result.seeds)
    grads = ", ".join(f"{g} (of {x})" for x, g in result.grads)
    header = (f"# gradient of {args.file}: seeds {seeds}; gradients {grads}"
              + (f"; saved by the forward: {', '.join(result.saved)}" if result.saved else "")
              + "\n")
    text = format_cascade(result.backward)
    parse(text, args.output or "<grad>")  # what is written must read back
    if args.check:
        _check(cascade, result, parse_assignments(args.set))
    if args.forward:
        write_output("--forward", args.forward, f"# {args.file} with the values its gradient "
                     "saves as outputs\n" + format_cascade(result.forward))
        print(f"wrote {args.forward}")
    if args.output:
        write_output("-o", args.output, header + text)
        print(f"wrote {args.output}")
    else:
        print(header + text, end="")
    return 0


def _check(cascade, result, sizes) -> None:
    from einsum_ir.autodiff.check import directional_error

    error = directional_error(cascade, result, sizes)
    print(f"# check: directional derivatives vs central differences, 3 random directions: "
          f"largest relative difference {error:.2e}")
    if error > 1e-5:
        raise CascadeError(f"the gradient does not match central differences ({error:.2e})",
                           hint="report it: this is a bug of the gradient pass")
