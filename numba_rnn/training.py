"""Small training helpers: layers around an RNN, losses, optimizers, stateful BPTT.

Plain NumPy, float32 or float64, each with its forward and backward written together.
They exist so the demo and the examples need nothing else; they are not a framework.
"""
import numpy as np

from . import nest
from .cells.base import float_dtype, positive_int
from .checks import check_lengths
from .grad import vjp
from .rnn import dynamic_rnn


def _glorot(rng, shape, dtype):
    limit = np.sqrt(6.0 / (shape[0] + shape[1]))
    return rng.uniform(-limit, limit, size=shape).astype(dtype)


def _check_ids(ids, vocab_size, what):
    ids = np.asarray(ids)
    if ids.dtype.kind not in "iu":
        raise ValueError(f"{what} must be integers, got dtype {ids.dtype}")
    if ids.size and (ids.min() < 0 or ids.max() >= vocab_size):
        raise ValueError(f"{what} must be in [0, {vocab_size}), got values from {ids.min()} "
                         f"to {ids.max()}")
    return ids


class Embedding:
    """Integer ids [...] -> vectors [..., dim]: rows of ``weight`` [vocab_size, dim]."""

    def __init__(self, vocab_size, dim, seed=None, dtype=np.float32):
        self.vocab_size = positive_int(vocab_size, "vocab_size")
        dim = positive_int(dim, "dim")
        rng = np.random.default_rng(seed)
        self.weight = rng.uniform(-0.05, 0.05, (self.vocab_size, dim)).astype(float_dtype(dtype))

    def __call__(self, ids):
        return self.weight[_check_ids(ids, self.vocab_size, "ids")]

    def backward(self, ids, d_out):
        """Gradient of ``weight`` given that of the output."""
        d_weight = np.zeros_like(self.weight)
        np.add.at(d_weight, np.asarray(ids).reshape(-1), d_out.reshape(-1, d_out.shape[-1]))
        return d_weight

    @property
    def params(self):
        return [self.weight]


class Dense:
    """``x @ kernel + bias`` on the last axis (so it applies to every time step)."""

    def __init__(self, in_dim, out_dim, seed=None, dtype=np.float32):
        rng = np.random.default_rng(seed)
        shape = (positive_int(in_dim, "in_dim"), positive_int(out_dim, "out_dim"))
        self.kernel = _glorot(rng, shape, float_dtype(dtype))
        self.bias = np.zeros(shape[1], dtype=self.kernel.dtype)

    def __call__(self, x):
        if np.shape(x)[-1:] != self.kernel.shape[:1]:
            raise ValueError(f"Dense expects inputs with last dimension {self.kernel.shape[0]}, "
                             f"got shape {np.shape(x)}")
        return x @ self.kernel + self.bias

    def backward(self, x, d_y):
        """(gradient of x, [gradient of kernel, gradient of bias])."""
        flat_x = x.reshape(-1, x.shape[-1])
        flat_d = d_y.reshape(-1, d_y.shape[-1])
        return d_y @ self.kernel.T, [flat_x.T @ flat_d, flat_d.sum(axis=0)]

    @property
    def params(self):
        return [self.kernel, self.bias]


def _step_mask(shape, lengths):
    """[B, T] float mask of the steps inside each sequence (all ones without lengths)."""
    batch, steps = shape
    if lengths is None:
        return np.ones((batch, steps))
    lengths = check_lengths(lengths, batch, steps, "lengths")
    return (np.arange(steps)[None, :] < lengths[:, None]).astype(np.float64)


def softmax_cross_entropy(logits, labels, lengths=None):
    """Mean cross-entropy over the steps inside each sequence; returns (loss, d_logits).

    logits [B, T, V] (batch-major), labels [B, T] integers in [0, V), lengths [B] or None.
    """
    logits = np.asarray(logits)
    if logits.ndim != 3:
        raise ValueError(f"logits must have shape [batch, time, classes], got {logits.shape}")
    labels = _check_ids(labels, logits.shape[2], "labels")
    if labels.shape != logits.shape[:2]:
        raise ValueError(f"labels must have shape {logits.shape[:2]}, got {labels.shape}")
    mask = _step_mask(logits.shape[:2], lengths)
    count = max(mask.sum(), 1.0)
    shifted = logits - logits.max(axis=2, keepdims=True)
    log_probs = shifted - np.log(np.exp(shifted).sum(axis=2, keepdims=True))
    picked = np.take_along_axis(log_probs, labels[..., None], axis=2)[..., 0]
    loss = -(picked * mask).sum() / count
    d_logits = np.exp(log_probs)
    np.put_along_axis(d_logits, labels[..., None],
                      np.take_along_axis(d_logits, labels[..., None], axis=2) - 1.0, axis=2)
    d_logits *= (mask / count)[..., None]
    return float(loss), d_logits.astype(logits.dtype)


def mean_squared_error(predictions, targets, lengths=None):
    """Mean of squared errors over the steps inside each sequence; returns (loss, d_pred).

    predictions and targets [B, T, ...] of the same shape, lengths [B] or None.
    """
    predictions, targets = np.asarray(predictions), np.asarray(targets)
    if predictions.ndim < 2:
        raise ValueError(f"predictions must have shape [batch, time, ...], got "
                         f"{predictions.shape}")
    if predictions.shape != targets.shape:
        raise ValueError(f"predictions and targets must have the same shape, got "
                         f"{predictions.shape} and {targets.shape}")
    mask = _step_mask(predictions.shape[:2], lengths)
    mask = mask.reshape(mask.shape + (1,) * (predictions.ndim - 2))
    count = max(mask.sum() * int(np.prod(predictions.shape[2:])), 1.0)
    error = (predictions - targets) * mask
    return float((error ** 2).sum() / count), (2.0 * error / count).astype(predictions.dtype)


def clip_by_global_norm(grads, max_norm):
    """Scale all ``grads`` together so that their joint L2 norm is at most ``max_norm``.

    Returns (clipped list, norm before clipping)."""
    if not max_norm > 0:
        raise ValueError(f"max_norm must be > 0, got {max_norm!r}")
    norm = float(np.sqrt(sum(float(np.sum(np.square(g, dtype=np.float64))) for g in grads)))
    scale = min(1.0, max_norm / norm) if norm > 0 else 1.0
    return [g * g.dtype.type(scale) for g in grads], norm


def _real(value):
    """``value`` as a float for range checks; NaN (fails every check) if it is not a number."""
    try:
        return float(value)
    except (TypeError, ValueError):
        return float("nan")


class SGD:
    """Stochastic gradient descent with optional momentum; updates arrays in place."""

    def __init__(self, learning_rate=0.01, momentum=0.0):
        if not _real(learning_rate) > 0 or not 0 <= _real(momentum) < 1:
            raise ValueError(f"need learning_rate > 0 and 0 <= momentum < 1, got "
                             f"{learning_rate!r} and {momentum!r}")
        self.learning_rate, self.momentum = learning_rate, momentum
        self._velocity = None

    def step(self, params, grads):
        if self._velocity is None:
            self._velocity = [np.zeros_like(p) for p in params]
        for p, g, v in zip(params, grads, self._velocity):
            v *= self.momentum
            v -= self.learning_rate * g
            p += v


class Adam:
    """Adam (Kingma and Ba) with bias correction; updates arrays in place."""

    def __init__(self, learning_rate=0.001, beta1=0.9, beta2=0.999, epsilon=1e-8):
        if not _real(learning_rate) > 0 or not (0 <= _real(beta1) < 1 and 0 <= _real(beta2) < 1):
            raise ValueError(f"need learning_rate > 0 and betas in [0, 1), got "
                             f"{learning_rate!r}, {beta1!r}, {beta2!r}")
        if not _real(epsilon) >= 0:
            raise ValueError(f"epsilon must be >= 0, got {epsilon!r}")
        self.learning_rate, self.beta1, self.beta2, self.epsilon = (learning_rate, beta1,
                                                                    beta2, epsilon)
        self._moments = None
        self._t = 0

    def step(self, params, grads):
        if self._moments is None:
            self._moments = [(np.zeros_like(p), np.zeros_like(p)) for p in params]
        self._t += 1
        rate = self.learning_rate * np.sqrt(1 - self.beta2 ** self._t) / (1 - self.beta1 ** self._t)
        for p, g, (m, v) in zip(params, grads, self._moments):
            m += (1 - self.beta1) * (g - m)
            v += (1 - self.beta2) * (g * g - v)
            p -= (rate * m / (np.sqrt(v) + self.epsilon)).astype(p.dtype)


class StatefulRNN:
    """A cell whose final state is carried into the next call (truncated BPTT).

    Each call runs ``dynamic_rnn`` from the state left by the previous call, as Keras'
    ``stateful=True`` does, and gradients stop at the call boundary. ``reset()`` returns
    every row to the zero state; ``reset(rows)`` only those rows (a sequence that ended).
    """

    def __init__(self, cell):
        self.cell = cell
        self.state = None

    def reset(self, rows=None):
        if rows is None or self.state is None:
            self.state = None
            return
        rows = np.asarray(rows)
        if rows.size == 0:
            return
        if rows.dtype.kind not in "iub":
            raise ValueError(f"rows must be integer indices or a boolean mask, got dtype "
                             f"{rows.dtype}")
        self.state = nest.map_structure(lambda s: _zero_rows(s, rows), self.state)

    def __call__(self, inputs, sequence_length=None):
        """Outputs only (inference); the state is carried."""
        outputs, self.state = dynamic_rnn(self.cell, inputs, sequence_length=sequence_length,
                                          initial_state=self._state_for(inputs))
        return outputs

    def train_step(self, inputs, sequence_length=None):
        """Outputs and ``backward(d_outputs) -> (d_inputs, weight gradients)``."""
        (outputs, state), backward = vjp(dynamic_rnn, self.cell, inputs,
                                         sequence_length=sequence_length,
                                         initial_state=self._state_for(inputs))
        self.state = state

        def backward_outputs(d_outputs):
            grads = backward((d_outputs, None))
            return grads.inputs, grads.weights

        return outputs, backward_outputs

    def _state_for(self, inputs):
        if self.state is None:
            return None
        batch = nest.flatten(self.state)[0].shape[0]
        if np.shape(inputs)[0] != batch:
            raise ValueError(f"the carried state has batch size {batch} but the inputs have "
                             f"{np.shape(inputs)[0]}; call reset() when the batch changes")
        return self.state


def _zero_rows(state, rows):
    state = state.copy()
    state[rows] = 0
    return state
