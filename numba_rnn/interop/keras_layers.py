"""Keras ``LSTM``, ``GRU``, ``SimpleRNN``, ``RNN`` and ``Bidirectional`` layers to numba_rnn
cells, and back. Works with Keras 3 and with tf-keras (Keras 2): only ``get_config()``,
``get_weights()`` and, for ``Bidirectional``, ``forward_layer``/``backward_layer`` are used.

Keras weights (D = input depth, H = units) and their place in the cells here:

- ``LSTM``: kernel [D, 4H] and recurrent_kernel [H, 4H] with gates i, f, c, o, bias [4H]
  -> ``LSTMCell(H, forget_bias=0.0)`` with kernel [D + H, 4H] = [kernel; recurrent_kernel]
  reordered to i, j = c, f, o. ``unit_forget_bias`` only initialises the bias.
- ``GRU``: kernel [D, 3H] and recurrent_kernel [H, 3H] with gates z, r, h ->
  ``GRUCell(H, reset_after=...)``: r and z (our u) into gates/kernel, h into
  candidate/kernel. ``reset_after=True``: bias [2, 3H] = (input bias, recurrent bias); the
  r and z rows of both are summed into gates/bias, the h rows give candidate/bias and
  candidate/recurrent_bias. ``reset_after=False``: bias [3H], TensorFlow's GRUCell form.
- ``SimpleRNN``: kernel [D, H], recurrent_kernel [H, H], bias [H] -> ``BasicRNNCell(H)``.

Inference-only options (dropout, recurrent_dropout, unroll, implementation, initializers,
regularizers, constraints, stateful) change nothing here. ``activation`` may be tanh,
sigmoid, relu or linear; ``recurrent_activation`` must be sigmoid (not hard_sigmoid).
"""
import numpy as np

from ..cells import BasicRNNCell, GRUCell, LSTMCell, LSTMStateTuple, MultiRNNCell
from ..rnn import bidirectional_dynamic_rnn, dynamic_rnn, reverse_sequence
from .network import (
    Converted,
    expect_shape,
    float_array,
    layers_of,
    lengths_from_mask,
    to_numpy,
    weights_dtype,
)

KINDS = {"LSTM": "LSTM", "LSTMCell": "LSTM", "GRU": "GRU", "GRUCell": "GRU",
         "SimpleRNN": "SimpleRNN", "SimpleRNNCell": "SimpleRNN"}
ACTIVATIONS = ("tanh", "sigmoid", "relu", "linear")
MERGE_MODES = ("concat", "sum", "mul", "ave", None)
LSTM_ORDER = [0, 2, 1, 3]  # Keras i, f, c, o <-> ours i, j, f, o (its own inverse)
# Options that do not change what a trained layer computes at inference.
IGNORED = {"name", "trainable", "dtype", "kernel_initializer", "recurrent_initializer",
           "bias_initializer", "unit_forget_bias", "kernel_regularizer", "recurrent_regularizer",
           "bias_regularizer", "activity_regularizer", "kernel_constraint",
           "recurrent_constraint", "bias_constraint", "dropout", "recurrent_dropout", "unroll",
           "implementation", "seed", "stateful", "use_cudnn", "build_config", "batch_input_shape",
           "batch_shape", "input_shape", "input_dim", "input_length", "registered_name",
           "module", "weights"}
HANDLED = {"units", "activation", "recurrent_activation", "use_bias", "reset_after",
           "return_sequences", "return_state", "go_backwards", "time_major",
           "zero_output_for_mask", "cell", "num_constants"}


def _blocks(array, order, size, axis=-1):
    return np.concatenate([np.take(array, np.arange(k * size, (k + 1) * size), axis=axis)
                           for k in order], axis=axis)


# ----------------------------------------------------------------------- Keras -> us
def from_keras(layer, dtype=None):
    """Convert a built Keras ``LSTM``, ``GRU`` (both ``reset_after`` forms),
    ``SimpleRNN``, ``RNN`` (around one LSTMCell, GRUCell or SimpleRNNCell) or
    ``Bidirectional`` layer to a ``KerasRNN``, which called like the layer returns its
    outputs. Raises for an unsupported layer type or option, naming it."""
    kind = type(layer).__name__
    if not hasattr(layer, "get_config") or not hasattr(layer, "get_weights"):
        raise TypeError(f"from_keras takes a Keras layer, got {kind}")
    if hasattr(layer, "layers"):
        raise TypeError(f"from_keras converts one recurrent layer, got a {kind} model: convert "
                        f"its recurrent layers one by one (from_keras(model.layers[i]))")
    if kind == "Bidirectional":
        forward, backward = layer.forward_layer, layer.backward_layer
        parts = []
        for part in (forward, backward):
            parts.append((_class_name(part), _layer_config(part), _weights(part)))
        return _bidirectional(parts, getattr(layer, "merge_mode", "concat"), dtype,
                              f"keras Bidirectional({_class_name(forward)})")
    return from_keras_config(kind, _layer_config(layer), _weights(layer), dtype=dtype)


def _class_name(layer):
    return type(layer).__name__


def _layer_config(layer):
    config = dict(layer.get_config())
    if "zero_output_for_mask" not in config and hasattr(layer, "zero_output_for_mask"):
        config["zero_output_for_mask"] = bool(layer.zero_output_for_mask)  # tf-keras
    if type(layer).__name__ == "RNN":
        cell = layer.cell
        config["cell"] = {"class_name": type(cell).__name__, "config": cell.get_config()}
    return config


def _weights(layer):
    weights = [to_numpy(w) for w in layer.get_weights()]
    if not weights:
        raise ValueError(f"Keras layer {layer.name!r} has no weights yet: build it or call it "
                         f"on inputs first")
    return weights


def from_keras_config(class_name, config, weights, dtype=None):
    """Convert a Keras layer given as its class name, ``get_config()`` dict and
    ``get_weights()`` list, without Keras. ``Bidirectional`` configs hold the forward
    layer under "layer" (and optionally "backward_layer"), and its weights are the
    forward layer's followed by the backward layer's."""
    weights = [to_numpy(w, "weight") for w in weights]
    if class_name == "Bidirectional":
        forward = _sub_config(config, "layer")
        backward = _sub_config(config, "backward_layer") if config.get("backward_layer") \
            else (forward[0], dict(forward[1], go_backwards=not forward[1].get("go_backwards")))
        count = _weight_count(*forward)
        parts = [(forward[0], forward[1], weights[:count]),
                 (backward[0], backward[1], weights[count:])]
        unknown = set(config) - {"name", "trainable", "dtype", "layer", "backward_layer",
                                 "merge_mode", "build_config", "registered_name", "module"}
        if unknown:
            raise ValueError(f"Keras Bidirectional option(s) {sorted(unknown)} are not supported")
        return _bidirectional(parts, config.get("merge_mode", "concat"), dtype,
                              f"keras Bidirectional({forward[0]})")
    cell, options = _rnn_layer(class_name, config, weights, dtype, f"Keras {class_name}")
    return KerasRNN([cell], options, source=f"keras {class_name}({cell.num_units})")


def _sub_config(config, key):
    sub = config.get(key)
    if not isinstance(sub, dict) or "class_name" not in sub or "config" not in sub:
        raise ValueError(f"Bidirectional config entry {key!r} must be "
                         f"{{'class_name': ..., 'config': {{...}}}}, got {sub!r}")
    return sub["class_name"], dict(sub["config"])


def _weight_count(class_name, config):
    if class_name == "RNN":
        cell = config.get("cell") or {}
        config = dict(cell.get("config") or {})
    return 3 if config.get("use_bias", True) else 2


def _bidirectional(parts, merge_mode, dtype, source):
    if merge_mode not in MERGE_MODES:
        raise ValueError(f"Keras Bidirectional merge_mode={merge_mode!r} is not supported; "
                         f"expected one of {MERGE_MODES}")
    (fw_class, fw_config, fw_weights), (bw_class, bw_config, bw_weights) = parts
    if fw_config.get("go_backwards"):
        raise ValueError("Keras Bidirectional around a layer with go_backwards=True is not "
                         "supported (its 'forward' layer would read backwards)")
    if not bw_config.get("go_backwards"):
        raise ValueError("the backward layer of a Keras Bidirectional must have "
                         "go_backwards=True")
    dtype = weights_dtype(fw_weights + bw_weights, dtype)
    fw, options = _rnn_layer(fw_class, fw_config, fw_weights, dtype, "the forward layer")
    bw, bw_options = _rnn_layer(bw_class, bw_config, bw_weights, dtype, "the backward layer")
    for key in ("return_sequences", "return_state", "time_major"):
        if options[key] != bw_options[key]:
            raise ValueError(f"the forward and backward layers disagree on {key} "
                             f"({options[key]} and {bw_options[key]})")
    # Keras's Bidirectional forces zero_output_for_mask = return_sequences on both layers.
    options.update(merge_mode=merge_mode, go_backwards=False,
                   zero_output_for_mask=options["return_sequences"])
    return KerasRNN([(fw, bw)], options, source=source)


def _activation(config, key, where, default):
    value = config.get(key, default)
    if value is None:
        return "linear"
    if isinstance(value, dict) and value.get("class_name") in ACTIVATIONS:
        value = value["class_name"]
    if not isinstance(value, str) or value not in ACTIVATIONS:
        raise ValueError(f"{where}: {key}={value!r} is not supported; numba_rnn cells compute "
                         f"{', '.join(ACTIVATIONS)}")
    return value


def _rnn_layer(class_name, config, weights, dtype, where):
    """(cell with weights, output options) for one Keras recurrent layer."""
    config = dict(config)
    wrapped = class_name == "RNN"
    if wrapped:
        cell = config.get("cell")
        if not isinstance(cell, dict) or cell.get("class_name") not in KINDS:
            name = cell.get("class_name") if isinstance(cell, dict) else type(cell).__name__
            raise ValueError(f"{where}: a Keras RNN around a {name} is not supported; RNN "
                             f"layers must wrap one LSTMCell, GRUCell or SimpleRNNCell")
        if config.get("num_constants"):
            raise ValueError(f"{where}: RNN constants (num_constants) are not supported")
        layer_options = {k: v for k, v in config.items() if k != "cell"}
        class_name, config = cell["class_name"], dict(cell["config"], **layer_options)
    if class_name not in KINDS or class_name.endswith("Cell") != wrapped:
        raise ValueError(f"Keras layer type {class_name!r} is not supported; from_keras takes "
                         f"LSTM, GRU, SimpleRNN, RNN and Bidirectional layers")
    unknown = sorted(set(config) - IGNORED - HANDLED)
    if unknown:
        raise ValueError(f"{where}: Keras option(s) {unknown} are not supported (this converter "
                         f"does not know what they change)")
    kind = KINDS[class_name]
    units = config.get("units")
    if isinstance(units, bool) or not isinstance(units, int) or units <= 0:
        raise ValueError(f"{where}: units must be a positive integer, got {units!r}")
    activation = _activation(config, "activation", where, "tanh")
    if kind != "SimpleRNN":
        _activation(config, "recurrent_activation", where, "sigmoid")
        if config.get("recurrent_activation", "sigmoid") != "sigmoid":
            raise ValueError(f"{where}: recurrent_activation="
                             f"{config['recurrent_activation']!r} is not supported; numba_rnn "
                             f"gates use sigmoid")
    use_bias = config.get("use_bias", True)
    reset_after = bool(config.get("reset_after", True)) if kind == "GRU" else None
    count = 3 if use_bias else 2
    if len(weights) != count:
        raise ValueError(f"{where}: expected {count} weight arrays (kernel, recurrent_kernel"
                         f"{', bias' if use_bias else ''}), got {len(weights)}")
    dtype = weights_dtype(weights, dtype)
    gates = {"LSTM": 4, "GRU": 3, "SimpleRNN": 1}[kind]
    h = units
    kernel = weights[0]
    if kernel.ndim != 2:
        raise ValueError(f"{where}: kernel has shape {kernel.shape}, expected 2-D "
                         f"(input_dim, {gates * h})")
    expect_shape(kernel, (kernel.shape[0], gates * h), f"{where}: kernel", f"{gates} x units")
    kernel = float_array(kernel, dtype, "kernel")
    recurrent = float_array(expect_shape(weights[1], (h, gates * h),
                                         f"{where}: recurrent_kernel", f"units, {gates} x units"),
                            dtype, "recurrent_kernel")
    bias_shape = (2, gates * h) if kind == "GRU" and reset_after else (gates * h,)
    if use_bias:
        bias = float_array(expect_shape(weights[2], bias_shape, f"{where}: bias"), dtype, "bias")
    else:
        bias = np.zeros(bias_shape, dtype)
    if kind == "LSTM":
        cell = LSTMCell(h, forget_bias=0.0, activation=activation, dtype=dtype)
        cell.set_weights([np.concatenate([_blocks(kernel, LSTM_ORDER, h),
                                          _blocks(recurrent, LSTM_ORDER, h)]),
                          _blocks(bias, LSTM_ORDER, h)])
    elif kind == "GRU":
        cell = GRUCell(h, reset_after=reset_after, activation=activation, dtype=dtype)
        rz, cand = [1, 0], slice(2 * h, 3 * h)  # Keras z, r, h -> ours r, u
        gates_kernel = np.concatenate([_blocks(kernel, rz, h), _blocks(recurrent, rz, h)])
        candidate_kernel = np.concatenate([kernel[:, cand], recurrent[:, cand]])
        if reset_after:
            cell.set_weights([gates_kernel, _blocks(bias[0], rz, h) + _blocks(bias[1], rz, h),
                              candidate_kernel, bias[0, cand], bias[1, cand]])
        else:
            cell.set_weights([gates_kernel, _blocks(bias, rz, h), candidate_kernel, bias[cand]])
    else:
        cell = BasicRNNCell(h, activation=activation, dtype=dtype)
        cell.set_weights([np.concatenate([kernel, recurrent]), bias])
    options = dict(kind=kind, return_sequences=bool(config.get("return_sequences", False)),
                   return_state=bool(config.get("return_state", False)),
                   go_backwards=bool(config.get("go_backwards", False)),
                   time_major=bool(config.get("time_major", False)),
                   zero_output_for_mask=bool(config.get("zero_output_for_mask", False)),
                   merge_mode=None, stateful=bool(config.get("stateful", False)))
    return cell, options


class KerasRNN(Converted):
    """A Keras recurrent layer converted: call it like the layer.

    ``net(inputs, mask=None, initial_state=None, sequence_length=None)`` returns what the
    layer returns, as NumPy arrays: the output sequence [B, T, units] with
    ``return_sequences`` or the last output [B, units] (for ``Bidirectional`` merged by
    ``merge_mode``, a list of both without one), followed with ``return_state`` by the
    final states (``h, c`` for LSTM, ``h`` otherwise; forward then backward). A mask
    must be right-padded (``sequence_length`` is the same information); at masked steps
    the outputs are what Keras gives: zeros with ``zero_output_for_mask`` (set by
    ``Bidirectional``), else the last valid output repeated. ``initial_state`` is the
    list Keras takes. ``run`` is the numba_rnn call underneath.
    """

    framework = "keras"

    def __init__(self, layers, options, source):
        super().__init__(layers, time_major=options["time_major"], source=source)
        self.options = dict(options)
        for key in ("kind", "return_sequences", "return_state", "go_backwards", "merge_mode",
                    "zero_output_for_mask"):
            setattr(self, key, options[key])

    @property
    def dtype(self):
        return self.leaf_cells()[0].dtype

    def run(self, inputs, sequence_length=None, initial_state=None, parallel_iterations=None):
        if self.go_backwards and not self.bidirectional:
            raise ValueError("this layer has go_backwards=True: call it (net(x, ...)) for "
                             "Keras's outputs, or run net.cell over reversed inputs")
        return super().run(inputs, sequence_length, initial_state, parallel_iterations)

    def __call__(self, inputs, mask=None, initial_state=None, sequence_length=None):
        x = to_numpy(inputs, "inputs")
        if x.ndim != 3:
            raise ValueError(f"inputs must be 3-D [batch, time, features], got shape {x.shape}")
        x = float_array(x, self.dtype, "inputs")
        if self.time_major:
            x = np.moveaxis(x, 0, 1)  # work batch-major, give time-major back
        batch, steps, depth = x.shape
        expected_depth = self.leaf_cells()[0].input_depth
        if depth != expected_depth:
            raise ValueError(f"inputs have shape {np.shape(inputs)}: the layer was built for "
                             f"{expected_depth} features, got {depth}")
        if mask is not None and sequence_length is not None:
            raise ValueError("give mask or sequence_length, not both")
        if mask is not None:
            mask = to_numpy(mask, "mask")
            lengths = lengths_from_mask(mask.T if self.time_major else mask, batch, steps)
        elif sequence_length is not None:
            lengths = np.asarray(sequence_length, dtype=np.int64)
        else:
            lengths = None
        states = self._initial_states(initial_state, batch)
        if self.bidirectional:
            results = self._bidirectional(x, lengths, states)
        else:
            results = self._one_direction(x, lengths, states)
        if self.time_major and self.return_sequences:
            count = 2 if self.bidirectional and self.merge_mode is None else 1
            results = [np.ascontiguousarray(np.moveaxis(r, 0, 1)) if i < count else r
                       for i, r in enumerate(results)]
        if self.return_state:
            return results
        return results[0] if not (self.bidirectional and self.merge_mode is None) \
            else results[:2]

    # -------------------------------------------------------------- internals
    def _initial_states(self, initial_state, batch):
        """Keras's list of initial states as one numba_rnn state per direction."""
        if initial_state is None:
            return None
        states = list(initial_state) if isinstance(initial_state, (list, tuple)) \
            else [initial_state]
        cells = self.leaf_cells()
        counts = [2 if isinstance(cell, LSTMCell) else 1 for cell in cells]
        if len(states) != sum(counts):
            names = " + ".join("[h, c]" if n == 2 else "[h]" for n in counts)
            raise ValueError(f"initial_state must be a list of {sum(counts)} arrays ({names}), "
                             f"got {len(states)}")
        per_direction, i = [], 0
        for cell, count in zip(cells, counts):
            arrays = []
            for j in range(count):
                array = float_array(states[i + j], self.dtype, f"initial_state[{i + j}]")
                arrays.append(expect_shape(array, (batch, cell.num_units),
                                           f"initial_state[{i + j}]", "batch, units"))
            per_direction.append(LSTMStateTuple(arrays[1], arrays[0]) if count == 2
                                 else arrays[0])
            i += count
        return per_direction

    @staticmethod
    def _final(state):
        return [state.h, state.c] if isinstance(state, LSTMStateTuple) else [state]

    @staticmethod
    def _last_output(state, lengths):
        h = state.h if isinstance(state, LSTMStateTuple) else state
        if lengths is None:
            return h
        return np.where((lengths > 0)[:, None], h, 0).astype(h.dtype)  # all masked: zeros

    def _one_direction(self, x, lengths, states):
        cell = self.layers[0]
        state = None if states is None else states[0]
        steps = x.shape[1]
        full = np.full(x.shape[0], steps, np.int64) if lengths is None else lengths
        if self.go_backwards:
            x = reverse_sequence(x, full, 1)
        outputs, final = dynamic_rnn(cell, x, sequence_length=lengths, initial_state=state)
        if self.go_backwards:
            if lengths is not None:
                # Keras reverses the padded sequence: the padding comes first (masked,
                # zeros) and the valid steps after it.
                shift = steps - lengths
                t = np.arange(steps)[None, :]
                source = t - shift[:, None]
                valid = source >= 0
                gathered = np.take_along_axis(outputs, np.clip(source, 0, None)[:, :, None], 1)
                outputs = np.where(valid[:, :, None], gathered, 0).astype(outputs.dtype)
        elif lengths is not None and not self.zero_output_for_mask:
            outputs = _repeat_last(outputs, lengths)
        first = outputs if self.return_sequences else self._last_output(final, lengths)
        return [first] + self._final(final)

    def _bidirectional(self, x, lengths, states):
        cell_fw, cell_bw = self.layers[0]
        fw = bw = None
        if states is not None:
            fw, bw = states
        (out_fw, out_bw), (state_fw, state_bw) = bidirectional_dynamic_rnn(
            cell_fw, cell_bw, x, sequence_length=lengths, initial_state_fw=fw,
            initial_state_bw=bw)
        if self.return_sequences:
            if lengths is not None and not self.zero_output_for_mask:
                out_fw = _repeat_last(out_fw, lengths)
            y, y_rev = out_fw, out_bw
        else:
            y, y_rev = self._last_output(state_fw, lengths), self._last_output(state_bw, lengths)
        mode = self.merge_mode
        if mode == "concat":
            merged = [np.concatenate([y, y_rev], axis=-1)]
        elif mode == "sum":
            merged = [y + y_rev]
        elif mode == "mul":
            merged = [y * y_rev]
        elif mode == "ave":
            merged = [(y + y_rev) / y.dtype.type(2)]
        else:
            merged = [y, y_rev]
        return merged + self._final(state_fw) + self._final(state_bw)

    def _mapping_lines(self):
        lines = ["Keras inputs are [batch, time, features]: numba_rnn's default layout"
                 + (" (time_major=True layers: [time, batch, features])." if self.time_major
                    else ".")]
        if self.return_sequences:
            lines.append("return_sequences=True: the output is numba_rnn's outputs; at masked "
                         "steps Keras gives " + ("zeros, as numba_rnn does."
                                                 if self.zero_output_for_mask else
                                                 "the last valid output again (numba_rnn: "
                                                 "zeros)."))
        else:
            lines.append("return_sequences=False: the output is the final state's h (the last "
                         "valid step's output), not outputs[:, -1].")
        lines.append("A mask must be right-padded: pass mask.sum(axis=1) as sequence_length.")
        if any(isinstance(cell, LSTMCell) for cell in self.leaf_cells()):
            lines.append("States: a Keras LSTM's [h, c] are numba_rnn's LSTMStateTuple(c, h) "
                         "(note the order).")
        if self.go_backwards:
            lines.append("go_backwards=True: run net.cell on each sequence reversed within its "
                         "length (x[:, ::-1] without lengths); Keras reverses the whole padded "
                         "sequence, so its outputs come reversed, padding first.")
        if self.bidirectional:
            lines.append(f"merge_mode={self.merge_mode!r} combines out_fw and out_bw; states "
                         f"are forward then backward.")
        lines.append("net(x, mask=None, initial_state=None, sequence_length=None) does all of "
                     "this and returns what the layer returns.")
        return lines


def _repeat_last(outputs, lengths):
    """Keras without zero_output_for_mask: masked steps repeat the last valid output."""
    steps = outputs.shape[1]
    t = np.arange(steps)[None, :]
    source = np.minimum(t, np.maximum(lengths[:, None] - 1, 0))
    repeated = np.take_along_axis(outputs, source[:, :, None], 1)
    return np.where((lengths > 0)[:, None, None], repeated, 0).astype(outputs.dtype)


# ----------------------------------------------------------------------- us -> Keras
def to_keras_config(model, return_sequences=True, return_state=False, merge_mode="concat"):
    """Keras layer description(s) holding ``model``'s weights; no Keras needed.

    ``model``: a cell -> one layer; a ``(cell_fw, cell_bw)`` pair -> a ``Bidirectional``
    layer; a ``MultiRNNCell`` or a list of layers -> a list of layers to stack (all but
    the last return sequences; stacked pairs are concatenated, as
    ``stack_bidirectional_dynamic_rnn`` does). Cells: ``LSTMCell``/``BasicLSTMCell``
    without peepholes, clipping or projection (``forget_bias`` is added to the f bias),
    ``GRUCell`` (either ``reset_after``), ``BasicRNNCell``. Each description is
    ``(class_name, config, weights)`` for ``getattr(keras.layers, class_name)(**config)``
    and ``layer.set_weights(weights)``; a Bidirectional config holds "layer" and
    "backward_layer" as ``{"class_name", "config"}`` dicts.
    """
    if merge_mode not in MERGE_MODES:
        raise ValueError(f"merge_mode must be one of {MERGE_MODES}, got {merge_mode!r}")
    single = not isinstance(model, (list, MultiRNNCell, Converted))
    layers = layers_of(model)
    if len(layers) == 1 and isinstance(layers[0], MultiRNNCell):
        layers = list(layers[0].cells)
        single = False
    if isinstance(model, Converted) and len(layers) == 1:
        single = True
    described = []
    for i, layer in enumerate(layers):
        last = i == len(layers) - 1
        sequences = return_sequences if last else True
        state = return_state if last else False
        if isinstance(layer, tuple):
            parts = [_keras_layer(cell, sequences, state, backwards, f"layer {i} {d}")
                     for cell, backwards, d in zip(layer, (False, True), ("fw", "bw"))]
            config = {"layer": {"class_name": parts[0][0], "config": parts[0][1]},
                      "backward_layer": {"class_name": parts[1][0], "config": parts[1][1]},
                      "merge_mode": merge_mode if last else "concat"}
            described.append(("Bidirectional", config, parts[0][2] + parts[1][2]))
        else:
            if isinstance(layer, MultiRNNCell):
                raise ValueError(f"layer {i} is a MultiRNNCell inside a list: flatten it")
            described.append(_keras_layer(layer, sequences, state, False, f"layer {i}"))
    return described[0] if single else described


def _keras_layer(cell, return_sequences, return_state, go_backwards, where):
    if not cell.built:
        raise ValueError(f"{where}: cell {cell.name!r} has no weights yet: build or run it first")
    act = {0: "tanh", 1: "sigmoid", 2: "relu", 3: "linear"}[cell._act]
    w, d, h = cell._weights, cell.input_depth, cell.num_units
    config = dict(units=h, activation=act, use_bias=True, return_sequences=return_sequences,
                  return_state=return_state, go_backwards=go_backwards)
    if cell.dtype == np.float64:
        config["dtype"] = "float64"
    if isinstance(cell, LSTMCell):
        problems = [name for name, ok in (("use_peepholes", not cell.use_peepholes),
                                          ("cell_clip", cell.cell_clip is None),
                                          ("num_proj", cell.num_proj is None)) if not ok]
        if problems:
            raise ValueError(f"{where}: Keras LSTM layers have no "
                             + ", ".join(f"{p}={getattr(cell, p)!r}" for p in problems))
        bias = w["bias"].copy()
        bias[2 * h:3 * h] += cell.dtype.type(cell.forget_bias)
        config.update(recurrent_activation="sigmoid", unit_forget_bias=False)
        return "LSTM", config, [_blocks(w["kernel"][:d], LSTM_ORDER, h),
                                _blocks(w["kernel"][d:], LSTM_ORDER, h),
                                _blocks(bias, LSTM_ORDER, h)]
    if isinstance(cell, GRUCell):
        zr = [1, 0]  # ours r, u -> Keras z, r
        gates, candidate = w["gates/kernel"], w["candidate/kernel"]
        kernel = np.concatenate([_blocks(gates[:d], zr, h), candidate[:d]], axis=1)
        recurrent = np.concatenate([_blocks(gates[d:], zr, h), candidate[d:]], axis=1)
        input_bias = np.concatenate([_blocks(w["gates/bias"], zr, h), w["candidate/bias"]])
        if cell.reset_after:
            bias = np.stack([input_bias, np.concatenate([np.zeros(2 * h, cell.dtype),
                                                         w["candidate/recurrent_bias"]])])
        else:
            bias = input_bias
        config.update(recurrent_activation="sigmoid", reset_after=cell.reset_after)
        return "GRU", config, [kernel, recurrent, bias]
    if isinstance(cell, BasicRNNCell):
        return "SimpleRNN", config, [w["kernel"][:d].copy(), w["kernel"][d:].copy(),
                                     w["bias"].copy()]
    raise TypeError(f"{where}: {type(cell).__name__} has no Keras counterpart")


def to_keras(model, return_sequences=True, return_state=False, merge_mode="concat",
             keras=None):
    """Keras layer(s) holding ``model``'s weights, built for its input depth: ``model``
    as for ``to_keras_config`` (a list of layers for several layers). ``keras`` is the
    Keras module to use (default ``import keras``; pass ``tf_keras`` for Keras 2)."""
    described = to_keras_config(model, return_sequences, return_state, merge_mode)
    if keras is None:
        try:
            import keras
        except ImportError:
            raise ImportError("to_keras needs Keras (or pass keras=tf_keras); "
                              "to_keras_config does not") from None
    many = isinstance(described, list)
    built = []
    depth = _input_depth(layers_of(model))
    for class_name, config, weights in (described if many else [described]):
        if class_name == "Bidirectional":
            fw = getattr(keras.layers, config["layer"]["class_name"])(**config["layer"]["config"])
            bw = getattr(keras.layers, config["backward_layer"]["class_name"])(
                **config["backward_layer"]["config"])
            layer = keras.layers.Bidirectional(fw, backward_layer=bw,
                                               merge_mode=config["merge_mode"])
            out = fw.units + bw.units
        else:
            layer = getattr(keras.layers, class_name)(**config)
            out = layer.units
        layer.build((None, None, depth))
        layer.set_weights(weights)
        built.append(layer)
        depth = out
    return built if many else built[0]


def _input_depth(layers):
    first = layers[0]
    first = first[0] if isinstance(first, tuple) else first
    return first.input_depth
