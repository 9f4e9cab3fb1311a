"""The same network, with the same weights, on numba_rnn and on each installed peer.

``build(engine, workload, data, threads)`` returns a ``Runner``: ``runner.run()`` is one
timed call on the workload's inputs (a host NumPy array, batch-major, as a caller would
pass it) and returns the engine's own result; ``runner.values(result)`` turns that into
named NumPy arrays in numba_rnn's layout for checking against numba_rnn's
(``compare``). A peer that is not installed, or cannot run the workload, raises
``PeerUnavailable``.

What one call is:

- "forward": the outputs and final state. Checked: outputs and the final state
  (c for an LSTM), max abs difference < ``FORWARD_TOLERANCE``. numba_rnn's cells are
  frozen (``cell.freeze()``, inference mode: the weights are packed once, not on every
  call), as ONNX Runtime packs them once when its session is made.
- "train": forward, then the gradients of ``sum(outputs)`` with respect to the inputs
  and every weight (numba_rnn: ``vjp`` with d_outputs = ones; PyTorch:
  ``torch.autograd.grad``; TensorFlow: ``tf.gradients`` in the v1 graph; JAX:
  ``jax.grad`` of the scan, jitted). Checked: the input gradient and the kernel
  gradients (TF layout), max abs difference relative to the largest entry <
  ``GRADIENT_TOLERANCE``.

Weights come in TensorFlow's layout (LSTM: kernel [D + H, 4H] with gate blocks i, j, f,
o, bias [4H], forget_bias = 1.0 added to f) and are converted for each peer:

- PyTorch ``nn.LSTM`` / ``nn.GRU``: LSTM blocks i, f, g(=j), o, weight_ih [4H, D],
  weight_hh [4H, H], forget_bias folded into bias_ih, bias_hh zero; GRU rows r, z(=u),
  n(=candidate), candidate/recurrent_bias in bias_hh's n block. Variable lengths (W5):
  ``pack_padded_sequence`` and a bidirectional ``nn.LSTM``.
- ONNX Runtime (forward LSTM only): one ONNX ``LSTM`` node built with ``onnx.helper``
  (blocks i, o, f, c(=j); W [1, 4H, D], R [1, 4H, H], B [1, 8H]) with Transpose nodes
  around it for batch-major inputs and outputs. Its LSTM has no float64 kernel.
- TensorFlow: ``tf.compat.v1.nn.dynamic_rnn`` (``bidirectional_dynamic_rnn`` with
  ``sequence_length`` for W5) over ``BasicLSTMCell`` in a graph and a session
  (``TF_USE_LEGACY_KERAS=1``), weights loaded into the cell's variables unchanged. The GRU
  workload is the reset_after form, which tf.compat.v1 has no cell for: a subclass of
  its ``GRUCell`` with the math of TF 1.x's ``contrib.cudnn_rnn.CudnnCompatibleGRUCell``
  (an extra candidate/recurrent_bias, the reset gate applied after the recurrent
  product).
- JAX: the input projection as one product, then ``lax.scan`` over the steps (masked
  for variable lengths, each sequence reversed within its length for the backward
  direction), under ``jax.jit``; same layout as TensorFlow.

Every engine gets ``threads`` threads: numba_rnn through ``numba.set_num_threads`` (and
NumPy's BLAS, see runner.py), PyTorch ``set_num_threads``, ONNX Runtime
``intra_op_num_threads``, TensorFlow's intra/inter-op ConfigProto. JAX (XLA:CPU) has no
public thread setting; it uses the machine's cores.

Only numpy is imported here at module level; each peer is imported when it is built.
"""
import contextlib
import importlib.util
import os
import sys
import tempfile
import warnings

import numpy as np

FORWARD_TOLERANCE = 1e-4   # max abs difference of outputs and final state
GRADIENT_TOLERANCE = 1e-3  # max abs difference / largest magnitude, per gradient

ENGINES = ["numba_rnn", "torch", "onnxruntime", "tensorflow", "jax"]
LABELS = {"numba_rnn": "numba_rnn", "torch": "PyTorch", "onnxruntime": "ONNX Runtime",
          "tensorflow": "TensorFlow v1", "jax": "JAX"}
_MODULES = {"numba_rnn": ["numba_rnn"], "torch": ["torch"],
            "onnxruntime": ["onnxruntime", "onnx"], "tensorflow": ["tensorflow", "tf_keras"],
            "jax": ["jax"]}


class PeerUnavailable(Exception):
    """The engine's package is not installed, or it cannot run this workload."""


class Runner:
    """One engine set up for one workload: ``run()`` is the timed call."""

    def __init__(self, engine, run, values, version, keep=None):
        self.engine = engine
        self.run = run
        self._values = values
        self.version = version
        self._keep = keep  # objects that must live as long as the runner (a session)

    def values(self, result=None):
        """Named arrays to check, from ``result`` (a new call when None)."""
        return self._values(self.run() if result is None else result)


def available(engine):
    return all(importlib.util.find_spec(m) is not None for m in _MODULES[engine])


def missing_modules(engine):
    return [m for m in _MODULES[engine] if importlib.util.find_spec(m) is None]


def preload(engines):
    """Import PyTorch, if it is among ``engines`` and installed, before Numba starts its
    thread pool; returns a warning when that is too late, else None.

    Numba's OpenMP threading layer loads the system's libgomp; a PyTorch imported after
    that binds to it (same soname) instead of the libgomp in its wheel, and its training
    steps (autograd) then run several times slower (W4 here: about 6x). Imported first,
    PyTorch keeps its own runtime and Numba loads the system one beside it.
    """
    if "torch" not in engines or "torch" in sys.modules or not available("torch"):
        return None
    from numba.np.ufunc import parallel

    if getattr(parallel, "_is_initialized", False):
        return ("PyTorch was imported after Numba had started its OpenMP threads, so it "
                "shares their libgomp: its training steps may be several times slower "
                "than in a process of its own")
    with quiet_stderr():
        import torch  # noqa: F401
    return None


def build(engine, workload, data, threads=2):
    """A ``Runner`` for ``engine`` on ``workload`` with ``data``, or PeerUnavailable."""
    if engine not in _BUILDERS:
        raise ValueError(f"unknown engine {engine!r}; choose from {', '.join(ENGINES)}")
    missing = missing_modules(engine)
    if missing:
        raise PeerUnavailable(f"not installed ({', '.join(missing)})")
    if workload.mode == "forward" and workload.lengths != "full":
        raise PeerUnavailable("forward workloads with variable lengths are not covered")
    return _BUILDERS[engine](workload, data, threads)


def compare(values, expected, mode):
    """(worst difference, name of the array it is in) between two ``values`` dicts:
    max abs difference ("forward"), or max abs difference over the largest magnitude of
    the expected array ("train")."""
    worst = (0.0, None)
    for name, want in expected.items():
        got = np.asarray(values[name], np.float64)
        want = np.asarray(want, np.float64)
        if got.shape != want.shape:
            return float("inf"), f"{name} (shape {got.shape}, expected {want.shape})"
        diff = float(np.max(np.abs(got - want))) if want.size else 0.0
        if mode == "train":
            diff /= max(float(np.max(np.abs(want))), np.finfo(np.float64).tiny)
        if np.isnan(diff):
            return diff, name
        if diff > worst[0] or worst[1] is None:
            worst = (diff, name)
    return worst


def tolerance(mode):
    return FORWARD_TOLERANCE if mode == "forward" else GRADIENT_TOLERANCE


def _per_direction(workload, data):
    return data.weights if workload.directions == 2 else [data.weights]


def _lstm_split(weights, depth):
    kernel, bias = (np.asarray(w) for w in weights)
    return kernel[:depth], kernel[depth:], bias


def _blocks(order, units):
    """Column indices that take TF's i, j, f, o blocks to ``order`` (a string of the
    TF block letters, e.g. "ifjo" for PyTorch)."""
    where = {g: k for k, g in enumerate("ijfo")}
    return np.concatenate([np.arange(where[g] * units, (where[g] + 1) * units) for g in order])


def _folded_bias(bias, units, forget_bias=1.0):
    b = np.array(bias, copy=True)
    b[2 * units:3 * units] += forget_bias
    return b


def _gradient_names(workload):
    """The weight gradients that are checked, by index into the cell's weights."""
    if workload.cell == "gru":
        return {"d gates/kernel": 0, "d candidate/kernel": 2}
    return {"d kernel": 0}


def _weight_values(workload, per_direction_grads):
    """{"d kernel fw": ..., "d kernel bw": ...} (or without the suffix for one direction)
    from per-direction lists of TF-layout weight gradients."""
    out = {}
    suffixes = [" fw", " bw"] if workload.directions == 2 else [""]
    for suffix, grads in zip(suffixes, per_direction_grads):
        for name, index in _gradient_names(workload).items():
            out[name + suffix] = np.asarray(grads[index])
    return out


@contextlib.contextmanager
def quiet_stderr():
    """Hold back what C++ libraries write to file descriptor 2 (TensorFlow's and XLA's
    start-up logging, which ignores TF_CPP_MIN_LOG_LEVEL before absl is set up); it is
    written out after all if the block raises something other than PeerUnavailable."""
    try:
        sys.stderr.flush()
        saved = os.dup(2)
    except (OSError, ValueError):  # no real file descriptor 2 (e.g. an embedded console)
        yield
        return
    with tempfile.TemporaryFile(mode="w+b") as sink:
        os.dup2(sink.fileno(), 2)
        try:
            yield
        except PeerUnavailable:
            raise
        except BaseException:
            os.dup2(saved, 2)
            sink.seek(0)
            held = sink.read().decode(errors="replace")
            if held:
                sys.stderr.write(held)
            raise
        finally:
            os.dup2(saved, 2)
            os.close(saved)


# ---------------------------------------------------------------------------- numba_rnn
def _numba_rnn(workload, data, threads):
    import numba

    import numba_rnn as nr

    numba.set_num_threads(min(threads, numba.config.NUMBA_NUM_THREADS))
    dtype = data.dtype

    def make_cell(weights):
        if workload.cell == "gru":
            cell = nr.GRUCell(workload.units, reset_after=True, dtype=dtype)
        else:
            cell = nr.BasicLSTMCell(workload.units, dtype=dtype)
        cell.set_weights(weights)
        return cell

    cells = [make_cell(w) for w in _per_direction(workload, data)]
    x = data.inputs
    lengths = None if workload.lengths == "full" else data.lengths
    if workload.directions == 2:
        fn, args = nr.bidirectional_dynamic_rnn, (cells[0], cells[1], x)
    else:
        fn, args = nr.dynamic_rnn, (cells[0], x)

    def final(state):
        return state.c if workload.cell != "gru" else state

    if workload.mode == "forward":
        for cell in cells:
            cell.freeze()  # inference: weights packed once, as ONNX Runtime's session does

        def run():
            return fn(*args, sequence_length=lengths, dtype=dtype)

        def values(result):
            outputs, state = result
            if workload.directions == 2:
                return {"outputs": np.concatenate(outputs, axis=-1),
                        "state": np.concatenate([final(s) for s in state], axis=-1)}
            return {"outputs": outputs, "state": final(state)}
    else:
        shape = (workload.batch, workload.steps, workload.units)
        ones = np.ones(shape, dtype)
        d_outputs = (ones, ones) if workload.directions == 2 else ones

        def run():
            _, backward = nr.vjp(fn, *args, sequence_length=lengths, dtype=dtype)
            return backward((d_outputs, None))

        def values(grads):
            n = len(grads.weights) // workload.directions
            per_direction = [grads.weights[k * n:(k + 1) * n]
                             for k in range(workload.directions)]
            return {"d inputs": grads.inputs, **_weight_values(workload, per_direction)}

    return Runner("numba_rnn", run, values, nr.__version__)


# -------------------------------------------------------------------------------- torch
def _torch(workload, data, threads):
    import torch

    torch.set_num_threads(threads)
    with contextlib.suppress(RuntimeError):  # settable only before the first parallel work
        torch.set_num_interop_threads(threads)
    dtype = {np.dtype(np.float32): torch.float32, np.dtype(np.float64): torch.float64}[
        data.dtype]
    d, h = workload.depth, workload.units
    if workload.cell == "gru":
        module = torch.nn.GRU(d, h, batch_first=True)
    else:
        module = torch.nn.LSTM(d, h, batch_first=True, bidirectional=workload.directions == 2)
    module = module.to(dtype)
    params = dict(module.named_parameters())
    lstm_cols = _blocks("ifjo", h)

    def tensor(a):
        return torch.from_numpy(np.ascontiguousarray(a))

    with torch.no_grad():
        for suffix, weights in zip(["_l0", "_l0_reverse"], _per_direction(workload, data)):
            if workload.cell == "gru":
                gk, gb, ck, cb, rb = weights
                w_ih = np.concatenate([gk[:d], ck[:d]], axis=1).T
                w_hh = np.concatenate([gk[d:], ck[d:]], axis=1).T
                b_ih = np.concatenate([gb, cb])
                b_hh = np.concatenate([np.zeros(2 * h, data.dtype), rb])
            else:
                w_x, w_h, bias = _lstm_split(weights, d)
                w_ih, w_hh = w_x[:, lstm_cols].T, w_h[:, lstm_cols].T
                b_ih = _folded_bias(bias, h)[lstm_cols]
                b_hh = np.zeros(4 * h, data.dtype)
            for name, value in [("weight_ih", w_ih), ("weight_hh", w_hh), ("bias_ih", b_ih),
                                ("bias_hh", b_hh)]:
                params[name + suffix].copy_(tensor(value))
    x = torch.from_numpy(data.inputs)
    lengths = None if workload.lengths == "full" else torch.from_numpy(data.lengths)

    def to_tf_layout(grads):
        """Per-direction TF-layout kernel gradients from torch's parameter gradients."""
        by_name = dict(zip(params, grads))
        out = []
        for suffix in ["_l0", "_l0_reverse"][:workload.directions]:
            g_ih = by_name["weight_ih" + suffix].numpy().T  # [D, G*H], torch's gate order
            g_hh = by_name["weight_hh" + suffix].numpy().T
            both = np.concatenate([g_ih, g_hh], axis=0)
            if workload.cell == "gru":
                out.append([both[:, :2 * h], None, both[:, 2 * h:]])
            else:
                kernel = np.empty_like(both)
                kernel[:, lstm_cols] = both
                out.append([kernel])
        return out

    if workload.mode == "forward":
        module.eval()

        def run():
            with torch.inference_mode():
                return module(x)

        def values(result):
            outputs, state = result
            last = state[1] if isinstance(state, tuple) else state  # LSTM (h, c): c
            last = torch.cat(list(last), dim=-1)  # [directions, B, H] -> [B, 2H]
            return {"outputs": outputs.numpy(), "state": last.numpy()}
    else:
        module.train()
        x_leaf = x.clone().requires_grad_(True)
        wrt = [x_leaf, *params.values()]

        def run():
            if lengths is None:
                outputs, _ = module(x_leaf)
            else:
                packed = torch.nn.utils.rnn.pack_padded_sequence(
                    x_leaf, lengths, batch_first=True, enforce_sorted=False)
                outputs, _ = module(packed)
                outputs = outputs.data  # the valid steps only: the padded ones are zeros
            return torch.autograd.grad(outputs.sum(), wrt)

        def values(grads):
            return {"d inputs": grads[0].numpy(),
                    **_weight_values(workload, to_tf_layout(grads[1:]))}

    return Runner("torch", run, values, torch.__version__)


# -------------------------------------------------------------------------- onnxruntime
def _onnxruntime(workload, data, threads):
    if workload.mode != "forward":
        raise PeerUnavailable("forward only (ONNX Runtime training is not covered)")
    if workload.cell != "lstm":
        raise PeerUnavailable(f"the ONNX Runtime adapter covers one-direction LSTMs only, "
                              f"not {workload.cell}")
    if data.dtype != np.float32:
        raise PeerUnavailable("its LSTM kernel has no float64 (\"LSTM operator does not "
                              "support double yet\")")
    import onnx
    import onnxruntime as ort
    from onnx import TensorProto, helper, numpy_helper

    d, h, b, t = workload.depth, workload.units, workload.batch, workload.steps
    w_x, w_h, bias = _lstm_split(data.weights, d)
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
    options.intra_op_num_threads = threads
    options.inter_op_num_threads = 1
    options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    session = ort.InferenceSession(model.SerializeToString(), options,
                                   providers=["CPUExecutionProvider"])
    feed = {"X": data.inputs}

    def run():
        return session.run(None, feed)

    def values(result):
        outputs, c = result
        return {"outputs": outputs, "state": c}

    return Runner("onnxruntime", run, values, ort.__version__, keep=session)


# --------------------------------------------------------------------------- tensorflow
def _reset_after_gru_cell(tf):
    """tf.compat.v1's GRUCell with the reset gate applied after the recurrent product
    (TF 1.x contrib ``CudnnCompatibleGRUCell``, Keras ``reset_after=True``, PyTorch)."""
    base = tf.compat.v1.nn.rnn_cell.GRUCell

    class ResetAfterGRUCell(base):
        def build(self, input_shape):
            # Before the base class's build, which marks the layer built: variables made
            # after that are looked up for reuse instead of created.
            self._input_depth = int(input_shape[-1])
            self._recurrent_bias = self.add_weight(
                "candidate/recurrent_bias", shape=[self._num_units],
                initializer=tf.compat.v1.zeros_initializer(dtype=self.dtype))
            super().build(input_shape)

        @property
        def tf_layout_weights(self):
            """The variables in numba_rnn's ``GRUCell(reset_after=True)`` order."""
            return [self._gate_kernel, self._gate_bias, self._candidate_kernel,
                    self._candidate_bias, self._recurrent_bias]

        def call(self, inputs, state):
            d = self._input_depth
            gates = tf.sigmoid(tf.nn.bias_add(
                tf.matmul(tf.concat([inputs, state], 1), self._gate_kernel),
                self._gate_bias))
            r, u = tf.split(gates, 2, axis=1)
            from_x = tf.nn.bias_add(tf.matmul(inputs, self._candidate_kernel[:d]),
                                    self._candidate_bias)
            from_h = tf.nn.bias_add(tf.matmul(state, self._candidate_kernel[d:]),
                                    self._recurrent_bias)
            c = self._activation(from_x + r * from_h)
            new_h = u * state + (1 - u) * c
            return new_h, new_h

    return ResetAfterGRUCell


def _tensorflow(workload, data, threads):
    # Before TensorFlow is first imported: tf.compat.v1 cells need the Keras 2 package.
    os.environ.setdefault("TF_USE_LEGACY_KERAS", "1")
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    with quiet_stderr():
        import tensorflow as tf
    tf.get_logger().setLevel("ERROR")  # deprecation warnings of the legacy API

    v1 = tf.compat.v1
    b, t, d, h = workload.batch, workload.steps, workload.depth, workload.units
    tf_dtype = tf.as_dtype(data.dtype)
    graph = tf.Graph()
    with graph.as_default(), warnings.catch_warnings():
        warnings.simplefilter("ignore")  # the legacy API is the point: no deprecation noise
        x = v1.placeholder(tf_dtype, [b, t, d], name="inputs")
        lengths = None if workload.lengths == "full" else tf.constant(data.lengths)

        def make_cell(name):
            if workload.cell == "gru":
                return _reset_after_gru_cell(tf)(h, name=name, dtype=tf_dtype)
            return v1.nn.rnn_cell.BasicLSTMCell(h, forget_bias=1.0, name=name,
                                                dtype=tf_dtype)

        if workload.directions == 2:
            cells = [make_cell("fw"), make_cell("bw")]
            (out_fw, out_bw), states = v1.nn.bidirectional_dynamic_rnn(
                cells[0], cells[1], x, sequence_length=lengths, dtype=tf_dtype)
            outputs = tf.concat([out_fw, out_bw], axis=-1)
        else:
            cells = [make_cell("cell")]
            outputs, state = v1.nn.dynamic_rnn(cells[0], x, sequence_length=lengths,
                                               dtype=tf_dtype)
            states = [state]
        finals = [s if workload.cell == "gru" else s.c for s in states]
        variables = [v for cell in cells
                     for v in getattr(cell, "tf_layout_weights", cell.weights)]
        flat_weights = [w for ws in _per_direction(workload, data) for w in ws]
        if [tuple(v.shape) for v in variables] != [w.shape for w in flat_weights]:
            raise AssertionError(f"TensorFlow cell variables {variables} do not match the "
                                 f"weights' shapes")
        values_in = [v1.placeholder(tf_dtype, w.shape) for w in flat_weights]
        assign = [v.assign(p) for v, p in zip(variables, values_in)]
        if workload.mode == "forward":
            fetches = (outputs, tf.concat(finals, axis=-1))
        else:
            fetches = v1.gradients(tf.reduce_sum(outputs), [x, *variables])
    config = v1.ConfigProto(intra_op_parallelism_threads=threads,
                            inter_op_parallelism_threads=threads)
    session = v1.Session(graph=graph, config=config)
    session.run(assign, feed_dict=dict(zip(values_in, flat_weights)))
    feed = {x: data.inputs}

    def run():
        return session.run(fetches, feed_dict=feed)

    if workload.mode == "forward":
        def values(result):
            return {"outputs": result[0], "state": result[1]}
    else:
        n = len(variables) // workload.directions

        def values(grads):
            per_direction = [grads[1 + k * n:1 + (k + 1) * n]
                             for k in range(workload.directions)]
            return {"d inputs": grads[0], **_weight_values(workload, per_direction)}

    return Runner("tensorflow", run, values, tf.__version__, keep=session)


# ---------------------------------------------------------------------------------- jax
def _jax(workload, data, threads):
    with quiet_stderr():
        import jax
    if data.dtype == np.float64:
        jax.config.update("jax_enable_x64", True)
    import jax.numpy as jnp
    from jax import lax

    d, h = workload.depth, workload.units
    gru = workload.cell == "gru"

    def jax_params(weights):
        """(w_x [D, G*H], w_h [H, G*H], bias [G*H], recurrent bias [H] or None)."""
        if gru:
            gk, gb, ck, cb, rb = weights
            return (np.concatenate([gk[:d], ck[:d]], axis=1),
                    np.concatenate([gk[d:], ck[d:]], axis=1), np.concatenate([gb, cb]), rb)
        w_x, w_h, bias = _lstm_split(weights, d)
        return w_x, w_h, _folded_bias(bias, h), None

    params = jax.device_put([jax_params(w) for w in _per_direction(workload, data)])

    def layer(p, x_tm, mask):
        """One direction over time-major inputs; ``mask`` [T, B, 1] or None. Returns
        (outputs [T, B, H], final state: c for an LSTM, h for a GRU)."""
        w_x, w_h, bias, b_rec = p
        xw = x_tm @ w_x + bias  # all steps' input projections in one product
        zeros = jnp.zeros((x_tm.shape[1], h), x_tm.dtype)

        def step(carry, inputs):
            z, keep = inputs
            if gru:
                (hp,) = carry
                rec = hp @ w_h
                r, u = jnp.split(jax.nn.sigmoid(z[:, :2 * h] + rec[:, :2 * h]), 2, axis=-1)
                c = jnp.tanh(z[:, 2 * h:] + r * (rec[:, 2 * h:] + b_rec))
                new = (u * hp + (1 - u) * c,)
            else:
                c, m = carry
                i, j, f, o = jnp.split(z + m @ w_h, 4, axis=-1)
                c = jax.nn.sigmoid(f) * c + jax.nn.sigmoid(i) * jnp.tanh(j)
                new = (c, jax.nn.sigmoid(o) * jnp.tanh(c))
            out = new[-1]
            if keep is not None:  # past a sequence's end: state kept, output zero
                new = tuple(jnp.where(keep, n, old) for n, old in zip(new, carry))
                out = jnp.where(keep, out, 0)
            return new, out

        carry0 = (zeros,) if gru else (zeros, zeros)
        final, ys = lax.scan(step, carry0, (xw, mask))
        return ys, final[0]

    full = workload.lengths == "full"
    steps = np.arange(workload.steps)[:, None]
    mask = None if full else (steps < data.lengths[None, :])[:, :, None]
    # Time index of each step with every sequence reversed within its length (an
    # involution, so it also puts the backward direction's outputs back in order).
    reverse = np.where(steps < data.lengths, data.lengths - 1 - steps,
                       steps)[:, :, None] if not full else None

    def forward(params, x):
        x_tm = jnp.swapaxes(x, 0, 1)
        out, final = layer(params[0], x_tm, mask)
        outs, finals = [out], [final]
        if workload.directions == 2:
            x_rev = x_tm[::-1] if full else jnp.take_along_axis(x_tm, reverse, axis=0)
            out_rev, final = layer(params[1], x_rev, mask)
            outs.append(out_rev[::-1] if full else
                        jnp.take_along_axis(out_rev, reverse, axis=0))
            finals.append(final)
        return (jnp.swapaxes(jnp.concatenate(outs, axis=-1), 0, 1),
                jnp.concatenate(finals, axis=-1))

    x = data.inputs
    if workload.mode == "forward":
        fn = jax.jit(forward)

        def values(result):
            return {"outputs": np.asarray(result[0]), "state": np.asarray(result[1])}
    else:
        def loss(params, x):
            return jnp.sum(forward(params, x)[0])

        fn = jax.jit(jax.grad(loss, argnums=(0, 1)))

        def values(result):
            d_params, d_x = result
            per_direction = []
            for dw_x, dw_h, _, _ in d_params:
                both = np.concatenate([np.asarray(dw_x), np.asarray(dw_h)], axis=0)
                per_direction.append([both[:, :2 * h], None, both[:, 2 * h:]] if gru
                                     else [both])
            return {"d inputs": np.asarray(d_x), **_weight_values(workload, per_direction)}

    def run():
        return jax.block_until_ready(fn(params, x))

    return Runner("jax", run, values, jax.__version__)


_BUILDERS = {"numba_rnn": _numba_rnn, "torch": _torch, "onnxruntime": _onnxruntime,
             "tensorflow": _tensorflow, "jax": _jax}
