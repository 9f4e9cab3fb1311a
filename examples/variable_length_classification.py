"""Classify padded sequences of different lengths with a bidirectional GRU.

Task: is more than half of a sequence's values positive? Sequences have 2 to 16 steps and
are padded to 16 with noise; ``sequence_length`` tells the RNN where each one ends, so the
padding never reaches the final states (the forward direction stops at the last valid
step, the backward direction starts there). The classifier reads the concatenation of
the two final states. All gradients, through both directions, come from one ``vjp``.
"""
import numpy as np

import numba_rnn as nr
from numba_rnn.training import Adam, Dense, clip_by_global_norm, softmax_cross_entropy

MAX_TIME, UNITS, BATCH, STEPS = 16, 12, 32, 120
rng = np.random.default_rng(0)


def make_batch(size):
    lengths = rng.integers(2, MAX_TIME + 1, size=size)
    x = rng.standard_normal((size, MAX_TIME, 1)).astype(np.float32)  # padding is noise too
    valid = np.arange(MAX_TIME)[None, :] < lengths[:, None]
    positives = ((x[..., 0] > 0) & valid).sum(axis=1)
    labels = (positives > lengths / 2).astype(np.int64)
    return x, lengths, labels


cell_fw, cell_bw = nr.GRUCell(UNITS, seed=1), nr.GRUCell(UNITS, seed=2)
cell_fw.build(1)
cell_bw.build(1)
head = Dense(2 * UNITS, 2, seed=3)
params = cell_fw.trainable_variables + cell_bw.trainable_variables + head.params
optimizer = Adam(learning_rate=0.02)


def logits_of(state_fw, state_bw):
    features = np.concatenate([state_fw, state_bw], axis=1)  # [batch, 2 * UNITS]
    return features, head(features)[:, None, :]              # [batch, 1, 2]: one "step"


def accuracy(x, lengths, labels, use_lengths=True):
    _, (state_fw, state_bw) = nr.bidirectional_dynamic_rnn(
        cell_fw, cell_bw, x, sequence_length=lengths if use_lengths else None)
    _, logits = logits_of(state_fw, state_bw)
    return float(np.mean(logits[:, 0].argmax(axis=1) == labels))


test = make_batch(500)
print(f"sequences of 2..{MAX_TIME} steps; label 1 (more than half positive) for "
      f"{np.mean(test[2]):.0%} of the test set")
accuracies = [accuracy(*test)]
print(f"step   0  test accuracy {accuracies[0]:.3f}")
for step in range(1, STEPS + 1):
    x, lengths, labels = make_batch(BATCH)
    ((_, _), (state_fw, state_bw)), backward = nr.vjp(
        nr.bidirectional_dynamic_rnn, cell_fw, cell_bw, x, sequence_length=lengths)
    features, logits = logits_of(state_fw, state_bw)
    loss, d_logits = softmax_cross_entropy(logits, labels[:, None])
    d_features, head_grads = head.backward(features, d_logits[:, 0])
    d_state_fw, d_state_bw = np.split(d_features, 2, axis=1)
    # None: the loss does not use the per-step outputs, only the final states.
    grads = backward((None, (d_state_fw, d_state_bw)))
    clipped, _ = clip_by_global_norm(grads.weights + head_grads, 5.0)  # fw, bw, head
    optimizer.step(params, clipped)
    if step % 30 == 0:
        accuracies.append(accuracy(*test))
        print(f"step {step:3d}  loss {loss:.3f}  test accuracy {accuracies[-1]:.3f}")

print(f"accuracy rose from {accuracies[0]:.3f} to {accuracies[-1]:.3f}")
# Without sequence_length both directions read the padding as if it were data: the forward
# final state comes from step MAX_TIME - 1 and the backward direction starts in the noise.
print(f"the same model ignoring sequence_length: test accuracy "
      f"{accuracy(*test, use_lengths=False):.3f}")
