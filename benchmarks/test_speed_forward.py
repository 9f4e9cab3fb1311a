"""Forward-pass benchmarks: every forward anchor workload on numba_rnn and each peer.

    pytest benchmarks --benchmark-group-by=param:workload --benchmark-columns=median,iqr,rounds

Each peer's outputs and final cell state are checked against numba_rnn's (max abs
difference < 1e-4) before it is timed, so every row times the same computation. Peers
that are not installed are skipped.
"""
import pytest
from peers import ENGINES, TOLERANCE, PeerUnavailable, build, max_abs_diff
from workloads import FORWARD, WORKLOADS, make_data

WARMUP_CALLS = 3  # compiles/plans on the first call, then settles caches and thread pools

_reference = {}


def reference(name):
    """numba_rnn's (outputs, c) for a workload, computed once per session."""
    if name not in _reference:
        workload = WORKLOADS[name]
        data = make_data(workload)
        _reference[name] = (data, build("numba_rnn", workload, data).outputs())
    return _reference[name]


@pytest.mark.parametrize("engine", ENGINES)
@pytest.mark.parametrize("workload", FORWARD)
def test_forward(benchmark, workload, engine):
    data, expected = reference(workload)
    try:
        runner = build(engine, WORKLOADS[workload], data)
    except PeerUnavailable as e:
        pytest.skip(str(e))
    diff = max_abs_diff(runner.outputs(), expected)
    assert diff < TOLERANCE, f"{engine} differs from numba_rnn by {diff:.2e} on {workload}"
    for _ in range(WARMUP_CALLS - 1):
        runner.run()
    flops = WORKLOADS[workload].flops()
    benchmark.extra_info.update(engine_version=runner.version, max_abs_diff=diff,
                                flops=flops)
    benchmark(runner.run)
    if benchmark.stats:  # None under --benchmark-disable
        median = benchmark.stats.stats.median
        benchmark.extra_info["gflops_at_median"] = round(flops / median / 1e9, 1)
