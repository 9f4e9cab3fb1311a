"""Shared set-up of the pytest-benchmark files: engines built, checked and warmed up.

The workloads and the engine adapters live in the package (``numba_rnn.bench``, also
behind ``numba-rnn bench``). ``BENCH_THREADS=N`` sets every engine's thread count
(default: Numba's, NUMBA_NUM_THREADS).
"""
import os
import warnings

import numba
import pytest

from numba_rnn.bench import peers
from numba_rnn.bench.runner import set_blas_threads
from numba_rnn.bench.workloads import WORKLOADS, make_data

THREADS = int(os.environ.get("BENCH_THREADS", numba.config.NUMBA_NUM_THREADS))

# PyTorch before Numba's OpenMP threads start, so that it keeps its own libgomp (see
# numba_rnn.bench.peers.preload: sharing the system one slows its training steps a lot).
_late = peers.preload(peers.ENGINES)
if _late:
    warnings.warn(_late, stacklevel=1)
WARMUP_CALLS = 3  # compiles/plans on the first call, then settles caches and thread pools

_reference = {}


def reference(name):
    """(data, numba_rnn's check values) for a workload, computed once per session."""
    if name not in _reference:
        set_blas_threads(THREADS)
        workload = WORKLOADS[name]
        data = make_data(workload)
        runner = peers.build("numba_rnn", workload, data, THREADS)
        _reference[name] = (data, runner.values())
    return _reference[name]


def checked_runner(name, engine):
    """The engine's runner for a workload, checked against numba_rnn (outputs, or
    gradients for training) and warmed up; skips if the engine is not available."""
    workload = WORKLOADS[name]
    data, expected = reference(name)
    try:
        with peers.quiet_stderr():
            runner = peers.build(engine, workload, data, THREADS)
    except peers.PeerUnavailable as e:
        pytest.skip(f"{engine}: {e}")
    diff, where = peers.compare(runner.values(), expected, workload.mode)
    limit = peers.tolerance(workload.mode)
    assert diff < limit, f"{engine} differs from numba_rnn by {diff:.2e} in {where} on {name}"
    for _ in range(WARMUP_CALLS - 1):
        runner.run()
    return runner, diff


def time_it(benchmark, name, runner, diff):
    """Time ``runner.run`` with pytest-benchmark and record the workload's FLOPs."""
    workload = WORKLOADS[name]
    data, _ = reference(name)
    flops = workload.flops(None if workload.lengths == "full" else data.lengths)
    benchmark.extra_info.update(engine_version=runner.version, check_diff=diff, flops=flops,
                                threads=THREADS)
    benchmark(runner.run)
    if benchmark.stats:  # None under --benchmark-disable
        median = benchmark.stats.stats.median
        benchmark.extra_info["gflops_at_median"] = round(flops / median / 1e9, 1)
