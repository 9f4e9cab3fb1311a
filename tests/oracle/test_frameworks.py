"""numba_rnn.interop against the real frameworks: PyTorch, Keras 3, tf-keras, TensorFlow.

For every supported layer and option, a framework layer with random weights (biases
included) is converted and both are run on the same inputs, with and without sequence
lengths (PyTorch packed sequences, Keras masks), with and without initial states: the
outputs and final states must agree to 1e-5 in float32 (1e-10 in float64). The reverse
direction builds the framework's layer from numba_rnn cells, which must compute the same,
and converting it back must give the cells' weights bit for bit. TensorFlow 1.x
checkpoints written by ``tf.compat.v1.train.Saver`` are read back by path.

Optional: each framework's tests skip when it is not installed.
"""
import os
import pathlib

import numpy as np
import pytest

import numba_rnn as nr
from numba_rnn import interop, nest

os.environ.setdefault("TF_USE_LEGACY_KERAS", "1")  # tf.compat.v1.nn.rnn_cell lives in tf-keras
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

pytestmark = [
    pytest.mark.filterwarnings("ignore::DeprecationWarning"),
    pytest.mark.filterwarnings("ignore::UserWarning"),
    pytest.mark.filterwarnings("ignore::FutureWarning"),
]

F32, F64 = np.float32, np.float64
ATOL = {F32: 1e-5, F64: 1e-10}
B, T, D = 4, 7, 3
LENGTHS = np.array([7, 3, 5, 1])
SCALE = 0.6


def inputs(shape, dtype=F32, seed=1):
    return np.random.default_rng(seed).standard_normal(shape).astype(dtype)


def to_np(value):
    if hasattr(value, "detach"):
        return value.detach().numpy()
    return np.asarray(value)


def assert_close(ours, theirs, dtype, what):
    ours, theirs = nest.flatten(ours), nest.flatten(theirs)
    assert len(ours) == len(theirs), f"{what}: {len(ours)} arrays, the framework gives " \
                                     f"{len(theirs)}"
    for i, (a, b) in enumerate(zip(ours, theirs)):
        a, b = to_np(a), to_np(b)
        assert a.shape == b.shape, f"{what}[{i}]: shape {a.shape} != {b.shape}"
        np.testing.assert_allclose(a, b, rtol=0, atol=ATOL[dtype], err_msg=f"{what}[{i}]")


def randomised(cell, depth, dtype=F32, seed=0):
    rng = np.random.default_rng(seed)
    cell.build(depth, dtype)
    cell.set_weights([SCALE * rng.standard_normal(w.shape) for w in cell.get_weights()])
    return cell


# ================================================================================ PyTorch
@pytest.fixture(scope="module")
def torch():
    return pytest.importorskip("torch")


def torch_module(torch, mode, num_layers, bidirectional, batch_first, proj=0, bias=True,
                 dtype=F32, seed=0):
    torch.manual_seed(seed)
    kwargs = dict(input_size=D, hidden_size=5, num_layers=num_layers, bias=bias,
                  batch_first=batch_first, bidirectional=bidirectional)
    if mode == "LSTM":
        module = torch.nn.LSTM(proj_size=proj, **kwargs)
    elif mode == "GRU":
        module = torch.nn.GRU(**kwargs)
    else:
        module = torch.nn.RNN(nonlinearity="relu" if mode == "RNN_RELU" else "tanh", **kwargs)
    module = module.to(torch.float64 if dtype == F64 else torch.float32).eval()
    with torch.no_grad():
        for p in module.parameters():
            p.uniform_(-SCALE, SCALE)  # biases too: b_ih and b_hh both matter
    return module


def torch_hx(torch, module, dtype, seed=4):
    rng = np.random.default_rng(seed)
    count = module.num_layers * (2 if module.bidirectional else 1)
    h0 = rng.standard_normal((count, B, module.proj_size or module.hidden_size)).astype(dtype)
    if module.mode != "LSTM":
        return torch.from_numpy(h0)
    c0 = rng.standard_normal((count, B, module.hidden_size)).astype(dtype)
    return torch.from_numpy(h0), torch.from_numpy(c0)


TORCH_CASES = [(mode, layers, bi, proj)
               for mode in ("LSTM", "GRU", "RNN_TANH", "RNN_RELU")
               for layers in (1, 2) for bi in (False, True)
               for proj in ((0, 2) if mode == "LSTM" else (0,))]


@pytest.mark.parametrize("batch_first", [False, True], ids=["time_major", "batch_first"])
@pytest.mark.parametrize("mode, num_layers, bidirectional, proj", TORCH_CASES,
                         ids=[f"{m}-L{n}-{'bi' if b else 'uni'}{f'-proj{p}' if p else ''}"
                              for m, n, b, p in TORCH_CASES])
def test_torch_module(torch, mode, num_layers, bidirectional, proj, batch_first):
    module = torch_module(torch, mode, num_layers, bidirectional, batch_first, proj)
    net = interop.from_torch(module)
    assert net.batch_first == batch_first and net.time_major == (not batch_first)
    x = inputs((B, T, D) if batch_first else (T, B, D))
    xt = torch.from_numpy(x)
    hx = torch_hx(torch, module, F32)
    with torch.no_grad():
        assert_close(net(x), module(xt), F32, "no lengths")
        assert_close(net(x, hx=hx), module(xt, hx), F32, "hx")
        packed = torch.nn.utils.rnn.pack_padded_sequence(
            xt, torch.from_numpy(LENGTHS), batch_first=batch_first, enforce_sorted=False)
        packed_out, packed_state = module(packed, hx)
        padded, _ = torch.nn.utils.rnn.pad_packed_sequence(packed_out, batch_first=batch_first,
                                                           total_length=T)
    output, state = net(x, hx=hx, lengths=LENGTHS)
    assert_close((output, state), (padded, packed_state), F32, "lengths")
    ours_packed, ours_state = net(packed, hx=hx)
    assert type(ours_packed).__name__ == "PackedSequence"
    assert torch.equal(ours_packed.batch_sizes, packed_out.batch_sizes)
    assert torch.equal(ours_packed.sorted_indices, packed_out.sorted_indices)
    assert_close((ours_packed.data, ours_state), (packed_out.data, packed_state), F32, "packed")
    # run() is the numba_rnn function underneath, in the module's layout
    with torch.no_grad():
        padded, _ = torch.nn.utils.rnn.pad_packed_sequence(module(packed)[0],
                                                           batch_first=batch_first,
                                                           total_length=T)
    result = net.run(x, sequence_length=LENGTHS)
    if net.function == "bidirectional_dynamic_rnn":
        outputs = np.concatenate(result[0], axis=2)
    else:
        outputs = result[0]
    assert_close(outputs, padded, F32, "run")


@pytest.mark.parametrize("mode", ["LSTM", "GRU", "RNN_TANH"])
def test_torch_float64_no_bias_unbatched(torch, mode):
    module = torch_module(torch, mode, 2, True, False, bias=False, dtype=F64)
    net = interop.from_torch(module)
    assert net.dtype == F64
    x = inputs((T, D), F64)
    with torch.no_grad():
        assert_close(net(x), module(torch.from_numpy(x)), F64, "unbatched")


def test_torch_enforce_sorted_packed_input(torch):
    module = torch_module(torch, "GRU", 1, True, True)
    net = interop.from_torch(module)
    x = inputs((B, T, D))
    lengths = np.array([7, 5, 3, 1])
    packed = torch.nn.utils.rnn.pack_padded_sequence(torch.from_numpy(x),
                                                     torch.from_numpy(lengths), batch_first=True)
    with torch.no_grad():
        expected_out, expected_h = module(packed)
    out, h = net(packed)
    assert out.sorted_indices is None
    assert_close((out.data, h), (expected_out.data, expected_h), F32, "sorted packed")


REVERSE_CASES = ["lstm", "lstm_proj_stack", "gru_bi_stack", "rnn_relu", "lstm_pair_f64"]


@pytest.mark.parametrize("case", REVERSE_CASES)
def test_ours_to_torch_and_back(torch, case):
    dtype = F64 if case.endswith("f64") else F32
    if case == "lstm":
        model = randomised(nr.LSTMCell(5), D)  # forget_bias=1.0 goes into bias_ih
    elif case == "lstm_proj_stack":
        model = randomised(nr.MultiRNNCell([nr.LSTMCell(5, num_proj=2, forget_bias=0.0),
                                            nr.LSTMCell(5, num_proj=2, forget_bias=0.0)]), D)
    elif case == "gru_bi_stack":
        model = [(randomised(nr.GRUCell(4, reset_after=True), D, seed=1),
                  randomised(nr.GRUCell(4, reset_after=True), D, seed=2)),
                 (randomised(nr.GRUCell(4, reset_after=True), 8, seed=3),
                  randomised(nr.GRUCell(4, reset_after=True), 8, seed=4))]
    elif case == "rnn_relu":
        model = randomised(nr.BasicRNNCell(4, activation="relu"), D)
    else:
        model = (randomised(nr.BasicLSTMCell(3, forget_bias=0.0), D, dtype, 1),
                 randomised(nr.BasicLSTMCell(3, forget_bias=0.0), D, dtype, 2))
    module = interop.to_torch(model, batch_first=True)
    x = inputs((B, T, D), dtype)
    with torch.no_grad():
        theirs = module(torch.from_numpy(x))
    net = interop.from_torch(module)
    assert_close(net(x), theirs, dtype, "torch module from our cells")
    # our own function on our own cells gives the module's outputs
    if isinstance(model, list):
        ours = interop.stack_bidirectional_dynamic_rnn(*zip(*model), x)[0]
    elif isinstance(model, tuple):
        ours = np.concatenate(nr.bidirectional_dynamic_rnn(*model, x)[0], axis=2)
    else:
        ours = nr.dynamic_rnn(model, x)[0]
    assert_close(ours, theirs[0], dtype, "outputs")
    if case != "lstm":  # forget_bias=0.0: the weights come back bit for bit
        cells = interop.torch_modules._torch_layers(model)
        for ours_cell, back in zip([c for layer in cells for c in layer], net.leaf_cells()):
            for a, b in zip(ours_cell.get_weights(), back.get_weights()):
                np.testing.assert_array_equal(a, b)


def test_readme_bring_your_pytorch_lstm(torch):
    readme = (pathlib.Path(__file__).parents[2] / "README.md").read_text(encoding="utf-8")
    section = readme.split("## Bring your weights", 1)[1]
    code = section.split("```python\n", 1)[1].split("```", 1)[0]
    assert len(code.strip().splitlines()) == 5
    scope = {}
    exec(compile(code, "README.md", "exec"), scope)  # noqa: S102  (our own README)
    lstm, x = scope["lstm"], scope["x"]
    lengths = torch.tensor([10, 7, 3, 1])
    packed = torch.nn.utils.rnn.pack_padded_sequence(torch.from_numpy(x), lengths,
                                                     batch_first=True)
    with torch.no_grad():
        output, state = lstm(packed)
    output, _ = torch.nn.utils.rnn.pad_packed_sequence(output, batch_first=True)
    assert_close((scope["output"], scope["h_n"], scope["c_n"]), (output, *state), F32, "README")


def test_torch_errors(torch):
    with pytest.raises(TypeError, match="single-step cell"):
        interop.from_torch(torch.nn.LSTMCell(3, 4))
    with pytest.raises(TypeError, match="got Linear"):
        interop.from_torch(torch.nn.Linear(3, 4))
    net = interop.from_torch(torch_module(torch, "LSTM", 1, False, True))
    with pytest.raises(ValueError, match=r"its last dimension must be input_size = 3"):
        net(np.zeros((2, 5, 4), F32))


# ================================================================================== Keras
def keras_flavours():
    flavours = []
    for name in ("keras", "tf_keras"):
        try:
            module = __import__(name)
        except ImportError:
            continue
        if name == "keras" and not module.__version__.startswith("3"):
            continue
        flavours.append(name)
    return flavours or ["keras"]


@pytest.fixture(scope="module", params=keras_flavours())
def keras(request):
    return pytest.importorskip(request.param)


def randomise_keras(layer, x, seed=0):
    layer(x)  # builds it
    rng = np.random.default_rng(seed)
    layer.set_weights([rng.uniform(-SCALE, SCALE, w.shape).astype(w.dtype)
                       for w in layer.get_weights()])
    return layer


def keras_call(layer, x, **kwargs):
    """The layer on tensors (tf-keras refuses NumPy masks and states); NumPy results."""
    ops = getattr(__import__(type(layer).__module__.split(".")[0]), "ops", None)
    if ops is not None and hasattr(ops, "convert_to_tensor"):  # Keras 3, any backend
        convert = ops.convert_to_tensor
    else:
        import tensorflow as tf

        convert = tf.convert_to_tensor
    kwargs = {k: [convert(a) for a in v] if isinstance(v, list) else convert(v)
              for k, v in kwargs.items()}
    result = layer(convert(x), **kwargs)
    return [np.asarray(r) for r in result] if isinstance(result, (list, tuple)) else \
        np.asarray(result)


def keras_states(layer, batch, rng):
    if layer.__class__.__name__ == "Bidirectional":
        return keras_states(layer.forward_layer, batch, rng) + \
            keras_states(layer.backward_layer, batch, rng)
    cell = getattr(layer, "cell", layer)
    count = 2 if "LSTM" in type(cell).__name__ else 1
    return [rng.standard_normal((batch, cell.units)).astype(F32) for _ in range(count)]


KERAS_CASES = {
    "lstm": lambda k: k.layers.LSTM(5, return_sequences=True, return_state=True),
    "lstm_last": lambda k: k.layers.LSTM(5),
    "lstm_relu_no_bias": lambda k: k.layers.LSTM(4, activation="relu", use_bias=False,
                                                 return_sequences=True),
    "lstm_go_backwards": lambda k: k.layers.LSTM(4, go_backwards=True, return_sequences=True,
                                                 return_state=True),
    "lstm_inference_options": lambda k: k.layers.LSTM(4, dropout=0.5, recurrent_dropout=0.3,
                                                      unroll=True, unit_forget_bias=False,
                                                      return_sequences=True),
    "gru": lambda k: k.layers.GRU(5, return_sequences=True, return_state=True),
    "gru_v1": lambda k: k.layers.GRU(5, reset_after=False, return_sequences=True,
                                     return_state=True),
    "gru_last_backwards": lambda k: k.layers.GRU(3, go_backwards=True),
    "gru_v1_sigmoid": lambda k: k.layers.GRU(4, reset_after=False, activation="sigmoid",
                                             return_sequences=True),
    "simple_rnn": lambda k: k.layers.SimpleRNN(5, return_sequences=True, return_state=True),
    "simple_rnn_relu_last": lambda k: k.layers.SimpleRNN(4, activation="relu"),
    "rnn_lstm_cell": lambda k: k.layers.RNN(k.layers.LSTMCell(4), return_sequences=True,
                                            return_state=True),
    "rnn_gru_cell": lambda k: k.layers.RNN(k.layers.GRUCell(3), return_sequences=True),
    "bi_lstm": lambda k: k.layers.Bidirectional(k.layers.LSTM(4, return_sequences=True,
                                                              return_state=True)),
    "bi_gru_sum_last": lambda k: k.layers.Bidirectional(k.layers.GRU(4, return_state=True),
                                                        merge_mode="sum"),
    "bi_gru_v1_mul": lambda k: k.layers.Bidirectional(
        k.layers.GRU(3, reset_after=False, return_sequences=True), merge_mode="mul"),
    "bi_simple_rnn_ave": lambda k: k.layers.Bidirectional(
        k.layers.SimpleRNN(3, return_sequences=True), merge_mode="ave"),
    "bi_none_state": lambda k: k.layers.Bidirectional(
        k.layers.LSTM(3, return_sequences=True, return_state=True), merge_mode=None),
    "bi_mixed_backward": lambda k: k.layers.Bidirectional(
        k.layers.LSTM(4, return_sequences=True, return_state=True),
        backward_layer=k.layers.GRU(3, return_sequences=True, return_state=True,
                                    go_backwards=True)),
}
MASK = np.arange(T)[None, :] < LENGTHS[:, None]


@pytest.mark.parametrize("case", list(KERAS_CASES))
def test_keras_layer(keras, case):
    x = inputs((B, T, D))
    layer = randomise_keras(KERAS_CASES[case](keras), x)
    net = interop.from_keras(layer)
    assert_close(net(x), keras_call(layer, x), F32, "no mask")
    assert_close(net(x, mask=MASK), keras_call(layer, x, mask=MASK), F32, "mask")
    assert_close(net(x, sequence_length=LENGTHS), keras_call(layer, x, mask=MASK), F32,
                 "sequence_length")
    states = keras_states(layer, B, np.random.default_rng(7))
    if case != "bi_mixed_backward":  # Keras splits the states in halves: not for 2 + 1 states
        assert_close(net(x, mask=MASK, initial_state=states),
                     keras_call(layer, x, mask=MASK, initial_state=states), F32, "initial_state")
    assert net.describe()


def test_keras_float64_layer(keras):
    x = inputs((B, T, D), F64)
    layer = randomise_keras(keras.layers.GRU(4, return_sequences=True, dtype="float64"), x)
    net = interop.from_keras(layer)
    assert net.dtype == F64
    assert_close(net(x, mask=MASK), keras_call(layer, x, mask=MASK), F64, "float64")


def test_tf_keras_time_major():
    tf_keras = pytest.importorskip("tf_keras")
    x = inputs((T, B, D))
    layer = randomise_keras(tf_keras.layers.LSTM(4, time_major=True, return_sequences=True,
                                                 return_state=True), x)
    net = interop.from_keras(layer)
    assert net.time_major
    assert_close(net(x), keras_call(layer, x), F32, "time_major")
    assert_close(net(x, mask=MASK.T), keras_call(layer, x, mask=MASK.T), F32, "time_major mask")


@pytest.mark.parametrize("factory, match", [
    (lambda k: k.layers.LSTM(3, recurrent_activation="hard_sigmoid"),
     "recurrent_activation='hard_sigmoid'"),
    (lambda k: k.layers.GRU(3, activation="softsign"), "activation='softsign'"),
    (lambda k: k.layers.SimpleRNN(3, activation=lambda z: z * 2), "activation=.* is not "
                                                                  "supported"),
    (lambda k: k.layers.Dense(3), "'Dense' is not supported"),
    (lambda k: k.layers.RNN(k.layers.StackedRNNCells([k.layers.LSTMCell(3),
                                                      k.layers.LSTMCell(3)])),
     "StackedRNNCells"),
], ids=["hard_sigmoid", "softsign", "custom_activation", "dense", "stacked_cells"])
def test_keras_unsupported_is_named(keras, factory, match):
    x = inputs((B, T, D))
    layer = factory(keras)
    layer(x)
    with pytest.raises(ValueError, match=match):
        interop.from_keras(layer)


KERAS_REVERSE = ["lstm", "gru", "gru_reset_after", "rnn_relu", "pair", "stack"]


@pytest.mark.parametrize("case", KERAS_REVERSE)
def test_ours_to_keras_and_back(keras, case):
    if case == "lstm":
        model = randomised(nr.BasicLSTMCell(4), D)  # forget_bias=1.0 goes into the bias
    elif case == "gru":
        model = randomised(nr.GRUCell(4), D)
    elif case == "gru_reset_after":
        model = randomised(nr.GRUCell(4, reset_after=True, activation="relu"), D)
    elif case == "rnn_relu":
        model = randomised(nr.BasicRNNCell(4, activation="relu"), D)
    elif case == "pair":
        model = (randomised(nr.LSTMCell(4, forget_bias=0.0), D, seed=1),
                 randomised(nr.GRUCell(3, reset_after=True), D, seed=2))
    else:
        model = [(randomised(nr.GRUCell(3), D, seed=1), randomised(nr.GRUCell(3), D, seed=2)),
                 (randomised(nr.LSTMCell(2, forget_bias=0.0), 6, seed=3),
                  randomised(nr.LSTMCell(2, forget_bias=0.0), 6, seed=4))]
    built = interop.to_keras(model, return_sequences=True, keras=keras)
    layers = built if isinstance(built, list) else [built]
    x = inputs((B, T, D))
    y = x
    for layer in layers:
        y = keras_call(layer, y)
    if isinstance(model, list):
        ours = interop.stack_bidirectional_dynamic_rnn(*zip(*model), x)[0]
    elif isinstance(model, tuple):
        ours = np.concatenate(nr.bidirectional_dynamic_rnn(*model, x)[0], axis=2)
    else:
        ours = nr.dynamic_rnn(model, x)[0]
    assert_close(ours, y, F32, "keras layer from our cells")
    back = [c for layer in layers for c in interop.from_keras(layer).leaf_cells()]
    cells = [c for layer in interop.network.layers_of(model)
             for c in (layer if isinstance(layer, tuple) else [layer])]
    for ours_cell, theirs in zip(cells, back):
        if getattr(ours_cell, "forget_bias", 0.0) == 0.0:
            for a, b in zip(ours_cell.get_weights(), theirs.get_weights()):
                np.testing.assert_array_equal(a, b)


# ============================================================= TensorFlow checkpoints
@pytest.fixture(scope="module")
def v1():
    tf = pytest.importorskip("tensorflow")
    try:
        tf.compat.v1.nn.rnn_cell.LSTMCell  # noqa: B018
    except (AttributeError, ImportError) as exc:  # pragma: no cover - depends on the install
        pytest.skip(f"tf.compat.v1.nn.rnn_cell is not available ({exc})")
    return tf.compat.v1


TF_GRAPHS = {
    "lstm_peepholes_proj": lambda rc: ("dynamic", rc.LSTMCell(5, use_peepholes=True,
                                                              num_proj=3), None),
    "multi": lambda rc: ("dynamic", rc.MultiRNNCell([rc.GRUCell(5), rc.BasicLSTMCell(3)]),
                         "encoder"),
    "bidirectional": lambda rc: ("bidirectional", (rc.BasicRNNCell(5), rc.GRUCell(3)), None),
    "bidirectional_multi": lambda rc: ("bidirectional", (
        rc.MultiRNNCell([rc.LSTMCell(5), rc.LSTMCell(2)]), rc.MultiRNNCell([rc.GRUCell(3)])),
        "bi"),
}


@pytest.mark.parametrize("case", list(TF_GRAPHS))
def test_tensorflow_checkpoint(v1, tmp_path, case):
    import tensorflow as tf

    x = inputs((B, T, D))
    with tf.Graph().as_default() as graph, v1.Session(graph=graph) as sess:
        kind, cells, scope = TF_GRAPHS[case](v1.nn.rnn_cell)
        x_t = v1.placeholder(tf.float32, x.shape)
        if kind == "dynamic":
            out_t, state_t = v1.nn.dynamic_rnn(cells, x_t, sequence_length=LENGTHS,
                                               dtype=tf.float32, scope=scope)
        else:
            out_t, state_t = v1.nn.bidirectional_dynamic_rnn(
                *cells, x_t, sequence_length=LENGTHS, dtype=tf.float32, scope=scope)
        loss = tf.reduce_sum(tf.nest.flatten(out_t)[0])
        v1.train.AdamOptimizer().minimize(loss)  # slots in the checkpoint, to be ignored
        sess.run(v1.global_variables_initializer())
        rng = np.random.default_rng(3)
        sess.run([v.assign(rng.uniform(-0.8, 0.8, v.shape.as_list()).astype(F32))
                  for v in v1.trainable_variables()])
        path = v1.train.Saver().save(sess, str(tmp_path / "model"))
        expected = sess.run([out_t, state_t], {x_t: x})
        names = [v.name[:-2] for v in v1.trainable_variables()]
    net = interop.from_tensorflow(path)
    assert_close(net.run(x, sequence_length=LENGTHS), expected, F32, case)
    assert list(net.named_weights()) == names
    directory = interop.from_tensorflow(str(tmp_path))  # a directory: its latest checkpoint
    assert_close(directory.run(x, sequence_length=LENGTHS), expected, F32, case)
    variables = interop.read_checkpoint(path)
    assert set(names) < set(variables) and len(variables) > len(names)
