"""Weights in and out without any framework installed.

- ``numba_rnn.save`` / ``numba_rnn.load``: round trips of every cell type and option
  (bit-exact weights, same outputs), and files that must be refused: truncated, damaged,
  tampered, foreign, pickled, from a newer format.
- ``interop.from_tensorflow`` on {name: array} mappings built by hand, in every layout
  TensorFlow's RNN functions name variables.
- PyTorch and Keras converters on state dicts and configs built by hand, against NumPy
  written here from the frameworks' documented equations (gate orders, the two biases,
  masks, go_backwards), and ours -> framework -> ours round trips (exact).

The same conversions against the real frameworks are in ``tests/oracle/test_frameworks.py``.
"""
import io
import json
import pickle
import zipfile

import numpy as np
import pytest

import numba_rnn as nr
from numba_rnn import interop, nest

F32, F64 = np.float32, np.float64
ATOL = {F32: 1e-5, F64: 1e-10}


def randomised(cell, depth, dtype=F32, seed=0, scale=0.6):
    rng = np.random.default_rng(seed)
    cell.build(depth, dtype)
    cell.set_weights([scale * rng.standard_normal(w.shape) for w in cell.get_weights()])
    return cell


def inputs(shape, dtype=F32, seed=1):
    return np.random.default_rng(seed).standard_normal(shape).astype(dtype)


def assert_same(actual, expected, what="result"):
    """Same structure, shapes, dtypes and bits."""
    nest.assert_same_structure(expected, actual, what)
    for i, (a, e) in enumerate(zip(nest.flatten(actual), nest.flatten(expected))):
        assert a.shape == e.shape and a.dtype == e.dtype, f"{what} leaf {i}"
        np.testing.assert_array_equal(a, e, err_msg=f"{what} leaf {i}")


def assert_close(actual, expected, dtype, what="result"):
    actual, expected = nest.flatten(actual), nest.flatten(expected)
    assert len(actual) == len(expected), f"{what}: {len(actual)} != {len(expected)} arrays"
    for i, (a, e) in enumerate(zip(actual, expected)):
        a, e = np.asarray(a), np.asarray(e)
        assert a.shape == e.shape, f"{what}[{i}]: shape {a.shape} != {e.shape}"
        np.testing.assert_allclose(a, e, rtol=0, atol=ATOL[dtype], err_msg=f"{what}[{i}]")


def sigmoid(x):
    return 1 / (1 + np.exp(-x))


ACT = {"tanh": np.tanh, "sigmoid": sigmoid, "relu": lambda x: np.maximum(x, 0),
       "linear": lambda x: x}


# ============================================================================ save / load
def cell_cases():
    """(id, factory of an unbuilt cell or tuple of cells, input depth)."""
    return [
        ("basic_rnn", lambda: nr.BasicRNNCell(4), 3),
        ("basic_rnn_relu", lambda: nr.BasicRNNCell(4, activation="relu", name="my_rnn"), 3),
        ("basic_rnn_sigmoid", lambda: nr.BasicRNNCell(2, activation="sigmoid"), 5),
        ("basic_rnn_linear", lambda: nr.BasicRNNCell(2, activation="linear"), 1),
        ("gru", lambda: nr.GRUCell(4), 3),
        ("gru_reset_after", lambda: nr.GRUCell(4, reset_after=True), 3),
        ("gru_relu", lambda: nr.GRUCell(3, activation="relu", reset_after=True), 2),
        ("basic_lstm", lambda: nr.BasicLSTMCell(4), 3),
        ("basic_lstm_options", lambda: nr.BasicLSTMCell(3, forget_bias=0.25,
                                                        state_is_tuple=False), 2),
        ("lstm", lambda: nr.LSTMCell(4), 3),
        ("lstm_all", lambda: nr.LSTMCell(5, use_peepholes=True, cell_clip=0.4, num_proj=2,
                                         proj_clip=0.2, forget_bias=-0.3,
                                         activation="relu"), 3),
        ("lstm_concat", lambda: nr.LSTMCell(4, num_proj=3, state_is_tuple=False), 2),
        ("lstm_clip_int", lambda: nr.LSTMCell(3, cell_clip=2), 2),
        ("multi", lambda: nr.MultiRNNCell([nr.LSTMCell(4, use_peepholes=True, num_proj=2),
                                           nr.GRUCell(3), nr.BasicRNNCell(2)]), 3),
        ("multi_concat", lambda: nr.MultiRNNCell([nr.GRUCell(3), nr.BasicRNNCell(2)],
                                                 state_is_tuple=False, name="stack"), 4),
        ("multi_nested", lambda: nr.MultiRNNCell([nr.MultiRNNCell([nr.GRUCell(3)]),
                                                  nr.BasicLSTMCell(2)]), 2),
        ("pair", lambda: (nr.LSTMCell(3), nr.GRUCell(2, reset_after=True)), 3),
    ]


CELL_CASES = cell_cases()


def build_any(model, depth, dtype, seed=0):
    if isinstance(model, tuple):
        return tuple(build_any(m, depth, dtype, seed + i) for i, m in enumerate(model))
    return randomised(model, depth, dtype, seed)


def run_any(model, x):
    if isinstance(model, tuple):
        return nr.bidirectional_dynamic_rnn(*model, x, sequence_length=[5, 2, 0])
    return nr.dynamic_rnn(model, x, sequence_length=[5, 2, 0])


def describe(model):
    """Everything about a cell that must survive a round trip."""
    if isinstance(model, tuple):
        return ("tuple", [describe(m) for m in model])
    if isinstance(model, nr.MultiRNNCell):
        return ("multi", model.name, model.state_is_tuple, [describe(c) for c in model.cells])
    options = {k: getattr(model, k, None) for k in (
        "num_units", "use_peepholes", "cell_clip", "num_proj", "proj_clip", "forget_bias",
        "state_is_tuple", "reset_after")}
    return (type(model).__name__, model.name, model.dtype, model.input_depth, model._act,
            options)


def weights_of(model):
    if isinstance(model, tuple):
        return [w for m in model for w in weights_of(m)]
    return model.get_weights()


def saved_bytes(model):
    buffer = io.BytesIO()
    nr.save(buffer, model)
    return buffer.getvalue()


@pytest.mark.parametrize("dtype", [F32, F64], ids=["float32", "float64"])
@pytest.mark.parametrize("name, factory, depth", CELL_CASES, ids=[c[0] for c in CELL_CASES])
def test_save_load_round_trip(tmp_path, name, factory, depth, dtype):
    model = build_any(factory(), depth, dtype)
    path = tmp_path / "weights"  # no extension: written exactly as named
    nr.save(path, model)
    assert path.exists() and not (tmp_path / "weights.npz").exists()
    loaded = nr.load(path)
    assert describe(loaded) == describe(model)
    for a, b in zip(weights_of(loaded), weights_of(model)):
        assert a.dtype == b.dtype == dtype
        np.testing.assert_array_equal(a, b)
    x = inputs((3, 5, depth), dtype)
    assert_same(run_any(loaded, x), run_any(model, x))
    if not isinstance(model, tuple):
        assert list(loaded.named_weights()) == list(model.named_weights())


def test_saved_file_is_a_plain_npz_without_pickles(tmp_path):
    cell = randomised(nr.LSTMCell(3, num_proj=2), 4)
    nr.save(tmp_path / "m.npz", cell)
    with np.load(tmp_path / "m.npz", allow_pickle=False) as npz:
        assert sorted(npz.files) == ["config", "w0", "w1", "w2"]
        config = json.loads(npz["config"].tobytes())
        np.testing.assert_array_equal(npz["w2"], cell.get_weights()[2])
    assert config["format"] == "numba_rnn.weights" and config["format_version"] == 1
    assert config["numba_rnn_version"] == nr.__version__
    assert config["cell"] == {"type": "LSTMCell", "name": "lstm_cell", "dtype": "float32",
                              "input_depth": 4, "num_units": 3, "use_peepholes": False,
                              "cell_clip": None, "num_proj": 2, "proj_clip": None,
                              "forget_bias": 1.0, "state_is_tuple": True, "activation": "tanh"}
    assert [(w["name"], w["shape"], w["dtype"]) for w in config["weights"]] == [
        ("cell/kernel", [6, 12], "float32"), ("cell/bias", [12], "float32"),
        ("cell/projection/kernel", [3, 2], "float32")]


def test_save_overwrites_atomically_and_leaves_no_temporary_file(tmp_path):
    path = tmp_path / "m.npz"
    nr.save(path, randomised(nr.GRUCell(2), 3, seed=1))
    nr.save(path, randomised(nr.BasicRNNCell(3), 2, seed=2))
    assert isinstance(nr.load(path), nr.BasicRNNCell)
    assert [p.name for p in tmp_path.iterdir()] == ["m.npz"]


def test_save_refuses_what_it_cannot_describe():
    class MyCell(nr.RNNCell):
        state_size = output_size = 2

    class MyLSTM(nr.LSTMCell):
        pass

    with pytest.raises(TypeError, match="MyCell"):
        nr.save(io.BytesIO(), MyCell())
    with pytest.raises(TypeError, match="MyLSTM"):
        nr.save(io.BytesIO(), randomised(MyLSTM(2), 2))
    with pytest.raises(TypeError, match=r"cell\.cells\[1\]: MyCell"):
        nr.save(io.BytesIO(), nr.MultiRNNCell([randomised(nr.GRUCell(2), 2), MyCell()]))
    with pytest.raises(TypeError, match="not a cell"):
        nr.save(io.BytesIO(), np.zeros(3))
    with pytest.raises(ValueError, match="no weights yet"):
        nr.save(io.BytesIO(), nr.GRUCell(2))
    with pytest.raises(ValueError, match="empty tuple"):
        nr.save(io.BytesIO(), ())
    with pytest.raises(ValueError, match="non-finite"):
        nr.save(io.BytesIO(), randomised(nr.LSTMCell(2, forget_bias=float("nan")), 2))


# -------------------------------------------------------------------- refused files
def good_file():
    cell = nr.MultiRNNCell([nr.LSTMCell(4, use_peepholes=True), nr.GRUCell(3, reset_after=True)])
    return saved_bytes(randomised(cell, 3))


def rewrite(data, config=None, arrays=None, drop=(), pickled=False):
    """The file with its config and/or arrays replaced, re-zipped with valid CRCs."""
    with np.load(io.BytesIO(data), allow_pickle=False) as npz:
        members = {k: npz[k] for k in npz.files}
    if config is not None:
        members["config"] = np.frombuffer(json.dumps(config).encode(), np.uint8)
    members.update(arrays or {})
    for key in drop:
        members.pop(key)
    buffer = io.BytesIO()
    np.savez(buffer, **members)
    return buffer.getvalue()


def config_of(data):
    with np.load(io.BytesIO(data), allow_pickle=False) as npz:
        return json.loads(npz["config"].tobytes())


def refuse(data, match):
    with pytest.raises(nr.WeightsFileError, match=match):
        nr.load(io.BytesIO(data))


def test_good_file_loads():
    assert isinstance(nr.load(io.BytesIO(good_file())), nr.MultiRNNCell)


@pytest.mark.parametrize("fraction", [0.0, 0.01, 0.3, 0.5, 0.9, 0.999])
def test_truncated_file_is_refused(fraction):
    data = good_file()
    refuse(data[:int(len(data) * fraction)], "not a numba_rnn weights file|truncated|damaged")


def test_every_truncation_is_refused():
    data = good_file()
    for end in range(0, len(data), 97):
        with pytest.raises(nr.WeightsFileError):
            nr.load(io.BytesIO(data[:end]))


def test_flipped_bytes_are_caught_by_the_zip_checksums():
    data = bytearray(good_file())
    with zipfile.ZipFile(io.BytesIO(bytes(data))) as archive:
        info = archive.getinfo("w0.npy")  # the largest weight: [7, 16] float32
    start = info.header_offset
    name_length, extra_length = np.frombuffer(bytes(data[start + 26:start + 30]), "<u2")
    data_start = start + 30 + int(name_length) + int(extra_length)
    for offset in (data_start + 200, data_start + info.compress_size - 1):
        flipped = bytearray(data)
        flipped[offset] ^= 0x40
        refuse(bytes(flipped), "damaged|checksum|CRC")


def test_tampered_weight_is_caught_by_its_sha256():
    data = good_file()
    with np.load(io.BytesIO(data)) as npz:
        changed = npz["w1"].copy()
    changed[0] += 1.0
    refuse(rewrite(data, arrays={"w1": changed}), r"w1 .*SHA-256.*modified")


def test_tampered_config_is_caught_by_the_shapes():
    data = good_file()
    config = config_of(data)
    config["cell"]["cells"][0]["num_units"] = 5
    refuse(rewrite(data, config), r"w0 .*listed with shape \[7, 16\] but the cell config needs "
                                  r"\[8, 20\]")
    config = config_of(data)
    config["cell"]["cells"][1]["input_depth"] = 2
    refuse(rewrite(data, config), "listed with shape")


def test_weight_with_other_shape_or_dtype_is_refused():
    data = good_file()
    config = config_of(data)
    with np.load(io.BytesIO(data)) as npz:
        w0 = npz["w0"]
    refuse(rewrite(data, arrays={"w0": w0[:-1]}), r"w0 .*shape \(6, 16\) but the config needs "
                                                  r"\(7, 16\)")
    refuse(rewrite(data, arrays={"w0": w0.astype(F64)}), "w0 .*dtype <f8 but the config needs <f4")
    refuse(rewrite(data, arrays={"w0": w0.astype(">f4")}), "dtype >f4")
    config["weights"][0]["dtype"] = "float64"
    refuse(rewrite(data, config), "listed as 'float64' but the cell is float32")


def test_a_small_file_cannot_make_load_allocate_much():
    data = good_file()
    config = config_of(data)
    config["cell"]["cells"][0]["num_units"] = 200_000  # 12.8 GB of LSTM kernel if built
    for entry, shape in zip(config["weights"], ([200_003, 800_000], [800_000])):
        entry["shape"] = shape
    refuse(rewrite(data, config), r"w0 .*shape \(7, 16\) but the config needs "
                                  r"\(200003, 800000\)")
    header = bytearray(b"\x93NUMPY\x01\x00")
    text = b"{'descr': '<f4', 'fortran_order': False, 'shape': (200003, 800000), }"
    text += b" " * (63 - (len(text) + 10) % 64) + b"\n"
    header += len(text).to_bytes(2, "little") + text
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        with np.load(io.BytesIO(data)) as npz:
            for key in npz.files:
                if key == "config":
                    archive.writestr("config.npy", _npy(np.frombuffer(
                        json.dumps(config).encode(), np.uint8)))
                elif key == "w0":
                    archive.writestr("w0.npy", bytes(header) + b"\0" * 64)
                else:
                    archive.writestr(f"{key}.npy", _npy(npz[key]))
    refuse(buffer.getvalue(), r"w0 .*is \d+ bytes in the archive but its header announces "
                              r"640009600000 bytes")


def _npy(array):
    buffer = io.BytesIO()
    np.save(buffer, array)
    return buffer.getvalue()


def test_missing_and_extra_entries_are_refused():
    data = good_file()
    refuse(rewrite(data, drop=["w3"]), "missing weight w3")
    refuse(rewrite(data, arrays={"w99": np.zeros(2)}), r"entries that are not in its config: "
                                                       r"\['w99.npy'\]")
    config = config_of(data)
    config["weights"].pop()
    refuse(rewrite(data, config), "lists 9 weights but the cell it describes has 10")


class Exploit:
    ran = []

    def __reduce__(self):
        return (Exploit.ran.append, ("unpickled",))


def test_pickles_are_never_unpickled():
    data = good_file()
    evil = np.array([Exploit()], dtype=object)
    buffer = io.BytesIO()
    np.savez(buffer, config=evil)
    refuse(buffer.getvalue(), "holds Python objects")
    refuse(rewrite(data, arrays={"w0": evil}), "holds Python objects")
    refuse(pickle.dumps({"config": Exploit()}), "not a numba_rnn weights file")
    assert Exploit.ran == []


@pytest.mark.parametrize("data, match", [
    (b"", "not a numba_rnn weights file"),
    (b"not a zip at all" * 10, "not a numba_rnn weights file"),
    (np.arange(10).tobytes(), "not a numba_rnn weights file"),
], ids=["empty", "text", "raw_bytes"])
def test_foreign_bytes_are_refused(data, match):
    refuse(data, match)


def test_foreign_npz_files_are_refused():
    buffer = io.BytesIO()
    np.savez(buffer, weights=np.zeros(3), bias=np.ones(2))
    refuse(buffer.getvalue(), "no 'config' entry")
    buffer = io.BytesIO()
    np.savez(buffer, config=np.zeros(3))
    refuse(buffer.getvalue(), "must be a 1-D uint8 array")
    buffer = io.BytesIO()
    np.savez(buffer, config=np.frombuffer(b"\xff\xfe{", np.uint8))
    refuse(buffer.getvalue(), "not valid UTF-8 JSON")
    buffer = io.BytesIO()
    np.savez(buffer, config=np.frombuffer(json.dumps({"format": "keras"}).encode(), np.uint8))
    refuse(buffer.getvalue(), "format 'keras'")
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        archive.writestr("config.npy", b"\x93NUMPY garbage")
    refuse(buffer.getvalue(), "not a valid .npy array")


def test_newer_format_and_bad_configs_are_refused():
    data = good_file()
    config = config_of(data)
    config["format_version"] = 2
    refuse(rewrite(data, config), "format version 2.*upgrade numba_rnn")

    def changed(path, value):
        config = config_of(data)
        target = config
        for key in path[:-1]:
            target = target[key]
        if value is KeyError:
            del target[path[-1]]
        else:
            target[path[-1]] = value
        return rewrite(data, config)

    refuse(changed(["cell", "type"], "ConvLSTM"), "type 'ConvLSTM'")
    refuse(changed(["cell", "cells", 0, "type"], "Pickle"), "type 'Pickle'")
    refuse(changed(["cell", "cells", 0, "activation"], "swish"), "activation must be one of")
    refuse(changed(["cell", "cells", 0, "dtype"], "float16"), "dtype must be")
    refuse(changed(["cell", "cells", 0, "use_peepholes"], 1), "must be true or false")
    refuse(changed(["cell", "cells", 0, "num_units"], "4"), "must be a number")
    refuse(changed(["cell", "cells", 0, "num_units"], -4), "cannot be created.*positive")
    refuse(changed(["cell", "cells", 0, "cell_clip"], -1.0), "cannot be created.*cell_clip")
    refuse(changed(["cell", "cells", 0, "input_depth"], 0), "input_depth must be a positive")
    refuse(changed(["cell", "cells", 0, "forget_bias"], KeyError), r"lacks \['forget_bias'\]")
    refuse(changed(["cell", "cells", 1, "secret"], 1), r"unknown options \['secret'\]")
    refuse(changed(["cell", "cells"], []), "non-empty list")
    refuse(changed(["weights", 0, "key"], "w5"), "has key 'w5'")
    refuse(changed(["weights", 0, "name"], "x"), "named 'x'")
    refuse(changed(["weights", 0, "sha256"], None), "no valid sha256")
    refuse(changed(["cell"], []), "needs a 'cell' object")
    refuse(rewrite(data, [1, 2]), "format 'list'")


def test_load_reports_missing_files_as_such(tmp_path):
    with pytest.raises(FileNotFoundError):
        nr.load(tmp_path / "nothing.npz")
    (tmp_path / "bad.npz").write_bytes(b"PK\x03\x04 broken")
    with pytest.raises(nr.WeightsFileError, match="'.*bad.npz' is not a numba_rnn"):
        nr.load(tmp_path / "bad.npz")


# ===================================================================== TensorFlow names
def named(model, x, scope=None):
    """{TensorFlow variable name: array} of ``model`` after a run (as TF would name them)."""
    if isinstance(model, list):
        interop.stack_bidirectional_dynamic_rnn([f for f, _ in model], [b for _, b in model], x,
                                                scope=scope)
        cells = [c for pair in model for c in pair]
    elif isinstance(model, tuple):
        nr.bidirectional_dynamic_rnn(*model, x, scope=scope)
        cells = list(model)
    else:
        nr.dynamic_rnn(model, x, scope=scope)
        cells = [model]
    variables = {}
    for cell in cells:
        variables.update(cell.named_weights())
    return variables


def reference_run(model, x, lengths, scope=None):
    if isinstance(model, list):
        return interop.stack_bidirectional_dynamic_rnn(
            [f for f, _ in model], [b for _, b in model], x, sequence_length=lengths,
            scope=scope)
    if isinstance(model, tuple):
        return nr.bidirectional_dynamic_rnn(*model, x, sequence_length=lengths, scope=scope)
    return nr.dynamic_rnn(model, x, sequence_length=lengths, scope=scope)


def tf_cases():
    return [
        ("lstm", lambda: nr.LSTMCell(4), None),
        ("lstm_peepholes_proj", lambda: nr.LSTMCell(5, use_peepholes=True, num_proj=2), None),
        ("basic_lstm", lambda: nr.BasicLSTMCell(3), "encoder/rnn"),
        ("gru", lambda: nr.GRUCell(3), None),
        ("gru_reset_after", lambda: nr.GRUCell(3, reset_after=True, name="g"), None),
        ("basic_rnn", lambda: nr.BasicRNNCell(3), None),
        ("multi", lambda: nr.MultiRNNCell([nr.GRUCell(5), nr.BasicLSTMCell(3),
                                           nr.LSTMCell(2, num_proj=1)]), "decoder"),
        ("bidirectional", lambda: (nr.BasicRNNCell(5), nr.GRUCell(3)), None),
        ("bidirectional_multi", lambda: (nr.MultiRNNCell([nr.LSTMCell(5), nr.LSTMCell(2)]),
                                         nr.MultiRNNCell([nr.GRUCell(3)])), "bi"),
        ("stack", lambda: [(nr.LSTMCell(3), nr.LSTMCell(2)), (nr.GRUCell(4), nr.GRUCell(4))],
         None),
    ]


TF_CASES = tf_cases()


def build_tf_model(model, depth):
    if isinstance(model, list):
        first = build_any(model[0], depth, F32, 0)
        out = sum(c.output_size for c in first)
        return [first] + [build_any(pair, out, F32, 10 * (i + 1)) for i, pair in
                          enumerate(model[1:])]
    return build_any(model, depth, F32)


@pytest.mark.parametrize("name, factory, scope", TF_CASES, ids=[c[0] for c in TF_CASES])
def test_from_tensorflow_finds_every_layout(name, factory, scope):
    x = inputs((3, 6, 4))
    lengths = [6, 0, 3]
    model = build_tf_model(factory(), 4)
    variables = named(model, x, scope)
    # What a checkpoint also holds: optimizer slots, step counters, other layers.
    extra = {f"{n}/Adam": v + 1 for n, v in variables.items()}
    extra.update({"global_step": np.array(7), "dense/kernel": np.ones((4, 2), F32),
                  "dense/bias": np.ones(2, F32), "beta1_power": np.array(0.9, F32)})
    net = interop.from_tensorflow({**variables, **extra})
    assert net.framework == "tensorflow"
    expected = reference_run(model, x, lengths, scope)
    assert_same(net.run(x, sequence_length=lengths), expected)
    assert_same(net(x, lengths), expected)
    assert net.named_weights().keys() == variables.keys()
    for key, value in net.named_weights().items():
        np.testing.assert_array_equal(value, variables[key])
    assert net.function in net.describe()


def test_from_tensorflow_takes_names_with_the_output_suffix_and_options():
    cell = randomised(nr.LSTMCell(3, use_peepholes=True), 2)
    variables = {f"{k}:0": v for k, v in named(cell, inputs((2, 4, 2))).items()}
    x = inputs((2, 4, 2))
    for forget_bias in (1.0, 0.0, -2.5):
        net = interop.from_tensorflow(variables, forget_bias=forget_bias, cell_clip=0.5)
        assert net.cell.forget_bias == forget_bias and net.cell.cell_clip == 0.5
        reference = nr.LSTMCell(3, use_peepholes=True, forget_bias=forget_bias, cell_clip=0.5)
        reference.set_weights(cell.get_weights())
        assert_same(net.run(x), nr.dynamic_rnn(reference, x))
    net = interop.from_tensorflow(variables, dtype=F64)
    assert net.cell.dtype == F64
    with pytest.raises(ValueError, match=r"unknown cell option\(s\) \['num_units'\]"):
        interop.from_tensorflow(variables, num_units=3)


def test_from_tensorflow_with_several_networks_needs_a_scope():
    x = inputs((2, 3, 4))
    encoder = randomised(nr.LSTMCell(3), 4, seed=1)
    decoder = randomised(nr.GRUCell(2), 4, seed=2)
    variables = {**named(encoder, x, "encoder"), **named(decoder, x, "decoder")}
    with pytest.raises(ValueError, match=r"do not form one TensorFlow RNN; pass scope=.*"
                                         r"\['decoder', 'encoder'\]"):
        interop.from_tensorflow(variables)
    net = interop.from_tensorflow(variables, scope="decoder")
    assert_same(net.run(x), nr.dynamic_rnn(decoder, x, scope="decoder"))
    with pytest.raises(ValueError, match="no variables under scope 'nope'"):
        interop.from_tensorflow(variables, scope="nope")


def test_from_tensorflow_into_given_cells():
    x = inputs((2, 5, 3))
    model = (randomised(nr.LSTMCell(4, name="forward_lstm"), 3, seed=1),
             randomised(nr.BasicRNNCell(2, name="back"), 3, seed=2))
    variables = named(model, x, "my_bi")
    with pytest.raises(ValueError, match="found no RNN cell variables"):
        interop.from_tensorflow(variables)  # the names do not say the cell types
    cells = (nr.LSTMCell(4, name="forward_lstm"), nr.BasicRNNCell(2, name="back"))
    net = interop.from_tensorflow(variables, cells=cells, scope="my_bi")
    assert net.cell_fw is cells[0]
    assert_same(net.run(x, sequence_length=[1, 5]),
                nr.bidirectional_dynamic_rnn(*model, x, sequence_length=[1, 5], scope="my_bi"))
    multi = nr.MultiRNNCell([nr.GRUCell(3), nr.GRUCell(2)])
    source = randomised(nr.MultiRNNCell([nr.GRUCell(3), nr.GRUCell(2)]), 3)
    net = interop.from_tensorflow(named(source, x), cells=multi)
    assert_same(net.run(x), nr.dynamic_rnn(source, x))


def test_from_tensorflow_reports_missing_and_misshapen_variables():
    x = inputs((2, 5, 3))
    variables = named(randomised(nr.LSTMCell(4), 3), x)
    with pytest.raises(ValueError, match="no variable 'rnn/lstm_cell/w_f_diag'"):
        interop.from_tensorflow(variables, cells=nr.LSTMCell(4, use_peepholes=True))
    with pytest.raises(ValueError, match=r"'rnn/lstm_cell/bias' has shape \(16,\), but LSTMCell "
                                         r"'lstm_cell' needs \(20,\)"):
        interop.from_tensorflow({"rnn/lstm_cell/kernel": np.zeros((8, 20), F32),
                                 "rnn/lstm_cell/bias": np.zeros(16, F32)})
    with pytest.raises(ValueError, match=r"kernel has shape \(7, 18\): an LSTM kernel has 4 x"):
        interop.from_tensorflow({"rnn/lstm_cell/kernel": np.zeros((7, 18), F32),
                                 "rnn/lstm_cell/bias": np.zeros(18, F32)})
    layers = named(randomised(nr.MultiRNNCell([nr.GRUCell(3), nr.GRUCell(2)]), 3), x)
    layers["rnn/multi_rnn_cell/cell_1/gru_cell/gates/kernel"] = np.zeros((6, 4), F32)
    with pytest.raises(ValueError, match=r"reads 4 features but the layer below gives 3"):
        interop.from_tensorflow(layers)
    with pytest.raises(ValueError, match="found no RNN cell variables"):
        interop.from_tensorflow({"dense/kernel": np.zeros((2, 2)), "step": np.array(1)})
    with pytest.raises(ValueError, match="object-based"):
        interop.from_tensorflow({"layer-0/kernel/.ATTRIBUTES/VARIABLE_VALUE": np.zeros(2)})
    with pytest.raises(TypeError, match="mapping or a checkpoint path"):
        interop.from_tensorflow([("rnn/lstm_cell/kernel", np.zeros(2))])


# ============================================================ PyTorch, in plain NumPy
def torch_reference(mode, state_dict, x, lengths=None, hx=None, batch_first=False):
    """nn.LSTM / nn.GRU / nn.RNN forward from PyTorch's documented equations."""
    sd = {k: np.asarray(v, F64) for k, v in state_dict.items()}
    if batch_first:
        x = np.swapaxes(x, 0, 1)
    x = x.astype(F64)
    steps, batch, _ = x.shape
    lengths = np.full(batch, steps) if lengths is None else np.asarray(lengths)
    layers = 1 + max(int(k.split("_l")[1].split("_")[0]) for k in sd)
    dirs = 2 if any(k.endswith("_reverse") for k in sd) else 1
    h_n, c_n = [], []
    for layer in range(layers):
        outs = []
        for d in range(dirs):
            sfx = f"_l{layer}" + ("_reverse" if d else "")
            w_ih, w_hh = sd["weight_ih" + sfx], sd["weight_hh" + sfx]
            b_ih, b_hh = sd.get("bias_ih" + sfx, 0.0), sd.get("bias_hh" + sfx, 0.0)
            w_hr = sd.get("weight_hr" + sfx)
            hidden = w_hh.shape[0] // {"LSTM": 4, "GRU": 3}.get(mode, 1)
            k = layer * dirs + d
            h = np.zeros((batch, w_hh.shape[1])) if hx is None else \
                np.asarray(hx[0] if mode == "LSTM" else hx, F64)[k]
            c = np.zeros((batch, hidden)) if hx is None or mode != "LSTM" else \
                np.asarray(hx[1], F64)[k]
            out = np.zeros((steps, batch, h.shape[1]))
            for step in range(steps):
                for b in range(batch):
                    if step >= lengths[b]:
                        continue
                    t = lengths[b] - 1 - step if d else step
                    xt, hb = x[t, b], h[b]
                    gi, gh = w_ih @ xt + b_ih, w_hh @ hb + b_hh
                    if mode == "LSTM":
                        i, f, g, o = np.split(gi + gh, 4)
                        c[b] = sigmoid(f) * c[b] + sigmoid(i) * np.tanh(g)
                        hnew = sigmoid(o) * np.tanh(c[b])
                        h[b] = hnew if w_hr is None else w_hr @ hnew
                    elif mode == "GRU":
                        ir, iz, in_ = np.split(gi, 3)
                        hr, hz, hn = np.split(gh, 3)
                        r, z = sigmoid(ir + hr), sigmoid(iz + hz)
                        n = np.tanh(in_ + r * hn)
                        h[b] = (1 - z) * n + z * hb
                    else:
                        h[b] = np.tanh(gi + gh) if mode == "RNN_TANH" else np.maximum(gi + gh, 0)
                    out[t, b] = h[b]
            outs.append(out)
            h_n.append(h.copy())
            c_n.append(c.copy())
        x = np.concatenate(outs, axis=2)
    if batch_first:
        x = np.swapaxes(x, 0, 1)
    return (x, (np.stack(h_n), np.stack(c_n))) if mode == "LSTM" else (x, np.stack(h_n))


def torch_state_dict(mode, input_size, hidden, num_layers=1, bidirectional=False, proj=0,
                     bias=True, seed=0, dtype=F32):
    rng = np.random.default_rng(seed)
    gates = {"LSTM": 4, "GRU": 3}.get(mode, 1)
    out = proj or hidden
    dirs = 2 if bidirectional else 1
    sd = {}
    for layer in range(num_layers):
        for d in range(dirs):
            sfx = f"_l{layer}" + ("_reverse" if d else "")
            depth = input_size if layer == 0 else out * dirs
            shapes = {"weight_ih": (gates * hidden, depth), "weight_hh": (gates * hidden, out)}
            if bias:
                shapes.update(bias_ih=(gates * hidden,), bias_hh=(gates * hidden,))
            if proj:
                shapes["weight_hr"] = (proj, hidden)
            for name, shape in shapes.items():
                sd[name + sfx] = rng.uniform(-0.6, 0.6, shape).astype(dtype)
    return sd


TORCH_CASES = [
    ("LSTM", {}), ("LSTM", dict(proj=2)), ("LSTM", dict(num_layers=2, bidirectional=True)),
    ("LSTM", dict(num_layers=2, proj=3, bidirectional=True)), ("LSTM", dict(bias=False)),
    ("GRU", {}), ("GRU", dict(num_layers=3)), ("GRU", dict(bidirectional=True)),
    ("RNN_TANH", dict(num_layers=2)), ("RNN_RELU", dict(bidirectional=True, num_layers=2)),
]


@pytest.mark.parametrize("batch_first", [False, True], ids=["time_major", "batch_first"])
@pytest.mark.parametrize("mode, options", TORCH_CASES,
                         ids=[f"{m}-{'-'.join(f'{k}{v}' for k, v in o.items())}"
                              for m, o in TORCH_CASES])
def test_torch_state_dict_matches_pytorch_equations(mode, options, batch_first):
    sd = torch_state_dict(mode, 3, 4, **options)
    net = interop.from_torch_state_dict(sd, mode, batch_first=batch_first)
    shape = (2, 5, 3) if batch_first else (5, 2, 3)
    x = inputs(shape)
    assert_close(net(x), torch_reference(mode, sd, x, batch_first=batch_first), F32, "full")
    lengths = [2, 5]
    assert_close(net(x, lengths=lengths),
                 torch_reference(mode, sd, x, lengths, batch_first=batch_first), F32, "lengths")
    rng = np.random.default_rng(3)
    count = options.get("num_layers", 1) * (2 if options.get("bidirectional") else 1)
    h0 = rng.standard_normal((count, 2, options.get("proj") or 4)).astype(F32)
    hx = (h0, rng.standard_normal((count, 2, 4)).astype(F32)) if mode == "LSTM" else h0
    assert_close(net(x, hx=hx, lengths=lengths),
                 torch_reference(mode, sd, x, lengths, hx, batch_first), F32, "hx")


def test_torch_unbatched_input_and_run():
    sd = torch_state_dict("LSTM", 3, 4, num_layers=2)
    net = interop.from_torch_state_dict(sd, "LSTM")
    x = inputs((6, 3))
    output, (h_n, c_n) = net(x)
    expected, (h_e, c_e) = torch_reference("LSTM", sd, x[:, None])
    assert output.shape == (6, 4) and h_n.shape == (2, 4) and c_n.shape == (2, 4)
    assert_close((output, h_n, c_n), (expected[:, 0], h_e[:, 0], c_e[:, 0]), F32)
    outputs, state = net.run(x[:, None])  # time-major, as the module is
    assert net.time_major and isinstance(net.cell, nr.MultiRNNCell)
    np.testing.assert_array_equal(outputs[:, 0], output)
    np.testing.assert_array_equal(state[1].c[0], c_n[1])
    assert "time_major=True" in net.describe() and "h_n[l] is state[l].h" in net.describe()


@pytest.mark.parametrize("model_id", ["lstm", "lstm_proj", "lstm_stack", "gru_bi_stack",
                                      "rnn_relu", "rnn_tanh_f64"])
def test_ours_to_torch_to_ours_is_exact(model_id):
    dtype = F64 if model_id.endswith("f64") else F32
    x = inputs((3, 5, 4), dtype)
    if model_id == "lstm":
        model = randomised(nr.LSTMCell(3, forget_bias=0.0), 4, dtype)
    elif model_id == "lstm_proj":
        model = randomised(nr.LSTMCell(5, num_proj=2, forget_bias=0.0), 4, dtype)
    elif model_id == "lstm_stack":
        model = randomised(nr.MultiRNNCell([nr.LSTMCell(3, forget_bias=0.0),
                                            nr.LSTMCell(3, forget_bias=0.0)]), 4, dtype)
    elif model_id == "gru_bi_stack":
        model = [(randomised(nr.GRUCell(3, reset_after=True), 4, dtype, 1),
                  randomised(nr.GRUCell(3, reset_after=True), 4, dtype, 2)),
                 (randomised(nr.GRUCell(3, reset_after=True), 6, dtype, 3),
                  randomised(nr.GRUCell(3, reset_after=True), 6, dtype, 4))]
    else:
        model = randomised(nr.BasicRNNCell(3, activation=model_id.split("_")[1]), 4, dtype)
    config, sd = interop.to_torch_state_dict(model)
    assert config["dtype"] == np.dtype(dtype).name
    net = interop.from_torch_state_dict(sd, config["mode"], batch_first=True)
    assert len(net.layers) == config["num_layers"] and net.proj_size == config["proj_size"]
    originals = interop.network.layers_of(model)
    for ours, back in zip(nest.flatten(originals), net.leaf_cells()):
        assert type(back) is type(ours) or isinstance(ours, nr.MultiRNNCell)
    original_cells = [c for layer in originals
                      for c in (layer if isinstance(layer, tuple) else
                                (layer.cells if isinstance(layer, nr.MultiRNNCell) else [layer]))]
    for ours, back in zip(original_cells, net.leaf_cells()):
        for a, b in zip(ours.get_weights(), back.get_weights()):
            assert a.dtype == b.dtype
            np.testing.assert_array_equal(a, b)
    # and the state_dict computes what PyTorch would
    assert_close(net(x), torch_reference(config["mode"], sd, x, batch_first=True), dtype)


def test_forget_bias_is_folded_into_the_torch_bias_bit_exactly():
    cell = randomised(nr.LSTMCell(3), 2)  # forget_bias=1.0
    _, sd = interop.to_torch_state_dict(cell)
    net = interop.from_torch_state_dict(sd, "LSTM", batch_first=True)
    assert net.cell.forget_bias == 0.0
    x = inputs((2, 6, 2))
    assert_same(nr.dynamic_rnn(net.cell, x, sequence_length=[6, 3]),
                nr.dynamic_rnn(cell, x, sequence_length=[6, 3]))


def test_to_torch_refuses_what_pytorch_cannot_hold():
    def fails(model, match, error=ValueError):
        with pytest.raises(error, match=match):
            interop.to_torch_state_dict(model)

    fails(randomised(nr.LSTMCell(3, use_peepholes=True), 2), "no use_peepholes=True")
    fails(randomised(nr.LSTMCell(3, cell_clip=1.0), 2), "no cell_clip=1.0")
    fails(randomised(nr.LSTMCell(3, num_proj=2, proj_clip=1.0), 2), "proj_clip=1.0")
    fails(randomised(nr.LSTMCell(3, activation="relu"), 2), "activation='relu'")
    fails(randomised(nr.GRUCell(3), 2), "needs GRUCell\\(reset_after=True\\)")
    fails(randomised(nr.GRUCell(3, reset_after=True, activation="relu"), 2), "tanh only")
    fails(randomised(nr.BasicRNNCell(3, activation="sigmoid"), 2), "tanh or relu")
    fails(nr.GRUCell(3, reset_after=True), "no weights yet")
    fails(randomised(nr.MultiRNNCell([nr.LSTMCell(3), nr.LSTMCell(4)]), 2),
          "same sizes in every layer")
    fails(randomised(nr.MultiRNNCell([nr.LSTMCell(3), nr.GRUCell(3, reset_after=True)]), 2),
          "one kind of layer")
    pair = (randomised(nr.MultiRNNCell([nr.GRUCell(3, reset_after=True)] * 1 +
                                       [nr.GRUCell(3, reset_after=True)]), 2),
            randomised(nr.MultiRNNCell([nr.GRUCell(3, reset_after=True),
                                        nr.GRUCell(3, reset_after=True)]), 2))
    fails(pair, "pair of MultiRNNCells")
    fails("lstm", "must be a cell", TypeError)


def test_from_torch_state_dict_reports_bad_input_with_both_shapes():
    sd = torch_state_dict("LSTM", 3, 4, num_layers=2)
    bad = dict(sd, weight_hh_l1=np.zeros((16, 5), F32))
    with pytest.raises(ValueError, match=r"weight_hh_l1 has shape \(16, 5\), expected \(16, 4\)"):
        interop.from_torch_state_dict(bad, "LSTM")
    bad = dict(sd, weight_ih_l1=np.zeros((16, 3), F32))
    with pytest.raises(ValueError, match=r"weight_ih_l1 has shape \(16, 3\), expected \(16, 4\)"):
        interop.from_torch_state_dict(bad, "LSTM")
    with pytest.raises(ValueError, match=r"weight_hh_l0 has shape \(16, 4\), expected \[3 \*"):
        interop.from_torch_state_dict(torch_state_dict("LSTM", 3, 4) | {
            "weight_hh_l0": np.zeros((16, 4), F32)}, "GRU")
    with pytest.raises(ValueError, match="unexpected key 'weight_hh_l0_orig'"):
        interop.from_torch_state_dict(dict(sd, weight_hh_l0_orig=sd["weight_hh_l0"]), "LSTM")
    with pytest.raises(ValueError, match="lacks bias_hh_l1"):
        interop.from_torch_state_dict({k: v for k, v in sd.items() if k != "bias_hh_l1"}, "LSTM")
    with pytest.raises(ValueError, match="mode must be one of"):
        interop.from_torch_state_dict(sd, "lstm")
    with pytest.raises(ValueError, match="only exists in LSTM"):
        interop.from_torch_state_dict(torch_state_dict("LSTM", 3, 4, proj=2), "GRU")
    net = interop.from_torch_state_dict(sd, "LSTM")
    with pytest.raises(ValueError, match=r"shape \(5, 2, 2\): its last dimension must be "
                                         r"input_size = 3"):
        net(np.zeros((5, 2, 2), F32))
    with pytest.raises(ValueError, match=r"h_0 has shape \(1, 2, 4\), expected \(2, 2, 4\)"):
        net(np.zeros((5, 2, 3), F32), hx=(np.zeros((1, 2, 4)), np.zeros((2, 2, 4))))
    with pytest.raises(ValueError, match="pair"):
        net(np.zeros((5, 2, 3), F32), hx=np.zeros((2, 2, 4)))
    with pytest.raises(TypeError, match="from_torch converts"):
        interop.from_torch(object())


# ============================================================== Keras, in plain NumPy
def keras_reference(kind, config, weights, x, lengths=None, initial_state=None):
    """One Keras layer from Keras's documented equations (masked steps keep the state
    and repeat the previous output, or give zeros with zero_output_for_mask)."""
    units = config["units"]
    act = ACT[config.get("activation", "tanh")]
    kernel, recurrent = (np.asarray(w, F64) for w in weights[:2])
    bias = np.asarray(weights[2], F64) if len(weights) > 2 else None
    batch, steps, _ = x.shape
    lengths = np.full(batch, steps) if lengths is None else np.asarray(lengths)
    mask = np.arange(steps)[None, :] < lengths[:, None]
    xs = x.astype(F64)
    if config.get("go_backwards"):
        xs, mask = xs[:, ::-1], mask[:, ::-1]
    if initial_state is None:
        states = [np.zeros((batch, units))] * (2 if kind == "LSTM" else 1)
    else:
        states = [np.asarray(s, F64) for s in initial_state]
    outputs = np.zeros((batch, steps, units))
    previous = np.zeros((batch, units))
    for t in range(steps):
        h = states[0]
        if kind == "LSTM":
            z = xs[:, t] @ kernel + h @ recurrent + (0 if bias is None else bias)
            i, f, c_, o = np.split(z, 4, axis=1)
            c = sigmoid(f) * states[1] + sigmoid(i) * act(c_)
            new = [sigmoid(o) * act(c), c]
        elif kind == "GRU":
            reset_after = config.get("reset_after", True)
            b_in, b_rec = ((bias[0], bias[1]) if reset_after else (bias, np.zeros_like(bias))) \
                if bias is not None else (0, 0)
            xz, xr, xh = np.split(xs[:, t] @ kernel + b_in, 3, axis=1)
            if reset_after:
                rz, rr, rh = np.split(h @ recurrent + b_rec, 3, axis=1)
                z, r = sigmoid(xz + rz), sigmoid(xr + rr)
                hh = act(xh + r * rh)
            else:
                rz, rr, _ = np.split(h @ recurrent, 3, axis=1)
                z, r = sigmoid(xz + rz), sigmoid(xr + rr)
                hh = act(xh + (r * h) @ recurrent[:, 2 * units:])
            new = [z * h + (1 - z) * hh]
        else:
            new = [act(xs[:, t] @ kernel + h @ recurrent + (0 if bias is None else bias))]
        m = mask[:, t:t + 1]
        states = [np.where(m, n, s) for n, s in zip(new, states)]
        fill = 0.0 if config.get("zero_output_for_mask") else previous
        outputs[:, t] = np.where(m, new[0], fill)
        previous = outputs[:, t]
    first = outputs if config.get("return_sequences") else outputs[:, -1]
    return [first] + (states if config.get("return_state") else [])


def keras_weights(kind, depth, units, config, seed=0):
    rng = np.random.default_rng(seed)
    gates = {"LSTM": 4, "GRU": 3, "SimpleRNN": 1}[kind]
    shapes = [(depth, gates * units), (units, gates * units)]
    if config.get("use_bias", True):
        two = kind == "GRU" and config.get("reset_after", True)
        shapes.append((2, gates * units) if two else (gates * units,))
    return [rng.uniform(-0.7, 0.7, s).astype(F32) for s in shapes]


KERAS_CASES = [
    ("LSTM", dict(return_sequences=True, return_state=True)),
    ("LSTM", dict(return_sequences=False, activation="relu", use_bias=False)),
    ("LSTM", dict(return_sequences=True, zero_output_for_mask=True)),
    ("LSTM", dict(return_sequences=True, go_backwards=True, return_state=True)),
    ("GRU", dict(return_sequences=True, return_state=True)),
    ("GRU", dict(return_sequences=True, reset_after=False, return_state=True)),
    ("GRU", dict(return_sequences=False, go_backwards=True, activation="sigmoid")),
    ("SimpleRNN", dict(return_sequences=True, return_state=True, activation="linear")),
    ("SimpleRNN", dict(return_sequences=False, dropout=0.5, recurrent_dropout=0.5,
                       unroll=True, stateful=True)),
]


@pytest.mark.parametrize("kind, options", KERAS_CASES,
                         ids=[f"{k}-{'-'.join(o)}" for k, o in KERAS_CASES])
def test_keras_config_matches_keras_equations(kind, options):
    config = dict(units=3, **options)
    weights = keras_weights(kind, 2, 3, config)
    net = interop.from_keras_config(kind, config, weights)
    x = inputs((3, 5, 2))
    lengths = [5, 2, 0]
    mask = np.arange(5)[None, :] < np.array(lengths)[:, None]

    def ours(*args, **kwargs):
        result = net(*args, **kwargs)
        return result if isinstance(result, list) else [result]

    assert_close(ours(x), keras_reference(kind, config, weights, x), F32, "no mask")
    assert_close(ours(x, mask=mask), keras_reference(kind, config, weights, x, lengths), F32,
                 "mask")
    assert_close(ours(x, sequence_length=lengths),
                 keras_reference(kind, config, weights, x, lengths), F32, "lengths")
    rng = np.random.default_rng(5)
    state = [rng.standard_normal((3, 3)).astype(F32) for _ in range(2 if kind == "LSTM" else 1)]
    assert_close(ours(x, mask=mask, initial_state=state),
                 keras_reference(kind, config, weights, x, lengths, state), F32, "state")


@pytest.mark.parametrize("merge_mode", ["concat", "sum", "mul", "ave", None])
def test_keras_bidirectional_config(merge_mode):
    forward = dict(units=3, return_sequences=True, return_state=True, zero_output_for_mask=True)
    backward = dict(forward, units=2, go_backwards=True) if merge_mode == "concat" else \
        dict(forward, go_backwards=True)
    fw_weights = keras_weights("LSTM", 2, 3, forward, seed=1)
    bw_weights = keras_weights("GRU", 2, backward["units"], backward, seed=2)
    config = {"layer": {"class_name": "LSTM", "config": forward},
              "backward_layer": {"class_name": "GRU", "config": backward},
              "merge_mode": merge_mode}
    net = interop.from_keras_config("Bidirectional", config, fw_weights + bw_weights)
    x = inputs((3, 5, 2))
    lengths = [5, 2, 3]
    fw = keras_reference("LSTM", forward, fw_weights, x, lengths)
    bw = keras_reference("GRU", backward, bw_weights, x, lengths)
    y, y_rev = fw[0], bw[0][:, ::-1]  # Keras reverses the backward layer's sequence back
    merged = {"concat": lambda: [np.concatenate([y, y_rev], -1)], "sum": lambda: [y + y_rev],
              "mul": lambda: [y * y_rev], "ave": lambda: [(y + y_rev) / 2],
              None: lambda: [y, y_rev]}[merge_mode]()
    assert_close(net(x, sequence_length=lengths), merged + fw[1:] + bw[1:], F32)
    assert "merge_mode" in net.describe()


def test_keras_rnn_wrapper_and_default_backward_layer():
    cell = {"class_name": "GRUCell", "config": {"units": 2, "reset_after": False,
                                                "recurrent_activation": "sigmoid"}}
    config = {"cell": cell, "return_sequences": True, "zero_output_for_mask": True}
    weights = keras_weights("GRU", 3, 2, {"reset_after": False})
    wrapped = interop.from_keras_config("RNN", config, weights)
    plain = interop.from_keras_config("GRU", dict(units=2, reset_after=False,
                                                  return_sequences=True,
                                                  zero_output_for_mask=True), weights)
    x = inputs((2, 4, 3))
    assert_same(wrapped(x, sequence_length=[4, 1]), plain(x, sequence_length=[4, 1]))
    bi = interop.from_keras_config("Bidirectional", {"layer": {"class_name": "GRU", "config": dict(
        units=2, reset_after=False, return_sequences=True)}}, weights + weights)
    assert bi.cell_fw.get_weights()[0].shape == (5, 4)


@pytest.mark.parametrize("model_id", ["lstm", "gru", "gru_reset_after", "rnn_relu", "pair",
                                      "stack", "multi"])
def test_ours_to_keras_to_ours_is_exact(model_id):
    if model_id == "lstm":
        model = randomised(nr.LSTMCell(3, forget_bias=0.0, activation="sigmoid"), 2)
    elif model_id == "gru":
        model = randomised(nr.GRUCell(3), 2)
    elif model_id == "gru_reset_after":
        model = randomised(nr.GRUCell(3, reset_after=True), 2)
    elif model_id == "rnn_relu":
        model = randomised(nr.BasicRNNCell(3, activation="relu"), 2)
    elif model_id == "pair":
        model = (randomised(nr.LSTMCell(3, forget_bias=0.0), 2, seed=1),
                 randomised(nr.GRUCell(2, reset_after=True), 2, seed=2))
    elif model_id == "stack":
        model = [(randomised(nr.GRUCell(3), 2, seed=1), randomised(nr.GRUCell(3), 2, seed=2)),
                 (randomised(nr.GRUCell(2), 6, seed=3), randomised(nr.GRUCell(2), 6, seed=4))]
    else:
        model = randomised(nr.MultiRNNCell([nr.GRUCell(3, reset_after=True),
                                            nr.BasicRNNCell(2)]), 2)
    described = interop.to_keras_config(model, return_sequences=True)
    many = isinstance(described, list)
    nets = [interop.from_keras_config(*d) for d in (described if many else [described])]
    back = [c for net in nets for c in net.leaf_cells()]
    cells = [c for layer in interop.network.layers_of(model)
             for c in (layer if isinstance(layer, tuple) else
                       layer.cells if isinstance(layer, nr.MultiRNNCell) else [layer])]
    assert [type(c) for c in back] == [nr.LSTMCell if isinstance(c, nr.LSTMCell) else type(c)
                                       for c in cells]
    for ours, theirs in zip(cells, back):
        assert ours._act == theirs._act
        for a, b in zip(ours.get_weights(), theirs.get_weights()):
            np.testing.assert_array_equal(a, b)
    x = inputs((2, 4, 2))
    if model_id == "stack":
        expected = interop.stack_bidirectional_dynamic_rnn(*zip(*model), x)[0]
        y = x
        for net in nets:
            y = net(y)
        assert_close(y, expected, F32)


def test_lstm_forget_bias_goes_into_the_keras_bias():
    cell = randomised(nr.BasicLSTMCell(3, forget_bias=1.0), 2)
    name, config, weights = interop.to_keras_config(cell, return_sequences=True)
    assert name == "LSTM" and config["unit_forget_bias"] is False
    net = interop.from_keras_config(name, config, weights)
    x = inputs((2, 4, 2))
    np.testing.assert_array_equal(net(x), nr.dynamic_rnn(cell, x)[0])
    np.testing.assert_allclose(keras_reference("LSTM", config, weights, x)[0],
                               nr.dynamic_rnn(cell, x)[0], atol=1e-5)


def test_keras_options_the_converter_cannot_follow_are_named():
    weights = keras_weights("LSTM", 2, 3, {})

    def fails(config, match, kind="LSTM", w=weights):
        with pytest.raises(ValueError, match=match):
            interop.from_keras_config(kind, dict(units=3, **config), w)

    fails(dict(recurrent_activation="hard_sigmoid"), "recurrent_activation='hard_sigmoid'")
    fails(dict(activation="swish"), "activation='swish' is not supported")
    fails(dict(activation={"module": "builtins", "class_name": "function", "config": "my_act"}),
          "activation=.*my_act.*is not supported")
    fails(dict(mystery_option=1), r"option\(s\) \['mystery_option'\] are not supported")
    fails({}, "Keras layer type 'ConvLSTM2D' is not supported", kind="ConvLSTM2D")
    fails({}, "layer type 'LSTMCell' is not supported", kind="LSTMCell")
    fails({}, r"kernel has shape \(2, 12\), expected \(2, 9\)", kind="GRU")
    fails({}, r"recurrent_kernel has shape \(3, 12\), expected \(3, 9\)", kind="GRU",
          w=[np.zeros((2, 9)), np.zeros((3, 12)), np.zeros((2, 9))])
    fails({}, r"expected 3 weight arrays", w=weights[:2])
    fails(dict(use_bias=False), r"expected 2 weight arrays")
    fails({}, r"bias has shape \(9,\), expected \(2, 9\)", kind="GRU",
          w=[np.zeros((2, 9)), np.zeros((3, 9)), np.zeros(9)])
    with pytest.raises(ValueError, match="RNN around a StackedRNNCells"):
        interop.from_keras_config("RNN", {"cell": {"class_name": "StackedRNNCells",
                                                   "config": {}}}, weights)
    with pytest.raises(ValueError, match="merge_mode='max'"):
        interop.from_keras_config("Bidirectional", {"layer": {"class_name": "LSTM", "config": {
            "units": 3}}, "merge_mode": "max"}, weights + weights)
    with pytest.raises(ValueError, match="go_backwards=True is not supported"):
        interop.from_keras_config("Bidirectional", {"layer": {"class_name": "LSTM", "config": {
            "units": 3, "go_backwards": True}}}, weights + weights)
    with pytest.raises(ValueError, match="no use_peepholes=True"):
        interop.to_keras_config(randomised(nr.LSTMCell(3, use_peepholes=True), 2))
    with pytest.raises(ValueError, match="no num_proj=2"):
        interop.to_keras_config(randomised(nr.LSTMCell(3, num_proj=2), 2))


def test_keras_masks_must_be_right_padded():
    net = interop.from_keras_config("GRU", dict(units=3), keras_weights("GRU", 2, 3, {}))
    x = inputs((2, 4, 2))
    with pytest.raises(ValueError, match=r"right-padded.*rows \[1\]"):
        net(x, mask=np.array([[1, 1, 0, 0], [0, 1, 1, 1]], bool))
    with pytest.raises(ValueError, match=r"mask has shape \(4, 2\), expected"):
        net(x, mask=np.ones((4, 2), bool))
    with pytest.raises(ValueError, match="not both"):
        net(x, mask=np.ones((2, 4), bool), sequence_length=[4, 4])
    with pytest.raises(ValueError, match=r"built for 2 features, got 5"):
        net(inputs((2, 4, 5)))
    with pytest.raises(ValueError, match=r"initial_state\[0\] has shape \(2, 4\)"):
        net(x, initial_state=[np.zeros((2, 4))])
    with pytest.raises(ValueError, match="list of 1 arrays"):
        net(x, initial_state=[np.zeros((2, 3))] * 2)


# ============================================================ stacking and the wrapper
def test_stack_bidirectional_dynamic_rnn_is_layer_by_layer():
    fw = [randomised(nr.LSTMCell(3, num_proj=2), 4, seed=1), randomised(nr.GRUCell(2), 5, seed=2)]
    bw = [randomised(nr.GRUCell(3), 4, seed=3), randomised(nr.BasicRNNCell(4), 5, seed=4)]
    x = inputs((3, 6, 4))
    lengths = [6, 1, 0]
    out, states_fw, states_bw = interop.stack_bidirectional_dynamic_rnn(
        fw, bw, x, sequence_length=lengths)
    assert list(fw[1].named_weights())[0] == \
        "stack_bidirectional_rnn/cell_1/bidirectional_rnn/fw/gru_cell/gates/kernel"
    (o1, o2), (s1, s2) = nr.bidirectional_dynamic_rnn(fw[0], bw[0], x, sequence_length=lengths)
    (p1, p2), (t1, t2) = nr.bidirectional_dynamic_rnn(
        fw[1], bw[1], np.concatenate([o1, o2], 2), sequence_length=lengths)
    assert_same((out, states_fw, states_bw), (np.concatenate([p1, p2], 2), (s1, t1), (s2, t2)))
    with pytest.raises(ValueError, match="same length"):
        interop.stack_bidirectional_dynamic_rnn(fw, bw[:1], x)
    with pytest.raises(ValueError, match=r"one state per layer \(2\)"):
        interop.stack_bidirectional_dynamic_rnn(fw, bw, x, initial_states_fw=[None])


def test_converted_network_properties():
    cell = randomised(nr.GRUCell(2), 3)
    net = interop.Converted([cell])
    assert net.cell is cell and not net.bidirectional and net.function == "dynamic_rnn"
    with pytest.raises(ValueError, match="runs in one direction"):
        net.cell_fw  # noqa: B018
    pair = interop.Converted([(cell, randomised(nr.GRUCell(2), 3))])
    with pytest.raises(ValueError, match="bidirectional"):
        pair.cell  # noqa: B018
    stacked = interop.Converted([(randomised(nr.GRUCell(2), 3), randomised(nr.GRUCell(2), 3)),
                                 (randomised(nr.GRUCell(2), 4), randomised(nr.GRUCell(2), 4))])
    assert stacked.function == "stack_bidirectional_dynamic_rnn"
    with pytest.raises(ValueError, match="2 bidirectional layers"):
        stacked.cell_fw  # noqa: B018
    assert "GRUCell(2)" in repr(stacked)
    with pytest.raises(ValueError, match="all cells or all"):
        interop.Converted([cell, (cell, cell)])
    with pytest.raises(ValueError, match="at least one layer"):
        interop.Converted([])
