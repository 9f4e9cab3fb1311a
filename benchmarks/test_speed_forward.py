"""Forward-pass benchmarks: every forward anchor workload on numba_rnn and each peer.

    pytest benchmarks --benchmark-group-by=param:workload --benchmark-columns=median,iqr,rounds

Each peer's outputs and final cell state are checked against numba_rnn's (max abs
difference < 1e-4) before it is timed, so every row times the same computation. Peers
that are not installed are skipped. numba_rnn runs frozen cells (``cell.freeze()``, see
numba_rnn.bench.peers), and once more unfrozen, packing its weights on every call.
"""
import pytest
from conftest import checked_runner, reference, time_it

import numba_rnn as nr
from numba_rnn.bench.peers import ENGINES, Runner
from numba_rnn.bench.workloads import FORWARD, WORKLOADS


@pytest.mark.parametrize("engine", ENGINES)
@pytest.mark.parametrize("workload", FORWARD)
def test_forward(benchmark, workload, engine):
    runner, diff = checked_runner(workload, engine)
    time_it(benchmark, workload, runner, diff)


@pytest.mark.parametrize("workload", FORWARD)
def test_forward_unfrozen(benchmark, workload):
    """numba_rnn without ``cell.freeze()``: what a call costs when the weights may have
    changed since the last one."""
    data, expected = reference(workload)
    cell = nr.BasicLSTMCell(WORKLOADS[workload].units, dtype=data.dtype)
    cell.set_weights(data.weights)

    def run():
        return nr.dynamic_rnn(cell, data.inputs, dtype=data.dtype)

    for _ in range(3):
        outputs, _ = run()
    assert abs(outputs - expected["outputs"]).max() == 0, "unfrozen differs from frozen"
    time_it(benchmark, workload, Runner("numba_rnn", run, None, nr.__version__), 0.0)
