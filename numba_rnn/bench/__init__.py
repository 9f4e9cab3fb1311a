"""Benchmarks of numba_rnn against its peers: the ``numba-rnn bench`` command.

- ``workloads``: the anchor workloads W1-W7 (design notes, section 4) and their
  deterministic inputs, lengths and weights;
- ``peers``: the same network with the same weights on numba_rnn, PyTorch, ONNX Runtime,
  TensorFlow (tf.compat.v1) and JAX, forward or training, each checked against numba_rnn;
- ``runner``: the interleaved timing loop, the GEMM peak, the table, JSON and chart.

Only numpy and numba are imported at module level; the peers (``pip install
'numba-rnn[peers]'``) and matplotlib (``numba-rnn[plot]``) are imported when used.
"""
