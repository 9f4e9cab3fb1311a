"""Where numba_rnn's forward time goes, phase by phase, on the forward workloads.

Run: python benchmarks/profile_forward.py [W1 W7 ...] [--repeat 20]

Phases of one ``dynamic_rnn`` call on a BasicLSTMCell (see numba_rnn/engine.py), always
with the batch split by rows (the plan made here never splits the hidden units):

- recurrence kernel: ``lstm_forward``, which per step computes ``x W_x + b + m W_h`` and
  the gate math; of which "matrix products alone" is the same ``matmul_panels_acc`` calls
  over the same chunks with no gate math, compiled here for comparison, and "pack W_x,
  W_h" the packing into panels that every call does;
- the rest: argument checks, layout changes (batch-major <-> time-major copies), plan;
- for comparison, the input projection of all steps as one product
  (``KernelCell._project``, what the GRU and basic RNN use).

This uses numba_rnn's internals (engine, plan, cell._recur), which may change.
"""
import argparse
import time

import numba
import numpy as np
from numba import prange

import numba_rnn as nr
from numba_rnn.bench.workloads import FORWARD, WORKLOADS, make_data
from numba_rnn.kernels.common import FASTMATH, active_rows
from numba_rnn.kernels.panels import matmul_panels_acc, pack_panels
from numba_rnn.plan import Plan
from numba_rnn.threads import thread_limit


@numba.njit(parallel=True, fastmath=FASTMATH, cache=True)
def matmul_only(x, w_x_panels, w_h_panels, lengths, chunk_starts, m):
    """The recurrence's matrix products alone: what lstm_forward does minus gate math."""
    g = w_h_panels.shape[0] * w_h_panels.shape[2]
    for chunk in prange(chunk_starts.shape[0] - 1):
        start = chunk_starts[chunk]
        stop = chunk_starts[chunk + 1]
        z = np.zeros((stop - start, g), dtype=x.dtype)
        for t in range(lengths[start] if stop > start else 0):
            n = active_rows(lengths, start, stop, t)
            matmul_panels_acc(x[t], start, n, w_x_panels, z)
            matmul_panels_acc(m, start, n, w_h_panels, z)


def median_time(fn, repeat):
    fn()
    times = []
    for _ in range(repeat):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return float(np.median(times)), float(np.min(times))


def profile(workload, repeat, threads):
    numba.set_num_threads(threads)
    data = make_data(workload)
    cell = nr.BasicLSTMCell(workload.units)
    cell.set_weights(data.weights)
    x = data.inputs
    x_tm = np.ascontiguousarray(np.moveaxis(x, 1, 0))
    plan = Plan(data.lengths, threads)
    h = workload.units
    w_x = cell._weights["kernel"][:workload.depth]
    w_h = cell._weights["kernel"][workload.depth:]

    def recurrence():
        arrays = [np.zeros((workload.batch, h), np.float32) for _ in range(2)]
        out = np.zeros((workload.steps, workload.batch, h), np.float32)
        cell._recur(x_tm, plan, arrays, out)

    w_x_panels, w_h_panels = pack_panels(w_x), pack_panels(w_h)

    def matmuls():
        matmul_only(x_tm, w_x_panels, w_h_panels, plan.lengths, plan.chunk_starts,
                    np.zeros((workload.batch, h), np.float32))

    total = median_time(lambda: nr.dynamic_rnn(cell, x, dtype=np.float32), repeat)
    recur = median_time(recurrence, repeat)
    mm = median_time(matmuls, repeat)
    pack = median_time(lambda: (pack_panels(w_x), pack_panels(w_h)), repeat)
    gemm = median_time(lambda: cell._project(x_tm), repeat)
    steps = workload.batch * workload.steps
    gemm_flops = 2 * steps * workload.depth * 4 * h
    recur_flops = gemm_flops + 2 * steps * h * 4 * h
    flops = {"recurrence kernel": recur_flops, "  matrix products alone": recur_flops,
             "input projection alone": gemm_flops}
    rows = [("total dynamic_rnn", total), ("recurrence kernel", recur),
            ("  matrix products alone", mm), ("  pack W_x, W_h", pack),
            ("  gate math etc. (difference)", tuple(np.subtract(recur, mm))),
            ("rest (checks, layout, plan)", tuple(np.subtract(total, recur))),
            ("input projection alone", gemm)]
    chunks = np.diff(plan.chunk_starts)
    print(f"{workload}, {threads} thread(s), plan chunks {chunks.tolist()}; "
          f"median, min of {repeat} calls")
    for name, (med, low) in rows:
        rate = f"{flops[name] / low / 1e9:7.1f} GFLOP/s at min" if name in flops else ""
        print(f"  {name:32} {med * 1e3:8.2f} ms {100 * med / total[0]:5.1f} % "
              f"{low * 1e3:8.2f} ms {100 * low / total[1]:5.1f} %  {rate}")


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("workloads", nargs="*", default=FORWARD)
    parser.add_argument("--repeat", type=int, default=20)
    parser.add_argument("--threads", type=int, nargs="*", default=[numba.get_num_threads()])
    args = parser.parse_args()
    for name in args.workloads:
        for threads in args.threads:
            with thread_limit(threads):  # as in a call: BLAS on one thread
                profile(WORKLOADS[name], args.repeat, threads)


if __name__ == "__main__":
    main()
