"""Forward-pass benchmarks: every forward anchor workload on numba_rnn and each peer.

    pytest benchmarks --benchmark-group-by=param:workload --benchmark-columns=median,iqr,rounds

Each peer's outputs and final cell state are checked against numba_rnn's (max abs
difference < 1e-4) before it is timed, so every row times the same computation. Peers
that are not installed are skipped. numba_rnn runs frozen cells (``cell.freeze()``, see
numba_rnn.bench.peers).
"""
import pytest
from conftest import checked_runner, time_it

from numba_rnn.bench.peers import ENGINES
from numba_rnn.bench.workloads import FORWARD


@pytest.mark.parametrize("engine", ENGINES)
@pytest.mark.parametrize("workload", FORWARD)
def test_forward(benchmark, workload, engine):
    runner, diff = checked_runner(workload, engine)
    time_it(benchmark, workload, runner, diff)
