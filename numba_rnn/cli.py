"""The ``numba-rnn`` command: ``demo``, ``warmup`` and ``bench``."""
import argparse
import os
import sys
import time

import numpy as np

from . import __version__
from . import rnn as rnn_module
from .cells import BasicRNNCell, GRUCell, LSTMCell
from .grad import vjp
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


def _workload_list(text):
    from .bench.workloads import parse_names

    try:
        return parse_names(text)
    except ValueError as e:
        raise argparse.ArgumentTypeError(str(e)) from None


def _engine_list(text):
    from .bench.peers import ENGINES

    names = [part.strip().lower() for part in text.split(",") if part.strip()]
    unknown = [n for n in names if n not in ENGINES]
    if unknown or not names:
        raise argparse.ArgumentTypeError(f"unknown engine {', '.join(unknown) or repr(text)}; "
                                         f"choose from {', '.join(ENGINES)}")
    return ["numba_rnn"] + [e for e in ENGINES[1:] if e in names]  # checked against it


def _thread_count(text):
    import numba

    value = _positive_int(text)
    if value > numba.config.NUMBA_NUM_THREADS:
        raise argparse.ArgumentTypeError(
            f"at most {numba.config.NUMBA_NUM_THREADS} threads here (NUMBA_NUM_THREADS), "
            f"got {value}")
    return value


def _scale(text):
    value = _positive_float(text)
    if value > 1:
        raise argparse.ArgumentTypeError(f"expected a number in (0, 1], got {value}")
    return value


def _output_file(text):
    folder = os.path.dirname(os.path.abspath(text))
    if not os.path.isdir(folder):
        raise argparse.ArgumentTypeError(f"no such directory: {folder}")
    if os.path.isdir(text):
        raise argparse.ArgumentTypeError(f"{text} is a directory")
    return text


def _plot_file(text):
    from .bench.runner import matplotlib_missing

    message = matplotlib_missing()
    if message:
        raise argparse.ArgumentTypeError(message)
    return _output_file(text)


def bench(args):
    """Time the anchor workloads on numba_rnn and every installed peer, side by side."""
    import numba

    from .bench import runner
    from .bench.workloads import WORKLOADS

    quick = args.quick
    report = runner.run(
        args.work or list(WORKLOADS), engines=args.engines,
        threads=args.threads or numba.config.NUMBA_NUM_THREADS, dtype=args.dtype,
        rounds=args.rounds or (3 if quick else 20),
        max_seconds=args.max_seconds or (5.0 if quick else 45.0), warmup=1 if quick else 3,
        scale=args.scale, progress=runner.Progress(), argv=["numba-rnn", *args.argv])
    print(runner.format_table(report), flush=True)
    if args.json:
        runner.write_json(report, args.json)
        print(f"results written to {args.json}")
    if args.plot:
        runner.plot(report, args.plot)
        print(f"chart written to {args.plot}")
    return 1 if runner.failed(report) else 0


def demo(args):
    """Train a character-level RNN on Python's own documentation, then sample from it."""
    from . import demo as char_demo

    char_demo.run(cell=args.cell, units=args.units, steps=args.steps, batch=args.batch,
                  window=args.window, temperature=args.temperature,
                  sample_length=args.sample_length, seed=args.seed)
    return 0


def _lstms(units, dtype):
    """LSTMs whose kernels take the short gate math and the general one (peepholes)."""
    return LSTMCell(units, dtype=dtype), LSTMCell(units, use_peepholes=True, dtype=dtype)


def warmup(args):
    """Compile (or load from the cache) every built-in kernel once, for both dtypes:
    forward and backward passes, frozen cells and their one-step calls, the LSTM's forward
    pass on batch-major inputs read in place, and its column-split forward pass (also
    frozen); the LSTM kernels with both gate maths (short, and general for peepholes)."""
    start = time.perf_counter()
    x = np.zeros((2, 2, 3))
    for dtype in (np.float32, np.float64):
        cells = [*_lstms(4, dtype), GRUCell(4, dtype=dtype),
                 GRUCell(4, reset_after=True, dtype=dtype), BasicRNNCell(4, dtype=dtype)]
        for cell in cells:
            outputs, backward = vjp(dynamic_rnn, cell, x.astype(dtype), sequence_length=[2, 1])
            backward((np.ones_like(outputs[0]), None))
            dynamic_rnn(cell.freeze(), x.astype(dtype))  # weights packed once, kept
            cell(x[0].astype(dtype), None)  # a frozen cell's one-step function
        # 8 rows on one thread (too little work for two): each step projects its own
        # inputs, read where they are (batch-major, equal lengths).
        for lstm in _lstms(4, dtype):
            dynamic_rnn(lstm, np.zeros((8, 2, 3), dtype))
        # One sequence, enough units to split them across threads (when there are two),
        # packing the parts on each call, then once for a frozen cell.
        # (The guard may have turned the split off after a call whose threads were slow
        # to wake: turned on again for each.)
        one = np.zeros((1, 24, 3), dtype)
        for split in _lstms(256, dtype):
            for frozen in (False, True):
                rnn_module.SPLIT_GUARD.reset()
                dynamic_rnn(split.freeze() if frozen else split, one)
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

    p = commands.add_parser(
        "bench", help="time the anchor workloads W1-W7 on numba_rnn and the installed peers "
                      "(PyTorch, ONNX Runtime, TensorFlow, JAX), side by side",
        description="Time the anchor workloads W1-W7 (design notes, section 4) on numba_rnn "
                    "and, in the same process and run, on every installed peer (PyTorch, "
                    "ONNX Runtime, TensorFlow tf.compat.v1, JAX: pip install "
                    "'numba-rnn[peers]') with the same weights and thread count. Each peer "
                    "is checked against numba_rnn first; calls are interleaved round by "
                    "round. Exit status 1 if a peer failed its check.")
    p.add_argument("--work", type=_workload_list, default=None, metavar="W1,W3",
                   help="workloads, comma-separated (default: all, W1-W7)")
    p.add_argument("--threads", type=_thread_count, default=None, metavar="N",
                   help="threads for every engine (default: Numba's count, "
                        "NUMBA_NUM_THREADS)")
    p.add_argument("--dtype", choices=("float32", "float64"), default="float32",
                   help="peers that cannot run float64 are skipped with a note")
    p.add_argument("--quick", action="store_true",
                   help="3 rounds and 1 warm-up call per engine: a smoke test, not a "
                        "measurement")
    p.add_argument("--rounds", type=_positive_int, default=None,
                   help="interleaved timing rounds per workload (default 20; 3 with --quick)")
    p.add_argument("--max-seconds", type=_positive_float, default=None, metavar="S",
                   help="stop a workload's rounds after S seconds, once 3 are done "
                        "(default 45; 5 with --quick)")
    p.add_argument("--engines", type=_engine_list, default=None,
                   metavar="torch,jax",
                   help="engines to compare with numba_rnn (default: every one installed)")
    p.add_argument("--json", type=_output_file, metavar="FILE",
                   help="also write the results, with every call's time, to FILE")
    p.add_argument("--plot", type=_plot_file, metavar="FILE",
                   help="draw a bar chart of GFLOP/s to FILE (.png, .svg, .pdf; needs "
                        "matplotlib)")
    p.add_argument("--scale", type=_scale, default=1.0, help=argparse.SUPPRESS)
    p.set_defaults(run=bench)

    args = parser.parse_args(argv)
    args.argv = list(sys.argv[1:] if argv is None else argv)
    try:
        return args.run(args)
    except KeyboardInterrupt:
        return 130  # the command has printed its own summary


if __name__ == "__main__":
    sys.exit(main())
