"""Training-step benchmarks: W3-W6 (forward + gradients of sum(outputs) with respect to
the inputs and every weight) on numba_rnn and each peer that can train.

    pytest benchmarks/test_speed_train.py --benchmark-group-by=param:workload

numba_rnn: ``vjp`` then ``backward((ones, None))``; PyTorch: ``torch.autograd.grad``
(packed sequences for W5); TensorFlow: ``tf.gradients`` in a tf.compat.v1 graph; JAX:
``jax.grad`` of the scan, jitted. W4 is the GRU in the reset_after form on every engine
(numba_rnn ``GRUCell(reset_after=True)``, PyTorch ``nn.GRU``). Each peer's input gradient
and kernel gradients are checked against numba_rnn's (max abs difference relative to the
largest entry < 1e-3) before it is timed. ONNX Runtime (forward only) and peers that are
not installed are skipped.
"""
import pytest
from conftest import checked_runner, time_it

from numba_rnn.bench.peers import ENGINES
from numba_rnn.bench.workloads import TRAIN


@pytest.mark.parametrize("engine", ENGINES)
@pytest.mark.parametrize("workload", TRAIN)
def test_train(benchmark, workload, engine):
    runner, diff = checked_runner(workload, engine)
    time_it(benchmark, workload, runner, diff)
