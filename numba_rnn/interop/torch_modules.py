"""PyTorch ``nn.LSTM``, ``nn.GRU`` and ``nn.RNN`` to numba_rnn cells, and back.

Layout of a PyTorch module (per layer ``l``, suffix ``_reverse`` for the backward direction;
G = 4 for LSTM, 3 for GRU, 1 for RNN; H = hidden_size; P = proj_size or H):
``weight_ih_l{l}`` [G*H, D_l], ``weight_hh_l{l}`` [G*H, P], ``bias_ih_l{l}`` and
``bias_hh_l{l}`` [G*H], and with ``proj_size`` ``weight_hr_l{l}`` [P, H]. D_0 is
``input_size``; a higher layer reads P (one direction) or 2P (bidirectional) features.

How the gates map onto the TensorFlow layout of the cells here (``W.T`` = transposed):

- LSTM, gates i, f, g, o -> ``LSTMCell(H, num_proj=P, forget_bias=0.0)``: kernel
  [D + P, 4H] = [W_ih.T; W_hh.T] with columns reordered to i, j = g, f, o; bias =
  b_ih + b_hh in the same order; projection/kernel = W_hr.T.
- GRU, gates r, z, n -> ``GRUCell(H, reset_after=True)``: gates/kernel = the r and z
  rows (our u is PyTorch's z: both give h = z * h_prev + (1 - z) * n), gates/bias =
  b_ih + b_hh of those rows, candidate/kernel = the n rows, candidate/bias = b_in,
  candidate/recurrent_bias = b_hn (inside the reset product, as in PyTorch).
- RNN -> ``BasicRNNCell(H, activation="tanh" or "relu")``: kernel = [W_ih.T; W_hh.T],
  bias = b_ih + b_hh.

Going back (``to_torch``), the bias goes to ``bias_ih`` (with the LSTM's forget_bias added
to its f rows) and ``bias_hh`` is zero, except the GRU's b_hn.
"""
import re

import numpy as np

from ..cells import BasicRNNCell, GRUCell, LSTMCell, LSTMStateTuple, MultiRNNCell
from ..rnn import dynamic_rnn
from .network import (
    Converted,
    expect_shape,
    float_array,
    layers_of,
    stack_bidirectional_dynamic_rnn,
    to_numpy,
    weights_dtype,
)

GATES = {"LSTM": 4, "GRU": 3, "RNN_TANH": 1, "RNN_RELU": 1}
LSTM_ORDER = [0, 2, 1, 3]  # PyTorch i, f, g, o <-> ours i, j, f, o (its own inverse)
_KEY = re.compile(r"^(weight_ih|weight_hh|bias_ih|bias_hh|weight_hr)_l(\d+)(_reverse)?$")


def _blocks(array, order, size, axis=0):
    return np.concatenate([np.take(array, np.arange(k * size, (k + 1) * size), axis=axis)
                           for k in order], axis=axis)


# --------------------------------------------------------------------- PyTorch -> us
def from_torch(module, dtype=None):
    """Convert a PyTorch ``nn.LSTM``, ``nn.GRU`` or ``nn.RNN`` (any ``num_layers``,
    ``bidirectional``, ``proj_size``, ``bias``, ``batch_first``) to a ``TorchRNN``.

    ``TorchRNN(x, hx=None, lengths=None)`` then returns what the module returns, as
    NumPy arrays in the module's layout (a ``PackedSequence`` input gives a
    ``PackedSequence`` output). ``dtype`` defaults to the module's (float32 unless
    float64). Dropout between layers only acts in training and is ignored.
    """
    kind = type(module).__name__
    mode = getattr(module, "mode", None)
    if mode not in GATES or not hasattr(module, "state_dict"):
        hint = (" (a single-step cell: wrap its weights in nn." + kind[:-4] + " or use "
                "from_torch_state_dict)" if kind in ("LSTMCell", "GRUCell", "RNNCell") else "")
        raise TypeError(f"from_torch converts torch.nn.LSTM, nn.GRU and nn.RNN modules, got "
                        f"{kind}{hint}")
    state = {key: to_numpy(value, key) for key, value in module.state_dict().items()}
    net = from_torch_state_dict(state, mode, batch_first=bool(module.batch_first), dtype=dtype,
                                source=_module_text(module))
    for attribute, value in (("input_size", net.input_size), ("hidden_size", net.hidden_size),
                             ("num_layers", len(net.layers)),
                             ("bidirectional", net.bidirectional),
                             ("proj_size", net.proj_size)):
        if getattr(module, attribute, value) != value:
            raise ValueError(f"{kind}.{attribute} is {getattr(module, attribute)!r} but its "
                             f"weights give {value!r}")
    return net


def _module_text(module):
    options = [f"{module.input_size}", f"{module.hidden_size}"]
    for name, default in (("num_layers", 1), ("bias", True), ("batch_first", False),
                          ("bidirectional", False), ("proj_size", 0), ("nonlinearity", "tanh")):
        value = getattr(module, name, default)
        if value != default:
            options.append(f"{name}={value!r}")
    return f"torch.nn.{type(module).__name__}({', '.join(options)})"


def from_torch_state_dict(state_dict, mode, batch_first=False, dtype=None, source=None):
    """Convert the ``state_dict()`` of an ``nn.LSTM``/``nn.GRU``/``nn.RNN`` (tensors or
    NumPy arrays) without PyTorch. ``mode`` is the module's ``mode`` attribute: "LSTM",
    "GRU", "RNN_TANH" or "RNN_RELU". Sizes, layers, directions, biases and ``proj_size``
    are read from the keys and shapes, which are all checked."""
    if mode not in GATES:
        raise ValueError(f"mode must be one of {sorted(GATES)} (the module's .mode), got "
                         f"{mode!r}")
    weights = {}
    for key, value in dict(state_dict).items():
        match = _KEY.match(key)
        if match is None:
            raise ValueError(f"unexpected key {key!r} in the state_dict of a torch {mode} "
                             f"module (weight norm or other parametrizations are not supported)")
        name, layer, reverse = match.group(1), int(match.group(2)), bool(match.group(3))
        weights[(layer, reverse, name)] = to_numpy(value, key)
    if not weights:
        raise ValueError("the state_dict is empty")
    num_layers = 1 + max(layer for layer, _, _ in weights)
    bidirectional = any(reverse for _, reverse, _ in weights)
    directions = (False, True) if bidirectional else (False,)
    has_bias = any(name.startswith("bias") for _, _, name in weights)
    has_proj = any(name == "weight_hr" for _, _, name in weights)
    if has_proj and mode != "LSTM":
        raise ValueError(f"weight_hr (proj_size) only exists in LSTM modules, got mode {mode!r}")
    needed = ["weight_ih", "weight_hh"] + (["bias_ih", "bias_hh"] if has_bias else []) + \
        (["weight_hr"] if has_proj else [])
    expected_keys = {(layer, reverse, name) for layer in range(num_layers)
                     for reverse in directions for name in needed}
    missing = sorted(expected_keys - set(weights))
    if missing:
        layer, reverse, name = missing[0]
        raise ValueError(f"the state_dict lacks {name}_l{layer}{'_reverse' if reverse else ''} "
                         f"({len(missing)} keys missing in all)")
    gates = GATES[mode]
    w_hh = weights[(0, False, "weight_hh")]
    if w_hh.ndim != 2 or w_hh.shape[0] % gates:
        raise ValueError(f"weight_hh_l0 has shape {w_hh.shape}, expected [{gates} * hidden_size, "
                         f"hidden_size or proj_size] for mode {mode}")
    hidden = w_hh.shape[0] // gates
    out = w_hh.shape[1]
    proj = out if has_proj else 0
    if not has_proj and out != hidden:
        raise ValueError(f"weight_hh_l0 has shape {w_hh.shape}, expected "
                         f"{(gates * hidden, hidden)} (no weight_hr, so no proj_size)")
    w_ih = weights[(0, False, "weight_ih")]
    if w_ih.ndim != 2:
        raise ValueError(f"weight_ih_l0 has shape {w_ih.shape}, expected 2-D "
                         f"[{gates * hidden}, input_size]")
    input_size = w_ih.shape[1]
    dtype = weights_dtype(weights.values(), dtype)
    layers = []
    for layer in range(num_layers):
        depth = input_size if layer == 0 else out * len(directions)
        cells = []
        for reverse in directions:
            suffix = f"_l{layer}{'_reverse' if reverse else ''}"

            def get(name, shape, why, suffix=suffix, reverse=reverse, layer=layer):
                if (layer, reverse, name) not in weights:
                    return np.zeros(shape, dtype)
                array = expect_shape(weights[(layer, reverse, name)], shape, name + suffix, why)
                return float_array(array, dtype, name + suffix)

            ih = get("weight_ih", (gates * hidden, depth),
                     f"{gates} x hidden_size {hidden} by "
                     + (f"input_size {input_size}" if layer == 0 else
                        f"{len(directions)} x {'proj_size' if proj else 'hidden_size'} {out}"))
            hh = get("weight_hh", (gates * hidden, out), f"{gates} x hidden_size by "
                     f"{'proj_size' if proj else 'hidden_size'}")
            b_ih = get("bias_ih", (gates * hidden,), f"{gates} x hidden_size")
            b_hh = get("bias_hh", (gates * hidden,), f"{gates} x hidden_size")
            hr = get("weight_hr", (proj, hidden), "proj_size by hidden_size") if proj else None
            cells.append(_cell_from_torch(mode, hidden, proj, ih, hh, b_ih, b_hh, hr, dtype))
        layers.append(tuple(cells) if bidirectional else cells[0])
    if source is None:
        source = (f"torch {mode} state_dict (input_size={input_size}, hidden_size={hidden}, "
                  f"num_layers={num_layers}, bidirectional={bidirectional}, proj_size={proj})")
    return TorchRNN(layers, mode, batch_first=batch_first, input_size=input_size,
                    hidden_size=hidden, proj_size=proj, source=source)


def _cell_from_torch(mode, hidden, proj, ih, hh, b_ih, b_hh, hr, dtype):
    if mode == "LSTM":
        cell = LSTMCell(hidden, num_proj=proj or None, forget_bias=0.0, dtype=dtype)
        kernel = np.concatenate([_blocks(ih, LSTM_ORDER, hidden).T,
                                 _blocks(hh, LSTM_ORDER, hidden).T])
        weights = [kernel, _blocks(b_ih + b_hh, LSTM_ORDER, hidden)]
        if proj:
            weights.append(hr.T)
    elif mode == "GRU":
        cell = GRUCell(hidden, reset_after=True, dtype=dtype)
        rz, n = slice(0, 2 * hidden), slice(2 * hidden, 3 * hidden)
        weights = [np.concatenate([ih[rz].T, hh[rz].T]), b_ih[rz] + b_hh[rz],
                   np.concatenate([ih[n].T, hh[n].T]), b_ih[n], b_hh[n]]
    else:
        cell = BasicRNNCell(hidden, activation="relu" if mode == "RNN_RELU" else "tanh",
                            dtype=dtype)
        weights = [np.concatenate([ih.T, hh.T]), b_ih + b_hh]
    cell.set_weights(weights)
    return cell


class TorchRNN(Converted):
    """A PyTorch ``nn.LSTM``/``nn.GRU``/``nn.RNN`` converted: call it like the module.

    ``net(input, hx=None, lengths=None)`` returns ``(output, h_n)`` (GRU, RNN) or
    ``(output, (h_n, c_n))`` (LSTM) as the module does, NumPy arrays in its layout:
    ``input`` [T, B, input_size] (``batch_first``: [B, T, input_size]; 2-D: unbatched),
    ``output`` [T, B, num_directions * P], ``h_n`` [num_layers * num_directions, B, P],
    ``c_n`` [..., H]. ``lengths`` gives what a packed sequence gives: outputs past each
    length are zero (``pad_packed_sequence(..., total_length=T)``) and ``h_n``/``c_n``
    hold each sequence's state at its last step. A ``PackedSequence`` input (PyTorch
    needed) returns a ``PackedSequence`` output. ``run`` is the numba_rnn call underneath.
    """

    framework = "torch"

    def __init__(self, layers, mode, batch_first, input_size, hidden_size, proj_size, source):
        super().__init__(layers, time_major=not batch_first, source=source)
        self.mode, self.batch_first = mode, bool(batch_first)
        self.input_size, self.hidden_size, self.proj_size = input_size, hidden_size, proj_size

    @property
    def num_layers(self):
        return len(self.layers)

    @property
    def num_directions(self):
        return 2 if self.bidirectional else 1

    @property
    def dtype(self):
        return self.leaf_cells()[0].dtype

    def __call__(self, input, hx=None, lengths=None):  # noqa: A002  (PyTorch's name)
        packed = type(input).__name__ == "PackedSequence"
        if packed:
            if lengths is not None:
                raise ValueError("lengths must not be given with a PackedSequence: it has them")
            from torch.nn.utils.rnn import pad_packed_sequence

            padded, torch_lengths = pad_packed_sequence(input, batch_first=self.batch_first)
            x, lengths = to_numpy(padded), torch_lengths.numpy().astype(np.int64)
        else:
            x = to_numpy(input, "input")
        if x.ndim not in (2, 3):
            layout = "[B, T, D]" if self.batch_first else "[T, B, D]"
            raise ValueError(f"input must be 3-D {layout} or 2-D (unbatched [T, D]), got shape "
                             f"{x.shape}")
        x = float_array(x, self.dtype, "input")
        unbatched = x.ndim == 2
        if unbatched:
            if lengths is not None:
                raise ValueError("lengths needs batched input (3-D)")
            x = x[:, None] if self.time_major else x[None]
        if x.shape[-1] != self.input_size:
            raise ValueError(f"input has shape {x.shape}: its last dimension must be input_size "
                             f"= {self.input_size}")
        batch = x.shape[1] if self.time_major else x.shape[0]
        states = self._initial_states(hx, batch, unbatched)
        finals, output = self._run_layers(x, lengths, states)
        h_n = np.stack([f.h if self.mode == "LSTM" else f for f in finals])
        c_n = np.stack([f.c for f in finals]) if self.mode == "LSTM" else None
        if unbatched:
            output = output[:, 0] if self.time_major else output[0]
            h_n = h_n[:, 0]
            c_n = None if c_n is None else c_n[:, 0]
        if packed:
            output = _packed_like(input, output, lengths, self.batch_first)
        return (output, (h_n, c_n)) if self.mode == "LSTM" else (output, h_n)

    def _initial_states(self, hx, batch, unbatched):
        """hx as one state per (layer, direction), in PyTorch's order l * dirs + d."""
        if hx is None:
            return None
        count = self.num_layers * self.num_directions
        out = self.proj_size or self.hidden_size
        if self.mode == "LSTM":
            if not isinstance(hx, (tuple, list)) or len(hx) != 2:
                raise ValueError("hx of an LSTM must be a pair (h_0, c_0)")
            h0, c0 = (float_array(a, self.dtype, name) for a, name in zip(hx, ("h_0", "c_0")))
        else:
            h0, c0 = float_array(hx, self.dtype, "hx"), None
        arrays = [("h_0" if c0 is not None else "hx", h0, out)]
        if c0 is not None:
            arrays.append(("c_0", c0, self.hidden_size))
        checked = []
        for name, array, size in arrays:
            shape = (count, size) if unbatched else (count, batch, size)
            expect_shape(array, shape, name, "num_layers * num_directions, "
                         + ("" if unbatched else "batch, ") + "hidden or proj size")
            checked.append(array[:, None] if unbatched else array)
        if c0 is None:
            return list(checked[0])
        return [LSTMStateTuple(c, h) for h, c in zip(checked[0], checked[1])]

    def _run_layers(self, x, lengths, states):
        """(final state per (layer, direction), output) in numba_rnn's arrays."""
        if not self.bidirectional:
            state = None
            if states is not None:
                state = tuple(states) if self.num_layers > 1 else states[0]
            output, final = dynamic_rnn(self.cell, x, sequence_length=lengths,
                                        initial_state=state, time_major=self.time_major)
            return (list(final) if self.num_layers > 1 else [final]), output
        fw = bw = None
        if states is not None:
            fw, bw = states[0::2], states[1::2]
        output, finals_fw, finals_bw = stack_bidirectional_dynamic_rnn(
            self.cells_fw, self.cells_bw, x, initial_states_fw=fw, initial_states_bw=bw,
            sequence_length=lengths, time_major=self.time_major)
        return [s for pair in zip(finals_fw, finals_bw) for s in pair], output

    def _mapping_lines(self):
        layout = ("batch_first=True is numba_rnn's default layout [B, T, D] (time_major=False)."
                  if self.batch_first else
                  "batch_first=False: inputs and outputs are [T, B, D]: time_major=True.")
        lstm = self.mode == "LSTM"
        if self.bidirectional:
            state = ("h_n[2 l] and h_n[2 l + 1] are states_fw[l] and states_bw[l]"
                     + (" (.h; c_n: .c)" if lstm else ""))
        elif self.num_layers > 1:
            state = "h_n[l] is state[l]" + (".h, c_n[l] is state[l].c" if lstm else "")
        else:
            state = "h_n[0] is state" + (".h, c_n[0] is state.c" if lstm else "")
        hx = ("hx = (h_0, c_0) gives the initial states the same way, as "
              "LSTMStateTuple(c_0[k], h_0[k])." if lstm else
              "hx gives the initial states the same way.")
        return [
            layout,
            "Packed sequences: pass the padded inputs and their lengths as sequence_length; "
            "outputs past each length are zeros, as pad_packed_sequence(..., total_length=T) "
            "gives them, and the final states are those of each sequence's last step.",
            f"Final states: {state}. {hx}",
            "net(input, hx=None, lengths=None) does all of this and returns the module's "
            + ("(output, (h_n, c_n))." if lstm else "(output, h_n)."),
        ]


def _packed_like(packed, output, lengths, batch_first):
    """Our padded output as a PackedSequence with the input's batch order."""
    import torch
    from torch.nn.utils.rnn import PackedSequence, pack_padded_sequence

    time_major = np.moveaxis(output, 0, 1) if batch_first else output
    order = (np.arange(time_major.shape[1]) if packed.sorted_indices is None
             else packed.sorted_indices.numpy())
    sorted_output = np.ascontiguousarray(time_major[:, order])
    repacked = pack_padded_sequence(torch.from_numpy(sorted_output),
                                    torch.as_tensor(lengths[order]), enforce_sorted=True)
    return PackedSequence(repacked.data, packed.batch_sizes, packed.sorted_indices,
                          packed.unsorted_indices)


# --------------------------------------------------------------------- us -> PyTorch
def to_torch_state_dict(model):
    """A PyTorch module's constructor arguments and ``state_dict`` (NumPy arrays) holding
    ``model``'s weights; no PyTorch needed.

    ``model`` is a cell, a ``MultiRNNCell`` (layers), a ``(cell_fw, cell_bw)`` pair, a list
    of pairs (stacked bidirectional layers, as ``stack_bidirectional_dynamic_rnn`` runs
    them) or a ``Converted`` network. All layers must be the same kind of cell with the
    same size: ``LSTMCell``/``BasicLSTMCell`` (tanh, no peepholes or clipping;
    ``num_proj`` becomes ``proj_size``; ``forget_bias`` is added to the f bias), ``GRUCell``
    with ``reset_after=True`` (tanh), or ``BasicRNNCell`` (tanh or relu).

    Returns ``(config, state_dict)``: config has ``mode``, ``input_size``,
    ``hidden_size``, ``num_layers``, ``bidirectional``, ``proj_size`` and ``dtype``.
    """
    layers = _torch_layers(model)
    first = layers[0][0]
    mode = _torch_mode(first, "layer 0")
    hidden = first.num_units
    proj = getattr(first, "num_proj", None) or 0
    out = proj or hidden
    dirs = len(layers[0])
    state_dict = {}
    for i, cells in enumerate(layers):
        for d, cell in enumerate(cells):
            where = f"layer {i}" + (f" ({'bw' if d else 'fw'})" if dirs == 2 else "")
            if _torch_mode(cell, where) != mode:
                raise ValueError(f"{where} is a {type(cell).__name__} with "
                                 f"{_torch_mode(cell, where)} semantics; a PyTorch module has "
                                 f"one kind of layer ({mode}, from layer 0)")
            if cell.num_units != hidden or (getattr(cell, "num_proj", None) or 0) != proj:
                raise ValueError(f"{where} has num_units={cell.num_units}, num_proj="
                                 f"{getattr(cell, 'num_proj', None)}; a PyTorch module needs "
                                 f"the same sizes in every layer (layer 0: {hidden}, "
                                 f"{proj or None})")
            if not cell.built:
                raise ValueError(f"{where} has no weights yet: build it or run it first")
            if i > 0 and cell.input_depth != out * dirs:
                raise ValueError(f"{where} reads {cell.input_depth} features; in PyTorch layer "
                                 f"{i} reads the {dirs} x {out} outputs of the layer below")
            suffix = f"_l{i}{'_reverse' if d else ''}"
            for name, value in _torch_weights(cell, mode).items():
                state_dict[name + suffix] = value
    config = dict(mode=mode, input_size=layers[0][0].input_depth, hidden_size=hidden,
                  num_layers=len(layers), bidirectional=dirs == 2, proj_size=proj,
                  dtype=first.dtype.name)
    return config, state_dict


def _torch_layers(model):
    """``model`` as a list of layers, each a tuple of one or two plain cells."""
    raw = layers_of(model)
    if len(raw) == 1 and isinstance(raw[0], MultiRNNCell):
        raw = list(raw[0].cells)  # a Converted holding one MultiRNNCell
    layers = []
    for i, layer in enumerate(raw):
        cells = []
        for cell in layer if isinstance(layer, tuple) else (layer,):
            if isinstance(cell, MultiRNNCell):
                if not isinstance(layer, tuple):
                    raise ValueError(f"layer {i} is itself a MultiRNNCell: flatten nested "
                                     f"stacks into one MultiRNNCell")
                if len(cell.cells) != 1:
                    raise ValueError(
                        f"layer {i} is a pair of MultiRNNCells: TensorFlow's "
                        f"bidirectional_dynamic_rnn over two stacks runs each direction's "
                        f"stack on its own, while PyTorch feeds both directions of a layer to "
                        f"the next one; convert a list of (cell_fw, cell_bw) layers instead")
                cell = cell.cells[0]
            cells.append(cell)
        layers.append(tuple(cells))
    return layers


def _torch_mode(cell, where):
    if isinstance(cell, LSTMCell):
        checks = (("use_peepholes", not cell.use_peepholes),
                  ("cell_clip", cell.cell_clip is None),
                  ("proj_clip", cell.proj_clip is None or cell.num_proj is None),
                  ("activation", cell._act == 0))
        problems = [f"{name}={getattr(cell, name)!r}" for name, ok in checks if not ok]
        if problems:
            raise ValueError(f"{where}: PyTorch's LSTM has no {', '.join(problems)} "
                             f"({type(cell).__name__} {cell.name!r})")
        return "LSTM"
    if isinstance(cell, GRUCell):
        if not cell.reset_after:
            raise ValueError(f"{where}: PyTorch's GRU applies the reset gate after the recurrent "
                             f"product: it needs GRUCell(reset_after=True), got reset_after=False")
        if cell._act != 0:
            raise ValueError(f"{where}: PyTorch's GRU has no activation={cell.activation!r} "
                             f"(tanh only)")
        return "GRU"
    if isinstance(cell, BasicRNNCell):
        if cell._act not in (0, 2):
            raise ValueError(f"{where}: PyTorch's RNN has nonlinearity tanh or relu, got "
                             f"activation={cell.activation!r}")
        return "RNN_RELU" if cell._act == 2 else "RNN_TANH"
    raise TypeError(f"{where}: {type(cell).__name__} has no PyTorch counterpart")


def _torch_weights(cell, mode):
    w, d, h = cell._weights, cell.input_depth, cell.num_units
    dtype = cell.dtype
    if mode == "LSTM":
        kernel = w["kernel"]
        bias = w["bias"].copy()
        bias[2 * h:3 * h] += dtype.type(cell.forget_bias)  # as the kernel folds it in
        weights = {"weight_ih": _blocks(kernel[:d].T, LSTM_ORDER, h),
                   "weight_hh": _blocks(kernel[d:].T, LSTM_ORDER, h),
                   "bias_ih": _blocks(bias, LSTM_ORDER, h),
                   "bias_hh": np.zeros(4 * h, dtype)}
        if cell.num_proj is not None:
            weights["weight_hr"] = w["projection/kernel"].T
    elif mode == "GRU":
        gates, candidate = w["gates/kernel"], w["candidate/kernel"]
        weights = {"weight_ih": np.concatenate([gates[:d].T, candidate[:d].T]),
                   "weight_hh": np.concatenate([gates[d:].T, candidate[d:].T]),
                   "bias_ih": np.concatenate([w["gates/bias"], w["candidate/bias"]]),
                   "bias_hh": np.concatenate([np.zeros(2 * h, dtype),
                                              w["candidate/recurrent_bias"]])}
    else:
        weights = {"weight_ih": w["kernel"][:d].T, "weight_hh": w["kernel"][d:].T,
                   "bias_ih": w["bias"].copy(), "bias_hh": np.zeros(h, dtype)}
    return {name: np.ascontiguousarray(value) for name, value in weights.items()}


def to_torch(model, batch_first=None):
    """A PyTorch ``nn.LSTM``/``nn.GRU``/``nn.RNN`` (in eval mode) holding ``model``'s
    weights: ``model`` as for ``to_torch_state_dict``. ``batch_first`` defaults to the
    converted module's for a ``TorchRNN``, else False (numba_rnn's default layout
    [B, T, D] is ``batch_first=True``)."""
    config, state_dict = to_torch_state_dict(model)
    try:
        import torch
    except ImportError:
        raise ImportError("to_torch needs PyTorch; to_torch_state_dict does not") from None
    if batch_first is None:
        batch_first = model.batch_first if isinstance(model, TorchRNN) else False
    mode = config["mode"]
    kwargs = dict(input_size=config["input_size"], hidden_size=config["hidden_size"],
                  num_layers=config["num_layers"], bidirectional=config["bidirectional"],
                  batch_first=bool(batch_first), bias=True)
    if mode == "LSTM":
        module = torch.nn.LSTM(proj_size=config["proj_size"], **kwargs)
    elif mode == "GRU":
        module = torch.nn.GRU(**kwargs)
    else:
        module = torch.nn.RNN(nonlinearity="relu" if mode == "RNN_RELU" else "tanh", **kwargs)
    dtype = torch.float64 if config["dtype"] == "float64" else torch.float32
    module = module.to(dtype)
    module.load_state_dict({k: torch.from_numpy(v.copy()) for k, v in state_dict.items()})
    return module.eval()
