"""The anchor workloads (design notes, section 4) and their deterministic data.

Each workload is a small record; ``make_data(workload)`` gives the same inputs, lengths
and TensorFlow-layout weights on every call and every machine, so every engine runs the
same computation. Only numpy is needed here.

>>> w = WORKLOADS["W3"]
>>> str(w)
'W3: LSTM B=32 T=100 D=123 H=320, train'
>>> data = make_data(w.scaled(0.1))
>>> data.inputs.shape, data.inputs.dtype, [a.shape for a in data.weights]
((3, 10, 12), dtype('float32'), [(44, 128), (128,)])
"""
import dataclasses
from dataclasses import dataclass

import numpy as np

CELL_NAMES = {"lstm": "LSTM", "gru": "GRU", "bilstm": "bi-LSTM"}


@dataclass(frozen=True)
class Workload:
    name: str
    cell: str        # "lstm", "gru" (reset_after form) or "bilstm"
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

    def scaled(self, factor):
        """The same workload with B, T, D and H multiplied by ``factor`` (at least 1,
        T at least 2): for smoke tests. The name, and so the data's seed, stay."""
        def size(n, low=1):
            return max(low, int(round(n * factor)))
        return dataclasses.replace(self, batch=size(self.batch), steps=size(self.steps, 2),
                                   depth=size(self.depth), units=size(self.units))

    def __str__(self):
        return (f"{self.name}: {CELL_NAMES[self.cell]} B={self.batch} T={self.steps} "
                f"D={self.depth} H={self.units}, {self.mode}" +
                ("" if self.lengths == "full" else ", lengths T/2..T"))


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
TRAIN = [name for name, w in WORKLOADS.items() if w.mode == "train"]


@dataclass
class Data:
    inputs: np.ndarray        # [B, T, D], batch-major
    lengths: np.ndarray       # [B] int64
    weights: list             # TensorFlow layout, get_weights() order; bidirectional:
                              # [forward cell's list, backward cell's list]

    @property
    def dtype(self):
        return self.inputs.dtype


def make_lengths(workload, rng):
    if workload.lengths == "full":
        return np.full(workload.batch, workload.steps, dtype=np.int64)
    if workload.lengths == "half_to_full":
        return rng.integers(workload.steps // 2, workload.steps + 1, size=workload.batch,
                            dtype=np.int64)
    raise ValueError(f"unknown lengths rule {workload.lengths!r}")


def _tf_cell_weights(workload, rng):
    """[kernel [D + H, G*H], bias [G*H]] (LSTM, gate order i, j, f, o), or for the GRU
    (reset_after form, numba_rnn ``GRUCell(reset_after=True)``) [gates/kernel [D + H, 2H],
    gates/bias [2H], candidate/kernel [D + H, H], candidate/bias [H],
    candidate/recurrent_bias [H]]: Glorot-uniform kernels, small non-zero biases (so a
    bias placed in the wrong gate shows up in the output check)."""
    d, h = workload.depth, workload.units

    def kernel(cols):
        limit = np.sqrt(6.0 / (d + h + cols))
        return rng.uniform(-limit, limit, size=(d + h, cols)).astype(np.float32)

    def bias(n):
        return rng.uniform(-0.1, 0.1, size=n).astype(np.float32)

    if workload.cell == "gru":
        return [kernel(2 * h), bias(2 * h), kernel(h), bias(h), bias(h)]
    return [kernel(4 * h), bias(4 * h)]


def make_data(workload, seed=0, dtype=np.float32):
    """Deterministic inputs (standard normal, [B, T, D]), lengths and weights, drawn in
    float32 and then cast to ``dtype`` (so float64 runs use the same values).

    For a bidirectional workload ``weights`` is [forward cell's, backward cell's]."""
    dtype = np.dtype(dtype)
    rng = np.random.default_rng([seed, int(workload.name.lstrip("W") or 0)])
    inputs = rng.standard_normal((workload.batch, workload.steps, workload.depth),
                                 dtype=np.float32).astype(dtype)
    lengths = make_lengths(workload, rng)
    if workload.directions == 2:
        weights = [[w.astype(dtype) for w in _tf_cell_weights(workload, rng)]
                   for _ in range(2)]
    else:
        weights = [w.astype(dtype) for w in _tf_cell_weights(workload, rng)]
    return Data(inputs, lengths, weights)


def parse_names(text):
    """``"W1,w3"`` -> ["W1", "W3"] in the table's order; ValueError naming the unknown.

    >>> parse_names("w3, W1,W3")
    ['W1', 'W3']
    """
    names = [part.strip().upper() for part in text.split(",") if part.strip()]
    unknown = [n for n in names if n not in WORKLOADS]
    if unknown or not names:
        raise ValueError(f"unknown workload {', '.join(unknown) or repr(text)}; "
                         f"choose from {', '.join(WORKLOADS)}")
    return [n for n in WORKLOADS if n in names]
