"""Peak memory and time of a training step, default vs swap_memory=True (checkpointing).

Run: python benchmarks/swap_memory.py [--steps 5000]
Peak memory is measured with tracemalloc, which sees every NumPy allocation.
"""
import argparse
import time
import tracemalloc

import numpy as np

import numba_rnn as nr


def training_step(cell, x, swap_memory):
    (outputs, state), backward = nr.vjp(nr.dynamic_rnn, cell, x, swap_memory=swap_memory)
    grads = backward((np.ones_like(outputs), None))
    return grads


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--steps", type=int, default=5000)
    parser.add_argument("--batch", type=int, default=16)
    parser.add_argument("--units", type=int, default=256)
    args = parser.parse_args()
    rng = np.random.default_rng(0)
    x = rng.standard_normal((args.batch, args.steps, args.units)).astype(np.float32)
    cell = nr.LSTMCell(args.units, seed=0)
    training_step(cell, x[:, :10], False)  # compile
    training_step(cell, x[:, :10], True)
    results = {}
    for swap in (False, True):
        tracemalloc.start()
        start = time.perf_counter()
        grads = training_step(cell, x, swap)
        elapsed = time.perf_counter() - start
        _, peak = tracemalloc.get_traced_memory()
        tracemalloc.stop()
        results[swap] = grads
        print(f"swap_memory={swap!s:5}  peak {peak / 2**20:8.1f} MiB  time {elapsed:6.2f} s")
    gap = max(float(np.abs(a - b).max() / np.abs(a).max())
              for a, b in zip(results[False].weights, results[True].weights))
    print(f"largest weight-gradient difference between the modes, relative to the "
          f"gradient's largest entry: {gap:.1e}")
    print(f"inputs alone: {x.nbytes / 2**20:.1f} MiB (B={args.batch}, T={args.steps}, "
          f"D=H={args.units}, LSTM, float32)")


if __name__ == "__main__":
    main()
