"""Shared by the TensorFlow oracle modules: the TensorFlow import (or a module-level
skip), the cell pairs, random data, weight transfer and the structural comparison.

Importing this module skips the importing test module when TensorFlow (or tf-keras, for
``tf.compat.v1.nn.rnn_cell``) is not installed.
"""
import os

import numpy as np
import pytest

import numba_rnn as nr

os.environ.setdefault("TF_USE_LEGACY_KERAS", "1")  # tf.compat.v1.nn.rnn_cell lives in tf-keras
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

tf = pytest.importorskip("tensorflow")
v1 = tf.compat.v1
try:
    rnn_cell = v1.nn.rnn_cell
    rnn_cell.LSTMCell  # noqa: B018  (resolved lazily: fails here without tf-keras)
except (AttributeError, ImportError) as exc:  # pragma: no cover - depends on the install
    pytest.skip(f"tf.compat.v1.nn.rnn_cell is not available ({exc}); install tf-keras and "
                f"set TF_USE_LEGACY_KERAS=1", allow_module_level=True)

FILTERWARNINGS = [
    pytest.mark.filterwarnings("ignore::DeprecationWarning"),
    pytest.mark.filterwarnings("ignore:.*is deprecated:UserWarning"),
    pytest.mark.filterwarnings("ignore:.*state_is_tuple:UserWarning"),
]

F32, F64 = np.float32, np.float64
DTYPES = [F32, F64]
ATOL = {F32: 1e-5, F64: 1e-10}
B, T, D = 5, 7, 3
LENGTHS_WITH_ZEROS = np.array([0, 3, T, 0, 1])
SCALE = 0.8  # weights uniform in [-SCALE, SCALE]: large enough that every clip is hit


class Case:
    """The same cell in TensorFlow and in numba_rnn."""

    def __init__(self, tf_cell, nr_cell):
        self.tf_cell, self.nr_cell = tf_cell, nr_cell


CASES = {
    "basic_rnn": Case(lambda: rnn_cell.BasicRNNCell(4), lambda: nr.BasicRNNCell(4)),
    "basic_rnn_relu": Case(lambda: rnn_cell.BasicRNNCell(4, activation=tf.nn.relu),
                           lambda: nr.BasicRNNCell(4, activation="relu")),
    "gru": Case(lambda: rnn_cell.GRUCell(4), lambda: nr.GRUCell(4)),
    "basic_lstm": Case(lambda: rnn_cell.BasicLSTMCell(4), lambda: nr.BasicLSTMCell(4)),
    "basic_lstm_forget_bias": Case(lambda: rnn_cell.BasicLSTMCell(3, forget_bias=0.25),
                                   lambda: nr.BasicLSTMCell(3, forget_bias=0.25)),
    "basic_lstm_concat": Case(lambda: rnn_cell.BasicLSTMCell(3, state_is_tuple=False),
                              lambda: nr.BasicLSTMCell(3, state_is_tuple=False)),
    "lstm": Case(lambda: rnn_cell.LSTMCell(4), lambda: nr.LSTMCell(4)),
    "lstm_peepholes": Case(lambda: rnn_cell.LSTMCell(4, use_peepholes=True),
                           lambda: nr.LSTMCell(4, use_peepholes=True)),
    "lstm_cell_clip": Case(lambda: rnn_cell.LSTMCell(4, cell_clip=0.3),
                           lambda: nr.LSTMCell(4, cell_clip=0.3)),
    "lstm_peepholes_cell_clip": Case(
        lambda: rnn_cell.LSTMCell(4, use_peepholes=True, cell_clip=0.3),
        lambda: nr.LSTMCell(4, use_peepholes=True, cell_clip=0.3)),
    "lstm_proj": Case(lambda: rnn_cell.LSTMCell(5, num_proj=3),
                      lambda: nr.LSTMCell(5, num_proj=3)),
    "lstm_proj_clip": Case(lambda: rnn_cell.LSTMCell(5, num_proj=3, proj_clip=0.1),
                           lambda: nr.LSTMCell(5, num_proj=3, proj_clip=0.1)),
    "lstm_all": Case(
        lambda: rnn_cell.LSTMCell(5, use_peepholes=True, cell_clip=0.4, num_proj=2,
                                  proj_clip=0.2, forget_bias=-0.3),
        lambda: nr.LSTMCell(5, use_peepholes=True, cell_clip=0.4, num_proj=2, proj_clip=0.2,
                            forget_bias=-0.3)),
    "lstm_concat": Case(lambda: rnn_cell.LSTMCell(4, num_proj=3, state_is_tuple=False),
                        lambda: nr.LSTMCell(4, num_proj=3, state_is_tuple=False)),
    "lstm_all_concat": Case(
        lambda: rnn_cell.LSTMCell(4, use_peepholes=True, cell_clip=0.5, num_proj=6,
                                  proj_clip=0.3, state_is_tuple=False),
        lambda: nr.LSTMCell(4, use_peepholes=True, cell_clip=0.5, num_proj=6, proj_clip=0.3,
                            state_is_tuple=False)),
    "multi_lstm": Case(
        lambda: rnn_cell.MultiRNNCell([rnn_cell.BasicLSTMCell(4), rnn_cell.BasicLSTMCell(3)]),
        lambda: nr.MultiRNNCell([nr.BasicLSTMCell(4), nr.BasicLSTMCell(3)])),
    "multi_mixed": Case(
        lambda: rnn_cell.MultiRNNCell([rnn_cell.LSTMCell(4, use_peepholes=True, num_proj=2),
                                       rnn_cell.GRUCell(3)]),
        lambda: nr.MultiRNNCell([nr.LSTMCell(4, use_peepholes=True, num_proj=2),
                                 nr.GRUCell(3)])),
    "multi_concat": Case(
        lambda: rnn_cell.MultiRNNCell([rnn_cell.GRUCell(3), rnn_cell.BasicRNNCell(2)],
                                      state_is_tuple=False),
        lambda: nr.MultiRNNCell([nr.GRUCell(3), nr.BasicRNNCell(2)], state_is_tuple=False)),
}


def random_inputs(dtype, time_major=False, seed=1):
    shape = (T, B, D) if time_major else (B, T, D)
    return np.random.default_rng(seed).normal(size=shape).astype(dtype)


def random_state(case, dtype, seed=2):
    """A random initial state as a flat list of [B, s] arrays (TensorFlow's flatten order)."""
    with tf.Graph().as_default():
        sizes = tf.nest.flatten(case.tf_cell().state_size)
    rng = np.random.default_rng(seed)
    return [rng.uniform(-1.0, 1.0, (B, s)).astype(dtype) for s in sizes]


def randomise_variables(sess, variables, dtype, seed=0):
    """Overwrite initialised TensorFlow variables with uniform [-SCALE, SCALE] values
    (biases included); returns {variable name without ':0': value} in their order."""
    rng = np.random.default_rng(seed)
    sess.run([v.assign(rng.uniform(-SCALE, SCALE, v.shape.as_list()).astype(dtype))
              for v in variables])
    return {v.name[:-2]: sess.run(v) for v in variables}  # "rnn/lstm_cell/kernel:0"


def load_weights(cell, tf_weights, dtype):
    """Give a numba_rnn cell TensorFlow's weights after checking their names and order.

    The cell must have run once (that fixes the scope in ``named_weights()``), and
    ``tf_weights`` holds exactly its variables, in TensorFlow's order.
    """
    names = list(tf_weights)
    assert list(cell.named_weights()) == names, "weight names or order differ from TensorFlow's"
    cell.set_weights([tf_weights[name] for name in names])  # TF's order is get_weights() order
    for name, value in cell.named_weights().items():
        assert value.dtype == dtype
        np.testing.assert_array_equal(value, tf_weights[name], err_msg=name)


def assert_matches(tf_value, nr_value, dtype, path, atol=None):
    """Same nesting (LSTMStateTuple where TensorFlow has one), shapes, dtypes and values
    (to ``atol``, default ``ATOL[dtype]``)."""
    if isinstance(tf_value, rnn_cell.LSTMStateTuple):
        assert isinstance(nr_value, nr.LSTMStateTuple), f"{path}: expected an LSTMStateTuple, " \
                                                        f"got {type(nr_value).__name__}"
    if isinstance(tf_value, tuple):
        assert isinstance(nr_value, tuple) and len(nr_value) == len(tf_value), \
            f"{path}: expected a tuple of {len(tf_value)}, got {type(nr_value).__name__}"
        for i, (a, b) in enumerate(zip(tf_value, nr_value)):
            assert_matches(a, b, dtype, f"{path}[{i}]", atol)
        return
    assert isinstance(nr_value, np.ndarray), f"{path}: expected an array, got {nr_value!r}"
    assert nr_value.shape == tf_value.shape, f"{path}: shape {nr_value.shape} != {tf_value.shape}"
    assert nr_value.dtype == tf_value.dtype == dtype, f"{path}: dtype {nr_value.dtype}"
    np.testing.assert_allclose(nr_value, tf_value, rtol=0,
                               atol=ATOL[dtype] if atol is None else atol, err_msg=path)
