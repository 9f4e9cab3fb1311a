"""Regression on a long series cut into short consecutive windows: carried vs reset state.

The series is a sum of two sines. It is cut into ``STREAMS`` long consecutive pieces, one
per batch row, and every training batch is the next ``WINDOW`` steps of every piece (so
row b of batch k+1 continues row b of batch k). The task is to predict the next value.

Two identical models see the same batches in the same order:

- carried: ``StatefulRNN`` passes each batch's final state into the next batch (the
  gradients still stop at the batch boundary: truncated backpropagation through time);
- reset: every batch starts from the zero state, which is what ``dynamic_rnn`` does
  when no ``initial_state`` is given.

From a zero state the first steps of a window see one or two values of the series and
cannot tell where in the cycle they are, so the reset model's error is high there.
"""
import numpy as np

import numba_rnn as nr
from numba_rnn.training import Adam, Dense, StatefulRNN, mean_squared_error

STREAMS, WINDOW, UNITS, EPOCHS = 8, 4, 16, 3

t = np.arange(STREAMS * 200 + 1)
series = (np.sin(0.23 * t) + 0.5 * np.sin(0.071 * t + 1.0)).astype(np.float32)
x = series[:-1].reshape(STREAMS, -1, 1)      # [streams, steps, 1]: consecutive pieces
y = series[1:].reshape(STREAMS, -1, 1)       # the next value at every step
n_windows = x.shape[1] // WINDOW


class Model:
    """GRU -> Dense(1); ``carry`` decides whether the state survives between batches."""

    def __init__(self, carry):
        self.carry = carry
        self.cell = nr.GRUCell(UNITS, seed=0)
        self.cell.build(1)
        self.head = Dense(UNITS, 1, seed=1)
        self.rnn = StatefulRNN(self.cell)
        self.optimizer = Adam(learning_rate=0.01)

    def start_of_series(self):
        self.rnn.reset()                      # back at the first window: no past to carry

    def train_step(self, xb, yb):
        if not self.carry:
            self.rnn.reset()                  # forget the previous batch
        outputs, backward = self.rnn.train_step(xb)
        loss, d_pred = mean_squared_error(self.head(outputs), yb)
        d_outputs, head_grads = self.head.backward(outputs, d_pred)
        _, cell_grads = backward(d_outputs)
        self.optimizer.step(self.cell.trainable_variables + self.head.params,
                            cell_grads + head_grads)
        return loss

    def evaluate(self):
        """Squared error per position in the window, averaged over the whole series."""
        self.start_of_series()
        errors = []
        for k in range(n_windows):
            if not self.carry:
                self.rnn.reset()
            window = slice(k * WINDOW, (k + 1) * WINDOW)
            prediction = self.head(self.rnn(x[:, window]))
            errors.append(((prediction - y[:, window]) ** 2)[..., 0].mean(axis=0))
        return np.mean(errors, axis=0)


models = {"carried": Model(carry=True), "reset": Model(carry=False)}
print(f"{STREAMS} streams x {x.shape[1]} steps, windows of {WINDOW} steps, "
      f"{n_windows} batches per epoch, {EPOCHS} epochs")
for epoch in range(1, EPOCHS + 1):
    losses = {name: [] for name in models}
    for model in models.values():
        model.start_of_series()
    for k in range(n_windows):
        window = slice(k * WINDOW, (k + 1) * WINDOW)
        for name, model in models.items():
            losses[name].append(model.train_step(x[:, window], y[:, window]))
    print(f"epoch {epoch}  training loss: carried {np.mean(losses['carried']):.4f}  "
          f"reset {np.mean(losses['reset']):.4f}")

errors = {name: model.evaluate() for name, model in models.items()}
for name, per_step in errors.items():
    print(f"{name:>7} state: final loss {per_step.mean():.4f}  "
          f"(first step of a window {per_step[0]:.4f}, last {per_step[-1]:.4f})")
print(f"carried < reset: {errors['carried'].mean() < errors['reset'].mean()}")
