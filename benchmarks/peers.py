"""The same LSTM, with the same weights, on numba_rnn and on each installed peer.

``build(engine, workload, data)`` returns a ``Runner``: ``runner.run()`` does one forward
call on the workload's inputs (a host NumPy array, batch-major, as a caller would pass
it) and returns the engine's own result; ``runner.to_numpy(result)`` turns that into
(outputs [B, T, H], final cell state c [B, H]) for checking. A peer that is not
installed raises ``PeerUnavailable``, which the benchmarks turn into a skip.

Weights come in TensorFlow's layout (kernel [D + H, 4H] with gate blocks i, j, f, o,
bias [4H], forget_bias = 1.0 added to f) and are converted for each peer:

- PyTorch ``nn.LSTM``: blocks i, f, g(=j), o; weight_ih [4H, D], weight_hh [4H, H];
  forget_bias folded into bias_ih, bias_hh zero.
- ONNX Runtime: one ONNX ``LSTM`` node built with ``onnx.helper`` (blocks i, o, f, c(=j);
  W [1, 4H, D], R [1, 4H, H], B [1, 8H] = input bias then recurrent bias), with
  Transpose nodes around it for batch-major inputs and outputs.
- TensorFlow: ``tf.compat.v1.nn.dynamic_rnn`` over ``BasicLSTMCell`` in a graph and a
  session (``TF_USE_LEGACY_KERAS=1``), weights loaded into the cell's variables unchanged.
- JAX: the input projection as one product, then ``lax.scan`` over the steps, under
  ``jax.jit``; same layout as TensorFlow.

Every engine gets ``THREADS`` threads (env ``BENCH_THREADS``, default 2): numba_rnn
through ``numba.set_num_threads``, PyTorch ``set_num_threads``, ONNX Runtime
``intra_op_num_threads``, TensorFlow's intra/inter-op ConfigProto. JAX (XLA:CPU) has no
public thread knob; it uses the machine's cores (2 here).
"""
import importlib.util
import os
import warnings

import numpy as np

# Before TensorFlow is imported anywhere: tf.compat.v1 cells need the Keras 2 package.
os.environ.setdefault("TF_USE_LEGACY_KERAS", "1")
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

THREADS = int(os.environ.get("BENCH_THREADS", "2"))
TOLERANCE = 1e-4

ENGINES = ["numba_rnn", "torch", "onnxruntime", "tensorflow", "jax"]
_MODULES = {"numba_rnn": ["numba_rnn"], "torch": ["torch"],
            "onnxruntime": ["onnxruntime", "onnx"], "tensorflow": ["tensorflow", "tf_keras"],
            "jax": ["jax"]}


class PeerUnavailable(Exception):
    """The engine's package is not installed (or cannot run this workload)."""


class Runner:
    def __init__(self, engine, run, to_numpy, version):
        self.engine = engine
        self.run = run
        self.to_numpy = to_numpy
        self.version = version

    def outputs(self):
        return self.to_numpy(self.run())


def available(engine):
    return all(importlib.util.find_spec(m) is not None for m in _MODULES[engine])


def build(engine, workload, data):
    if not available(engine):
        raise PeerUnavailable(f"{engine} is not installed ({', '.join(_MODULES[engine])})")
    if engine != "numba_rnn" and (workload.cell != "lstm" or workload.lengths != "full"
                                  or workload.mode != "forward"):
        raise PeerUnavailable(f"the {engine} adapter covers forward LSTMs with full "
                              f"lengths only, not {workload}")
    return _BUILDERS[engine](workload, data)


def max_abs_diff(a, b):
    """Largest |a - b| over (outputs, c) pairs."""
    return max(float(np.max(np.abs(np.asarray(x, np.float64) - np.asarray(y, np.float64))))
               for x, y in zip(a, b))


def _split(weights, depth):
    kernel, bias = (np.asarray(w, np.float32) for w in weights)
    return kernel[:depth], kernel[depth:], bias


def _blocks(order, units):
    """Column indices that take TF's i, j, f, o blocks to ``order`` (a string of the
    TF block letters, e.g. "ifjo" for PyTorch)."""
    where = {g: k for k, g in enumerate("ijfo")}
    return np.concatenate([np.arange(where[g] * units, (where[g] + 1) * units) for g in order])


def _folded_bias(bias, units, forget_bias=1.0):
    b = bias.copy()
    b[2 * units:3 * units] += forget_bias
    return b


# ---------------------------------------------------------------------------- numba_rnn
def _numba_rnn(workload, data):
    import numba

    import numba_rnn as nr

    numba.set_num_threads(min(THREADS, numba.config.NUMBA_NUM_THREADS))
    cell = nr.BasicLSTMCell(workload.units)
    cell.set_weights(data.weights)
    x = data.inputs
    lengths = None if workload.lengths == "full" else data.lengths

    def run():
        return nr.dynamic_rnn(cell, x, sequence_length=lengths, dtype=np.float32)

    def to_numpy(result):
        outputs, state = result
        return outputs, state.c

    return Runner("numba_rnn", run, to_numpy, nr.__version__)


# -------------------------------------------------------------------------------- torch
def _torch(workload, data):
    import torch

    torch.set_num_threads(THREADS)
    try:
        torch.set_num_interop_threads(THREADS)
    except RuntimeError:
        pass  # only settable before the first parallel work; the default is fine then
    d, h = workload.depth, workload.units
    w_x, w_h, bias = _split(data.weights, d)
    cols = _blocks("ifjo", h)
    lstm = torch.nn.LSTM(d, h, batch_first=True).eval()
    with torch.no_grad():
        lstm.weight_ih_l0.copy_(torch.from_numpy(np.ascontiguousarray(w_x[:, cols].T)))
        lstm.weight_hh_l0.copy_(torch.from_numpy(np.ascontiguousarray(w_h[:, cols].T)))
        lstm.bias_ih_l0.copy_(torch.from_numpy(_folded_bias(bias, h)[cols]))
        lstm.bias_hh_l0.zero_()
    x = data.inputs

    def run():
        with torch.inference_mode():
            outputs, (_, c) = lstm(torch.from_numpy(x))
        return outputs, c

    def to_numpy(result):
        outputs, c = result
        return outputs.numpy(), c[0].numpy()

    return Runner("torch", run, to_numpy, torch.__version__)


# -------------------------------------------------------------------------- onnxruntime
def _onnxruntime(workload, data):
    import onnx
    import onnxruntime as ort
    from onnx import TensorProto, helper, numpy_helper

    d, h, b, t = workload.depth, workload.units, workload.batch, workload.steps
    w_x, w_h, bias = _split(data.weights, d)
    cols = _blocks("iofj", h)
    w = np.ascontiguousarray(w_x[:, cols].T)[None]
    r = np.ascontiguousarray(w_h[:, cols].T)[None]
    bb = np.concatenate([_folded_bias(bias, h)[cols], np.zeros(4 * h, np.float32)])[None]
    nodes = [
        helper.make_node("Transpose", ["X"], ["X_tm"], perm=[1, 0, 2]),
        helper.make_node("LSTM", ["X_tm", "W", "R", "B"], ["Y", "Y_h", "Y_c"],
                         hidden_size=h),
        helper.make_node("Squeeze", ["Y", "axis1"], ["Y_tm"]),
        helper.make_node("Transpose", ["Y_tm"], ["outputs"], perm=[1, 0, 2]),
        helper.make_node("Squeeze", ["Y_c", "axis0"], ["c"]),
    ]
    initializers = [numpy_helper.from_array(w, "W"), numpy_helper.from_array(r, "R"),
                    numpy_helper.from_array(bb, "B"),
                    numpy_helper.from_array(np.array([1], np.int64), "axis1"),
                    numpy_helper.from_array(np.array([0], np.int64), "axis0")]
    graph = helper.make_graph(
        nodes, "lstm", [helper.make_tensor_value_info("X", TensorProto.FLOAT, [b, t, d])],
        [helper.make_tensor_value_info("outputs", TensorProto.FLOAT, [b, t, h]),
         helper.make_tensor_value_info("c", TensorProto.FLOAT, [b, h])],
        initializers)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8  # readable by every ONNX Runtime that has opset 17
    onnx.checker.check_model(model)
    options = ort.SessionOptions()
    options.intra_op_num_threads = THREADS
    options.inter_op_num_threads = 1
    options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    session = ort.InferenceSession(model.SerializeToString(), options,
                                   providers=["CPUExecutionProvider"])
    feed = {"X": data.inputs}

    def run():
        return session.run(None, feed)

    def to_numpy(result):
        return tuple(result)

    return Runner("onnxruntime", run, to_numpy, ort.__version__)


# --------------------------------------------------------------------------- tensorflow
def _tensorflow(workload, data):
    import tensorflow as tf

    v1 = tf.compat.v1
    b, t, d, h = workload.batch, workload.steps, workload.depth, workload.units
    graph = tf.Graph()
    with graph.as_default():
        x = v1.placeholder(tf.float32, [b, t, d], name="inputs")
        with warnings.catch_warnings():  # the legacy API is the point: no deprecation noise
            warnings.simplefilter("ignore")
            cell = v1.nn.rnn_cell.BasicLSTMCell(h, forget_bias=1.0)
            outputs, state = v1.nn.dynamic_rnn(cell, x, dtype=tf.float32)
        variables = cell.weights
        values = [v1.placeholder(tf.float32, np.shape(w)) for w in data.weights]
        assign = [v.assign(p) for v, p in zip(variables, values)]
    config = v1.ConfigProto(intra_op_parallelism_threads=THREADS,
                            inter_op_parallelism_threads=THREADS)
    session = v1.Session(graph=graph, config=config)
    session.run(assign, feed_dict=dict(zip(values, data.weights)))
    fetches = (outputs, state.c)
    feed = {x: data.inputs}

    def run():
        return session.run(fetches, feed_dict=feed)

    def to_numpy(result):
        return tuple(result)

    runner = Runner("tensorflow", run, to_numpy, tf.__version__)
    runner.session = session  # keep it alive with the runner
    return runner


# ---------------------------------------------------------------------------------- jax
def _jax(workload, data):
    import jax
    import jax.numpy as jnp
    from jax import lax

    d, h = workload.depth, workload.units
    w_x, w_h, bias = _split(data.weights, d)
    params = jax.device_put((w_x, w_h, _folded_bias(bias, h)))

    @jax.jit
    def forward(params, x):
        w_x, w_h, bias = params
        xw = jnp.einsum("btd,dg->tbg", x, w_x) + bias  # all steps' input projections
        zeros = jnp.zeros((x.shape[0], h), x.dtype)

        def step(carry, z):
            c, m = carry
            i, j, f, o = jnp.split(z + m @ w_h, 4, axis=-1)
            c = jax.nn.sigmoid(f) * c + jax.nn.sigmoid(i) * jnp.tanh(j)
            m = jax.nn.sigmoid(o) * jnp.tanh(c)
            return (c, m), m

        (c, _), ys = lax.scan(step, (zeros, zeros), xw)
        return jnp.swapaxes(ys, 0, 1), c

    x = data.inputs

    def run():
        return jax.block_until_ready(forward(params, x))

    def to_numpy(result):
        return tuple(np.asarray(a) for a in result)

    return Runner("jax", run, to_numpy, jax.__version__)


_BUILDERS = {"numba_rnn": _numba_rnn, "torch": _torch, "onnxruntime": _onnxruntime,
             "tensorflow": _tensorflow, "jax": _jax}
