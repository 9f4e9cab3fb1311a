"""The ``numba-rnn`` command: ``demo`` and ``warmup``."""
import argparse
import codecs
import sys
import time

import numpy as np

from . import __version__
from .cells import BasicRNNCell, GRUCell, LSTMCell
from .rnn import dynamic_rnn

CELLS = {"lstm": LSTMCell, "gru": GRUCell, "rnn": BasicRNNCell}


def _positive_int(text):
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a positive integer, got {text!r}") from None
    if value <= 0:
        raise argparse.ArgumentTypeError(f"expected a positive integer, got {value}")
    return value


def _zen_of_python():
    """A text that ships with every Python: ``this.s`` is the Zen of Python in ROT13."""
    import contextlib
    import io

    with contextlib.redirect_stdout(io.StringIO()):
        import this
    return codecs.decode(this.s, "rot13")


def demo(args):
    """Run a cell over the lines of a text: variable lengths, then state carried in segments."""
    lines = [line for line in _zen_of_python().splitlines() if line.strip()]
    alphabet = sorted(set("".join(lines)))
    index = {ch: i for i, ch in enumerate(alphabet)}
    lengths = np.array([len(line) for line in lines])
    x = np.zeros((len(lines), lengths.max(), len(alphabet)), dtype=np.float32)
    for b, line in enumerate(lines):
        x[b, np.arange(len(line)), [index[ch] for ch in line]] = 1.0  # one-hot characters

    cell = CELLS[args.cell](args.units, seed=args.seed)
    print(f"numba-rnn {__version__} demo: {type(cell).__name__}({args.units}) over the "
          f"{len(lines)} lines of the Zen of Python, one-hot over {len(alphabet)} characters")
    print(f"inputs [batch_size, max_time, depth] = {list(x.shape)}, sequence_length from "
          f"{lengths.min()} to {lengths.max()}")

    start = time.perf_counter()
    outputs, state = dynamic_rnn(cell, x, sequence_length=lengths)
    first = time.perf_counter() - start
    times = []
    for _ in range(args.repeats):
        start = time.perf_counter()
        outputs, state = dynamic_rnn(cell, x, sequence_length=lengths)
        times.append(time.perf_counter() - start)
    median = float(np.median(times))
    print(f"first call {first:.2f} s (includes compiling or loading the kernels), then median "
          f"{median * 1e3:.2f} ms over {args.repeats} calls = "
          f"{lengths.sum() / median:,.0f} characters/s")

    h = state.h if hasattr(state, "h") else state
    last = outputs[np.arange(len(lines)), lengths - 1]
    past_end = max(float(np.abs(outputs[b, n:]).max(initial=0.0)) for b, n in enumerate(lengths))
    print(f"past each line's end the outputs are zero (max |output| there: {past_end}); the "
          f"final state is the output at step length - 1 (max difference "
          f"{float(np.abs(h - last).max()):.1e})")

    # Carrying the state: the whole text as one sequence, in segments vs in one call.
    text = "\n".join(lines)
    stream = np.zeros((1, len(text), len(alphabet)), dtype=np.float32)
    stream[0, np.arange(len(text)), [index.get(ch, 0) for ch in text]] = 1.0
    whole, _ = dynamic_rnn(cell, stream)
    carried, pieces = None, []
    for begin in range(0, len(text), args.segment):
        piece, carried = dynamic_rnn(cell, stream[:, begin:begin + args.segment],
                                     initial_state=carried)
        pieces.append(piece)
    gap = float(np.abs(np.concatenate(pieces, axis=1) - whole).max())
    print(f"the text as one sequence of {len(text)} steps, run in {len(pieces)} segments of "
          f"{args.segment} with the final state passed as the next initial_state: max "
          f"difference from one call {gap:.1e}")
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

    p = commands.add_parser("demo", help="run a cell over variable-length text and show the "
                                         "semantics of sequence_length and carried state")
    p.add_argument("--cell", choices=sorted(CELLS), default="lstm")
    p.add_argument("--units", type=_positive_int, default=128)
    p.add_argument("--segment", type=_positive_int, default=64,
                   help="segment length for the carried-state run")
    p.add_argument("--repeats", type=_positive_int, default=20)
    p.add_argument("--seed", type=int, default=0)
    p.set_defaults(run=demo)

    p = commands.add_parser("warmup", help="compile all kernels ahead into the on-disk cache")
    p.set_defaults(run=warmup)

    args = parser.parse_args(argv)
    try:
        return args.run(args)
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
