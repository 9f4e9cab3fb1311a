"""The anchor workloads (design notes, section 4) and their deterministic data.

Each workload is a small record; ``make_data(workload)`` gives the same inputs, lengths
and TensorFlow-layout weights on every call and every machine, so every engine runs the
same computation. Only numpy is needed here.
"""
from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class Workload:
    name: str
    cell: str        # "lstm", "gru" or "bilstm"
    batch: int       # B
    steps: int       # T
    depth: int       # D, input features
    units: int       # H
    mode: str        # "forward" or "train" (forward + backward of a sum loss)
    lengths: str = "full"  # "full": every sequence has T steps; "half_to_full": T/2..T

    @property
    def gates(self):
        return 3 if self.cell == "gru" else 4

    @property
    def directions(self):
        return 2 if self.cell.startswith("bi") else 1

    def forward_flops(self, lengths=None):
        """FLOPs of one forward call, counting the matrix products only (2 per
        multiply-add): input projection B*T*D*G*H plus recurrence B*T*H*G*H per direction.
        The gate arithmetic (a few dozen flops per unit and step) is left out, as in
        DeepBench. With ``lengths`` only the steps that run are counted."""
        steps = self.batch * self.steps if lengths is None else int(np.sum(lengths))
        per_step = 2 * (self.depth + self.units) * self.gates * self.units
        return self.directions * steps * per_step

    def flops(self, lengths=None):
        """FLOPs of one call: the forward pass, or about 3x it for a training step
        (the backward pass does two products for each forward one)."""
        forward = self.forward_flops(lengths)
        return forward if self.mode == "forward" else 3 * forward

    def __str__(self):
        return (f"{self.name}: {self.cell} B={self.batch} T={self.steps} D={self.depth} "
                f"H={self.units} {self.mode}" +
                ("" if self.lengths == "full" else f", lengths {self.lengths}"))


WORKLOADS = {w.name: w for w in [
    Workload("W1", "lstm", 1, 150, 256, 256, "forward"),
    Workload("W2", "lstm", 4, 25, 512, 512, "forward"),
    Workload("W3", "lstm", 32, 100, 123, 320, "train"),
    Workload("W4", "gru", 32, 100, 123, 320, "train"),
    Workload("W5", "bilstm", 16, 200, 123, 320, "train", lengths="half_to_full"),
    Workload("W6", "lstm", 64, 25, 512, 512, "train"),
    Workload("W7", "lstm", 64, 100, 256, 256, "forward"),
]}

FORWARD = [name for name, w in WORKLOADS.items() if w.mode == "forward"]


@dataclass
class Data:
    inputs: np.ndarray        # [B, T, D] float32, batch-major
    lengths: np.ndarray       # [B] int64
    weights: list             # TensorFlow layout, get_weights() order (per direction)


def make_lengths(workload, rng):
    if workload.lengths == "full":
        return np.full(workload.batch, workload.steps, dtype=np.int64)
    if workload.lengths == "half_to_full":
        return rng.integers(workload.steps // 2, workload.steps + 1, size=workload.batch,
                            dtype=np.int64)
    raise ValueError(f"unknown lengths rule {workload.lengths!r}")


def _tf_cell_weights(workload, rng):
    """[kernel [D + H, G*H], bias [G*H]] (LSTM, gate order i, j, f, o), or for a GRU
    [gates/kernel [D + H, 2H], gates/bias [2H], candidate/kernel [D + H, H],
    candidate/bias [H]]: Glorot-uniform kernels, small non-zero biases (so a bias placed
    in the wrong gate shows up in the output check)."""
    d, h = workload.depth, workload.units

    def kernel(cols):
        limit = np.sqrt(6.0 / (d + h + cols))
        return rng.uniform(-limit, limit, size=(d + h, cols)).astype(np.float32)

    def bias(n):
        return rng.uniform(-0.1, 0.1, size=n).astype(np.float32)

    if workload.cell == "gru":
        return [kernel(2 * h), bias(2 * h), kernel(h), bias(h)]
    return [kernel(4 * h), bias(4 * h)]


def make_data(workload, seed=0):
    """Deterministic inputs (standard normal, float32, [B, T, D]), lengths and weights.

    For a bidirectional workload ``weights`` is [forward cell's, backward cell's]."""
    rng = np.random.default_rng([seed, int(workload.name.lstrip("W") or 0)])
    inputs = rng.standard_normal((workload.batch, workload.steps, workload.depth),
                                 dtype=np.float32)
    lengths = make_lengths(workload, rng)
    if workload.directions == 2:
        weights = [_tf_cell_weights(workload, rng), _tf_cell_weights(workload, rng)]
    else:
        weights = _tf_cell_weights(workload, rng)
    return Data(inputs, lengths, weights)
