"""What every converter returns: the converted cells, and how to run them.

A framework's recurrent network is a list of *layers*; each layer is one cell (one
direction) or a pair ``(cell_fw, cell_bw)`` (both directions). ``Converted`` holds that
list and runs it with the one numba_rnn function that gives the framework's numbers:

- one direction, any number of layers: ``dynamic_rnn`` (several layers form a
  ``MultiRNNCell``: the output of layer l is the input of layer l + 1);
- one bidirectional layer: ``bidirectional_dynamic_rnn``;
- several bidirectional layers, each fed the concatenated outputs of both directions of
  the layer below (PyTorch's ``bidirectional=True, num_layers > 1``):
  ``stack_bidirectional_dynamic_rnn`` below (``tf.contrib.rnn``'s function of that name).
"""
import numpy as np

from ..cells import MultiRNNCell, RNNCell
from ..rnn import bidirectional_dynamic_rnn, dynamic_rnn


def stack_bidirectional_dynamic_rnn(cells_fw, cells_bw, inputs, initial_states_fw=None,
                                    initial_states_bw=None, dtype=None, sequence_length=None,
                                    parallel_iterations=None, time_major=False, scope=None):
    """Bidirectional layers stacked: layer l + 1 reads both directions' outputs of layer l.

    The semantics of TensorFlow 1.x ``tf.contrib.rnn.stack_bidirectional_dynamic_rnn``, and
    of a PyTorch ``nn.LSTM``/``nn.GRU``/``nn.RNN`` with ``bidirectional=True``: each layer
    runs ``bidirectional_dynamic_rnn`` and its two outputs, concatenated on the last axis,
    are the next layer's inputs. Returns ``(outputs, states_fw, states_bw)``: the
    concatenated outputs of the last layer ``[batch, time, out_fw + out_bw]`` and tuples of
    each layer's final state per direction. Variables are named
    ``<scope>/cell_<l>/bidirectional_rnn/{fw,bw}/...`` (scope default
    "stack_bidirectional_rnn").

    >>> import numpy as np, numba_rnn as nr
    >>> from numba_rnn.interop import stack_bidirectional_dynamic_rnn
    >>> fw, bw = [nr.GRUCell(4), nr.GRUCell(4)], [nr.GRUCell(3), nr.GRUCell(3)]
    >>> out, states_fw, states_bw = stack_bidirectional_dynamic_rnn(
    ...     fw, bw, np.ones((2, 5, 6), np.float32), sequence_length=[5, 2])
    >>> out.shape, len(states_fw), states_bw[1].shape
    ((2, 5, 7), 2, (2, 3))
    """
    cells_fw, cells_bw = list(cells_fw), list(cells_bw)
    if not cells_fw or len(cells_fw) != len(cells_bw):
        raise ValueError(f"cells_fw and cells_bw must be non-empty lists of the same length, "
                         f"got {len(cells_fw)} and {len(cells_bw)} cells")
    n = len(cells_fw)
    initial_states_fw = [None] * n if initial_states_fw is None else list(initial_states_fw)
    initial_states_bw = [None] * n if initial_states_bw is None else list(initial_states_bw)
    for what, states in (("initial_states_fw", initial_states_fw),
                          ("initial_states_bw", initial_states_bw)):
        if len(states) != n:
            raise ValueError(f"{what} must hold one state per layer ({n}), got {len(states)}")
    if scope is None:
        scope = "stack_bidirectional_rnn"
    states_fw, states_bw = [], []
    layer_inputs = inputs
    for i, (cell_fw, cell_bw) in enumerate(zip(cells_fw, cells_bw)):
        (out_fw, out_bw), (state_fw, state_bw) = bidirectional_dynamic_rnn(
            cell_fw, cell_bw, layer_inputs, sequence_length=sequence_length,
            initial_state_fw=initial_states_fw[i], initial_state_bw=initial_states_bw[i],
            dtype=dtype, parallel_iterations=parallel_iterations, time_major=time_major,
            scope=f"{scope}/cell_{i}/bidirectional_rnn")
        layer_inputs = np.concatenate([out_fw, out_bw], axis=2)
        states_fw.append(state_fw)
        states_bw.append(state_bw)
    return layer_inputs, tuple(states_fw), tuple(states_bw)


class Converted:
    """Cells converted from a framework, with their weights, and how to run them.

    Attributes:
        framework: "tensorflow", "keras" or "torch".
        layers: list of layers, first to last; each is a cell (one direction) or a pair
            ``(cell_fw, cell_bw)``.
        time_major: the layout of the framework's inputs (PyTorch ``batch_first=False``
            is time-major): pass it as ``time_major`` to the numba_rnn functions.
        scope: the variable scope that reproduces the framework's variable names in
            ``named_weights()`` (TensorFlow), else None.

    ``run(inputs, sequence_length=None, initial_state=None)`` calls the one numba_rnn
    function that computes this network and returns its result unchanged;
    ``describe()`` says which call that is and how its results map to the framework's.
    Calling the object (``converted(x, ...)``) gives the framework's own results, in its
    layout (see the framework's subclass).
    """

    framework = "numba_rnn"

    def __init__(self, layers, time_major=False, scope=None, source="", framework=None):
        layers = list(layers)
        if not layers:
            raise ValueError("a converted network needs at least one layer")
        kinds = {isinstance(layer, tuple) for layer in layers}
        if len(kinds) != 1:
            raise ValueError("layers must be all cells or all (cell_fw, cell_bw) pairs")
        self.layers = layers
        self.time_major = bool(time_major)
        self.scope = scope
        self.source = source
        if framework is not None:
            self.framework = framework
        self._stack = None

    # ---------------------------------------------------------------- the cells
    @property
    def bidirectional(self):
        return isinstance(self.layers[0], tuple)

    @property
    def cell(self):
        """The cell for ``dynamic_rnn`` (one direction): a ``MultiRNNCell`` for several layers."""
        if self.bidirectional:
            raise ValueError("this network is bidirectional: use cell_fw and cell_bw (one layer) "
                             "or cells_fw and cells_bw (stacked layers)")
        if len(self.layers) == 1:
            return self.layers[0]
        if self._stack is None:
            self._stack = MultiRNNCell(self.layers)
        return self._stack

    @property
    def cells_fw(self):
        self._require_bidirectional()
        return [fw for fw, _ in self.layers]

    @property
    def cells_bw(self):
        self._require_bidirectional()
        return [bw for _, bw in self.layers]

    @property
    def cell_fw(self):
        """The forward cell of a one-layer bidirectional network."""
        return self._single_pair()[0]

    @property
    def cell_bw(self):
        return self._single_pair()[1]

    def _require_bidirectional(self):
        if not self.bidirectional:
            raise ValueError("this network runs in one direction: use cell")

    def _single_pair(self):
        self._require_bidirectional()
        if len(self.layers) != 1:
            raise ValueError(f"this network has {len(self.layers)} bidirectional layers: use "
                             f"cells_fw and cells_bw with stack_bidirectional_dynamic_rnn")
        return self.layers[0]

    @property
    def function(self):
        """The name of the numba_rnn function that ``run`` calls."""
        if not self.bidirectional:
            return "dynamic_rnn"
        return "bidirectional_dynamic_rnn" if len(self.layers) == 1 else \
            "stack_bidirectional_dynamic_rnn"

    def leaf_cells(self):
        """Every cell, layer by layer (forward before backward)."""
        cells = []
        for layer in self.layers:
            cells.extend(layer if isinstance(layer, tuple) else [layer])
        return cells

    def named_weights(self):
        """{variable name: weight} of every cell (names as of their last run)."""
        named = {}
        for cell in self.leaf_cells():
            named.update(cell.named_weights())
        return named

    # ---------------------------------------------------------------- running
    def run(self, inputs, sequence_length=None, initial_state=None, parallel_iterations=None):
        """Run with numba_rnn's own function and return its result unchanged.

        ``inputs`` in numba_rnn's layout with ``time_major=self.time_major``;
        ``initial_state`` as that function takes it: the cell's state (dynamic_rnn), a pair
        ``(state_fw, state_bw)`` (one bidirectional layer) or a pair of per-layer tuples
        ``(states_fw, states_bw)`` (stacked bidirectional layers).

        Returns ``(outputs, state)`` from ``dynamic_rnn``, ``((out_fw, out_bw), (state_fw,
        state_bw))`` from ``bidirectional_dynamic_rnn``, or ``(outputs, states_fw,
        states_bw)`` from ``stack_bidirectional_dynamic_rnn`` (see ``function``).
        """
        kwargs = dict(sequence_length=sequence_length, parallel_iterations=parallel_iterations,
                      time_major=self.time_major)
        if self.scope is not None:
            kwargs["scope"] = self.scope
        if not self.bidirectional:
            return dynamic_rnn(self.cell, inputs, initial_state=initial_state, **kwargs)
        fw, bw = (None, None) if initial_state is None else initial_state
        if len(self.layers) == 1:
            return bidirectional_dynamic_rnn(self.cell_fw, self.cell_bw, inputs,
                                             initial_state_fw=fw, initial_state_bw=bw, **kwargs)
        return stack_bidirectional_dynamic_rnn(self.cells_fw, self.cells_bw, inputs,
                                               initial_states_fw=fw, initial_states_bw=bw,
                                               **kwargs)

    def __call__(self, inputs, sequence_length=None, initial_state=None):
        return self.run(inputs, sequence_length=sequence_length, initial_state=initial_state)

    # ---------------------------------------------------------------- explaining
    def describe(self):
        """How this network maps onto numba_rnn: the cells, the call and the layouts."""
        lines = [f"{self.source or self.framework} ->"]
        for i, layer in enumerate(self.layers):
            if isinstance(layer, tuple):
                lines.append(f"  layer {i}: fw {_cell_text(layer[0])}, bw {_cell_text(layer[1])}")
            else:
                lines.append(f"  layer {i}: {_cell_text(layer)}")
        scope = "" if self.scope is None else f", scope={self.scope!r}"
        layout = f"time_major={self.time_major}{scope}"
        if self.function == "dynamic_rnn":
            lines.append(f"numba_rnn: outputs, state = dynamic_rnn(net.cell, x, sequence_length, "
                         f"{layout})")
        elif self.function == "bidirectional_dynamic_rnn":
            lines.append(f"numba_rnn: (out_fw, out_bw), (state_fw, state_bw) = "
                         f"bidirectional_dynamic_rnn(net.cell_fw, net.cell_bw, x, "
                         f"sequence_length, {layout})")
        else:
            lines.append(f"numba_rnn: outputs, states_fw, states_bw = "
                         f"stack_bidirectional_dynamic_rnn(net.cells_fw, net.cells_bw, x, "
                         f"sequence_length=..., {layout})")
        lines.extend(self._mapping_lines())
        return "\n".join(lines)

    def _mapping_lines(self):
        return ["net(x, sequence_length, initial_state) is net.run(...): the results above."]

    def __repr__(self):
        layers = ", ".join(f"({_cell_text(layer[0])}, {_cell_text(layer[1])})"
                           if isinstance(layer, tuple) else _cell_text(layer)
                           for layer in self.layers)
        return f"<{type(self).__name__} from {self.source or self.framework}: [{layers}]>"


def _cell_text(cell):
    if isinstance(cell, MultiRNNCell):
        return "MultiRNNCell([" + ", ".join(_cell_text(c) for c in cell.cells) + "])"
    if not hasattr(cell, "num_units"):
        return type(cell).__name__
    options = [str(cell.num_units)]
    for option, default in (("use_peepholes", False), ("cell_clip", None), ("num_proj", None),
                            ("proj_clip", None), ("forget_bias", 1.0), ("reset_after", False),
                            ("activation", None)):
        value = getattr(cell, option, default)
        if value != default and not (option == "activation" and value == "tanh"):
            options.append(f"{option}={value!r}")
    return f"{type(cell).__name__}({', '.join(options)})"


# ------------------------------------------------------------------------- helpers
def to_numpy(value, what="value"):
    """A framework tensor (PyTorch, TensorFlow) or array-like as a NumPy array."""
    if value is None:
        return None
    detach = getattr(value, "detach", None)
    if callable(detach):  # a torch.Tensor
        value = detach().cpu().numpy()
    elif hasattr(value, "numpy") and not isinstance(value, np.ndarray):
        value = value.numpy()
    array = np.asarray(value)
    if array.dtype == object:
        raise TypeError(f"{what} must be numeric, got {type(value).__name__}")
    return array


def float_array(value, dtype, what):
    array = to_numpy(value, what)
    if array.dtype.kind not in "fiub":
        raise TypeError(f"{what} must hold numbers, got dtype {array.dtype}")
    return np.asarray(array, dtype=dtype)


def weights_dtype(arrays, dtype=None):
    """float64 if asked for or if the weights are float64, else float32."""
    if dtype is not None:
        dtype = np.dtype(dtype)
        if dtype not in (np.dtype(np.float32), np.dtype(np.float64)):
            raise ValueError(f"dtype must be float32 or float64, got {dtype}")
        return dtype
    kinds = {np.asarray(a).dtype for a in arrays}
    return np.dtype(np.float64) if kinds == {np.dtype(np.float64)} else np.dtype(np.float32)


def expect_shape(array, shape, what, why=""):
    """Raise naming both shapes when ``array`` does not have ``shape``."""
    shape = tuple(int(s) for s in shape)
    if tuple(array.shape) != shape:
        raise ValueError(f"{what} has shape {tuple(array.shape)}, expected {shape}"
                         + (f" ({why})" if why else ""))
    return array


def lengths_from_mask(mask, batch, steps, what="mask"):
    """Sequence lengths from a right-padded boolean mask [batch, steps]."""
    mask = to_numpy(mask, what)
    if mask.shape != (batch, steps):
        raise ValueError(f"{what} has shape {mask.shape}, expected (batch, time) = "
                         f"{(batch, steps)}")
    mask = mask.astype(bool)
    lengths = mask.sum(axis=1)
    prefix = np.arange(steps)[None, :] < lengths[:, None]
    if not np.array_equal(mask, prefix):
        rows = np.flatnonzero((mask != prefix).any(axis=1))
        raise ValueError(f"{what} must be right-padded (True for each sequence's first steps, "
                         f"False after): rows {rows[:5].tolist()} are not; numba_rnn takes "
                         f"sequence lengths and cannot skip steps in the middle")
    return lengths.astype(np.int64)


def layers_of(model, what="model"):
    """A cell, MultiRNNCell, (fw, bw) pair, list of layers or Converted as a list of layers."""
    if isinstance(model, Converted):
        return list(model.layers)
    if isinstance(model, MultiRNNCell):
        return list(model.cells)
    if isinstance(model, RNNCell):
        return [model]
    if isinstance(model, tuple) and len(model) == 2 and all(isinstance(c, RNNCell)
                                                             for c in model):
        return [model]
    if isinstance(model, list) and model:
        layers = []
        for i, layer in enumerate(model):
            if isinstance(layer, RNNCell) and not isinstance(layer, MultiRNNCell):
                layers.append(layer)
            elif (isinstance(layer, tuple) and len(layer) == 2
                  and all(isinstance(c, RNNCell) for c in layer)):
                layers.append(tuple(layer))
            else:
                raise TypeError(f"{what}[{i}] must be a cell or a (cell_fw, cell_bw) pair, got "
                                f"{type(layer).__name__}")
        if len({isinstance(layer, tuple) for layer in layers}) != 1:
            raise ValueError(f"{what} mixes one-direction and bidirectional layers")
        return layers
    raise TypeError(f"{what} must be a cell, a MultiRNNCell, a (cell_fw, cell_bw) pair, a list "
                    f"of layers or a Converted network, got {type(model).__name__}")

