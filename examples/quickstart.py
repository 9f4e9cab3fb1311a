"""dynamic_rnn in ten lines: a batch of three sequences of different lengths."""
import numpy as np

import numba_rnn as nr

rng = np.random.default_rng(0)
inputs = rng.standard_normal((3, 6, 8)).astype(np.float32)  # [batch_size, max_time, depth]
cell = nr.LSTMCell(16, seed=0)
outputs, state = nr.dynamic_rnn(cell, inputs, sequence_length=[6, 2, 0])

print(outputs.shape)                              # (3, 6, 16): one output per step
print(np.abs(outputs[1, 2:]).max())               # 0.0: zeros past the sequence's end
print(np.allclose(state.h[1], outputs[1, 1]))     # True: final state is from step length - 1
print(np.abs(state.c[2]).max())                   # 0.0: zero length keeps the initial state
