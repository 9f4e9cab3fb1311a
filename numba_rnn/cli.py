"""The ``numba-rnn`` command: ``demo`` and ``warmup``."""
import argparse
import sys
import time

import numpy as np

from . import __version__
from .cells import BasicRNNCell, GRUCell, LSTMCell
from .rnn import dynamic_rnn


def _positive_int(text):
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a positive integer, got {text!r}") from None
    if value <= 0:
        raise argparse.ArgumentTypeError(f"expected a positive integer, got {value}")
    return value


def _positive_float(text):
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a positive number, got {text!r}") from None
    if not value > 0:
        raise argparse.ArgumentTypeError(f"expected a positive number, got {value}")
    return value


def demo(args):
    """Train a character-level RNN on Python's own documentation, then sample from it."""
    from . import demo as char_demo

    char_demo.run(cell=args.cell, units=args.units, steps=args.steps, batch=args.batch,
                  window=args.window, temperature=args.temperature,
                  sample_length=args.sample_length, seed=args.seed)
    return 0


def warmup(args):
    """Compile (or load from the cache) every built-in kernel once, for both dtypes."""
    start = time.perf_counter()
    x = np.zeros((2, 2, 3))
    for dtype in (np.float32, np.float64):
        for make in (LSTMCell, GRUCell, BasicRNNCell):
            dynamic_rnn(make(4, dtype=dtype), x.astype(dtype), sequence_length=[2, 1])
        dynamic_rnn(GRUCell(4, reset_after=True, dtype=dtype), x.astype(dtype))
    print(f"kernels ready in {time.perf_counter() - start:.1f} s")
    return 0


def main(argv=None):
    parser = argparse.ArgumentParser(prog="numba-rnn", description=__doc__)
    parser.add_argument("--version", action="version", version=f"numba-rnn {__version__}")
    commands = parser.add_subparsers(dest="command", required=True)

    p = commands.add_parser("demo", help="train a character-level RNN on Python's own "
                                         "documentation, then generate text")
    p.add_argument("--cell", choices=("lstm", "gru", "rnn"), default="lstm")
    p.add_argument("--units", type=_positive_int, default=128)
    p.add_argument("--steps", type=_positive_int, default=300, help="training steps")
    p.add_argument("--batch", type=_positive_int, default=32, help="parallel text streams")
    p.add_argument("--window", type=_positive_int, default=64, help="steps per batch (BPTT)")
    p.add_argument("--temperature", type=_positive_float, default=0.7,
                   help="sampling temperature (> 0; lower is more conservative)")
    p.add_argument("--sample-length", type=_positive_int, default=300)
    p.add_argument("--seed", type=int, default=0)
    p.set_defaults(run=demo)

    p = commands.add_parser("warmup", help="compile all kernels ahead into the on-disk cache")
    p.set_defaults(run=warmup)

    args = parser.parse_args(argv)
    try:
        return args.run(args)
    except KeyboardInterrupt:
        return 130  # the command has printed its own summary


if __name__ == "__main__":
    sys.exit(main())
