"""TensorFlow 1.x variables ({name: array}, or a checkpoint) to numba_rnn cells.

The cells here name and shape their weights as ``tf.compat.v1.nn.rnn_cell`` does, so a
TensorFlow 1.x model's variables load unchanged. ``from_tensorflow`` finds the cells in
the names, by the layouts TensorFlow's RNN functions produce::

    <scope>/<cell>/kernel ...                                   dynamic_rnn, one cell
    <scope>/<multi_rnn_cell>/cell_<l>/<cell>/kernel ...         dynamic_rnn, MultiRNNCell
    <scope>/fw/<cell>/..., <scope>/bw/<cell>/...                bidirectional_dynamic_rnn
    <scope>/cell_<l>/bidirectional_rnn/{fw,bw}/<cell>/...       stack_bidirectional_dynamic_rnn

where <cell> is a TensorFlow cell's default name (``basic_rnn_cell``, ``gru_cell``,
``basic_lstm_cell``, ``lstm_cell``) or any name when the variables themselves say the
type (GRU gates, LSTM peepholes or projection). Other variables (optimizer slots, dense
layers, global_step) are ignored. Options the variables do not record (``forget_bias``,
``cell_clip``, ``proj_clip``, ``activation``, ``state_is_tuple``) are TensorFlow's
defaults unless given. For cells named otherwise, or to be explicit, pass ``cells=``.
"""
import collections.abc
import os
import re

import numpy as np

from ..cells import (
    BasicLSTMCell,
    BasicRNNCell,
    GRUCell,
    KernelCell,
    LSTMCell,
    MultiRNNCell,
    RNNCell,
)
from .network import Converted, float_array, to_numpy, weights_dtype

DEFAULT_NAMES = {"basic_rnn_cell": BasicRNNCell, "gru_cell": GRUCell,
                 "basic_lstm_cell": BasicLSTMCell, "lstm_cell": LSTMCell}
OPTIONS = {BasicRNNCell: {"activation"}, GRUCell: {"activation"},
           BasicLSTMCell: {"activation", "forget_bias", "state_is_tuple"},
           LSTMCell: {"activation", "forget_bias", "state_is_tuple", "cell_clip", "proj_clip"}}
ALL_OPTIONS = set().union(*OPTIONS.values())

# Layouts, most specific first: (kind, pattern over a cell's variable prefix).
LAYOUTS = [
    ("stack", re.compile(r"^(?P<outer>.+)/cell_(?P<layer>\d+)/bidirectional_rnn/"
                         r"(?P<dir>fw|bw)/(?P<name>[^/]+)$")),
    ("bidirectional_multi", re.compile(r"^(?P<outer>.+)/(?P<dir>fw|bw)/(?P<multi>[^/]+)/"
                                       r"cell_(?P<layer>\d+)/(?P<name>[^/]+)$")),
    ("bidirectional", re.compile(r"^(?P<outer>.+)/(?P<dir>fw|bw)/(?P<name>[^/]+)$")),
    ("multi", re.compile(r"^(?:(?P<outer>.+)/)?(?P<multi>[^/]+)/cell_(?P<layer>\d+)/"
                         r"(?P<name>[^/]+)$")),
    ("single", re.compile(r"^(?:(?P<outer>.+)/)?(?P<name>[^/]+)$")),
]


class CheckpointVariables(collections.abc.Mapping):
    """The variables of a TensorFlow checkpoint, read one at a time when asked for."""

    def __init__(self, path):
        try:
            import tensorflow as tf
        except ImportError:
            raise ImportError("reading a checkpoint needs TensorFlow; without it, pass the "
                              "variables as a {name: array} mapping") from None

        self.path = os.fspath(path)
        self._reader = tf.train.load_checkpoint(self.path)
        self._shapes = self._reader.get_variable_to_shape_map()

    def __getitem__(self, name):
        if name not in self._shapes:
            raise KeyError(name)
        return np.asarray(self._reader.get_tensor(name))

    def __iter__(self):
        return iter(sorted(self._shapes))

    def __len__(self):
        return len(self._shapes)


def read_checkpoint(path):
    """{variable name: array} of a TensorFlow checkpoint (needs TensorFlow); the arrays are
    read when accessed. ``path`` is a checkpoint prefix or a directory (its latest)."""
    return CheckpointVariables(path)


def from_tensorflow(variables, scope=None, cells=None, dtype=None, **options):
    """Cells with the weights of a TensorFlow 1.x RNN, ready for numba_rnn's functions.

    Args:
        variables: a {name: array} mapping (e.g. from a checkpoint reader; names with or
            without the ":0" suffix) or a checkpoint path (TensorFlow needed to read it).
        scope: only use variables under this name prefix (needed when the variables hold
            several RNNs, e.g. an encoder and a decoder).
        cells: optional cells to load instead of finding them in the names: a cell or
            ``MultiRNNCell`` (as run by ``dynamic_rnn``, scope default "rnn"), a pair
            ``(cell_fw, cell_bw)`` (``bidirectional_dynamic_rnn``, "bidirectional_rnn") or
            a list of pairs (``stack_bidirectional_dynamic_rnn``,
            "stack_bidirectional_rnn"). Their names and the scope make the variable
            names, exactly as TensorFlow would.
        dtype: float32 or float64 for found cells (default: the variables').
        **options: ``forget_bias``, ``cell_clip``, ``proj_clip``, ``activation`` or
            ``state_is_tuple`` for the found cells that take them.

    Returns a ``Converted`` network: ``net.run(x, sequence_length, initial_state)`` is
    TensorFlow's ``dynamic_rnn``/``bidirectional_dynamic_rnn``/
    ``stack_bidirectional_dynamic_rnn`` with these variables.

    >>> import numpy as np, numba_rnn as nr
    >>> from numba_rnn.interop import from_tensorflow
    >>> rng = np.random.default_rng(0)
    >>> variables = {"rnn/lstm_cell/kernel": rng.normal(size=(3 + 4, 16)).astype(np.float32),
    ...              "rnn/lstm_cell/bias": np.zeros(16, np.float32),
    ...              "global_step": np.array(100)}
    >>> net = from_tensorflow(variables)
    >>> net.cell
    LSTMCell(name='lstm_cell', state_size=LSTMStateTuple(c=4, h=4))
    >>> outputs, state = net.run(np.ones((2, 5, 3), np.float32))
    >>> sorted(net.named_weights()) == ["rnn/lstm_cell/bias", "rnn/lstm_cell/kernel"]
    True
    """
    if isinstance(variables, (str, os.PathLike)):
        variables = read_checkpoint(variables)
    if not isinstance(variables, collections.abc.Mapping):
        raise TypeError(f"variables must be a {{name: array}} mapping or a checkpoint path, "
                        f"got {type(variables).__name__}")
    unknown = set(options) - ALL_OPTIONS
    if unknown:
        raise ValueError(f"unknown cell option(s) {sorted(unknown)}; from_tensorflow takes "
                         f"{sorted(ALL_OPTIONS)}")
    names = {_strip(name): name for name in variables}
    if scope is not None:
        scope = scope.rstrip("/")
        names = {n: key for n, key in names.items() if n.startswith(scope + "/")}
        if not names:
            raise ValueError(f"no variables under scope {scope!r}")
    if cells is not None:
        if options:
            raise ValueError("options apply to found cells; with cells= set them on the cells")
        return _load_into(cells, variables, names, scope)
    return _find(variables, names, scope, dtype, options)


def _strip(name):
    return name[:-2] if name.endswith(":0") else name


# ------------------------------------------------------------------- explicit cells
def _load_into(cells, variables, names, scope):
    if isinstance(cells, RNNCell):
        layers, scope = [cells], scope or "rnn"
        cells._set_scope(scope)
    elif isinstance(cells, tuple) and len(cells) == 2 and all(isinstance(c, RNNCell)
                                                              for c in cells):
        layers, scope = [cells], scope or "bidirectional_rnn"
        cells[0]._set_scope(f"{scope}/fw")
        cells[1]._set_scope(f"{scope}/bw")
    elif isinstance(cells, list) and cells and all(
            isinstance(p, tuple) and len(p) == 2 and all(isinstance(c, RNNCell) for c in p)
            for p in cells):
        layers, scope = list(cells), scope or "stack_bidirectional_rnn"
        for i, (fw, bw) in enumerate(cells):
            fw._set_scope(f"{scope}/cell_{i}/bidirectional_rnn/fw")
            bw._set_scope(f"{scope}/cell_{i}/bidirectional_rnn/bw")
    else:
        raise TypeError("cells must be a cell, a MultiRNNCell, a (cell_fw, cell_bw) pair or a "
                        f"list of such pairs, got {type(cells).__name__}")
    depth = None
    for layer in layers:
        pair = layer if isinstance(layer, tuple) else (layer,)
        outputs = 0
        for cell in pair:
            _load_cell(cell, variables, names, depth)
            outputs += cell.output_size
        depth = outputs if isinstance(layer, tuple) and len(layers) > 1 else None
    return Converted(layers, scope=scope, source="tensorflow variables", framework="tensorflow")


def _load_cell(cell, variables, names, depth):
    """Load ``cell`` (scope already set) from the variables its names select."""
    if isinstance(cell, MultiRNNCell):
        for layer in cell.cells:
            _load_cell(layer, variables, names, depth)
            depth = layer.output_size
        return
    if not isinstance(cell, KernelCell):
        raise TypeError(f"cannot load a custom cell ({type(cell).__name__}): only built-in "
                        f"cells have TensorFlow variables")
    specs = cell._weight_specs(1)
    wanted = [f"{cell.variable_prefix}/{name}" for name, _, _ in specs]
    missing = [w for w in wanted if w not in names]
    if missing:
        near = sorted(n for n in names if n.rsplit("/", 1)[0].endswith(cell.name))[:6]
        raise ValueError(f"no variable {missing[0]!r} for cell {cell.name!r} "
                         f"({type(cell).__name__}); variables nearby: {near or sorted(names)[:6]}")
    arrays = [to_numpy(variables[names[w]], w) for w in wanted]
    kernel = arrays[0]
    recurrent = specs[0][1][0] - 1
    if kernel.ndim != 2 or kernel.shape[0] <= recurrent:
        raise ValueError(f"{wanted[0]} has shape {kernel.shape}, expected [input depth + "
                         f"{recurrent}, {specs[0][1][1]}]")
    input_depth = kernel.shape[0] - recurrent
    if depth is not None and input_depth != depth:
        raise ValueError(f"{wanted[0]} has shape {kernel.shape}: its cell reads {input_depth} "
                         f"features but the layer below gives {depth}")
    if not cell.built:
        cell.build(input_depth, dtype=None if cell.dtype is not None
                   else weights_dtype([kernel]))
    elif cell.input_depth != input_depth:
        raise ValueError(f"cell {cell.name!r} is built for input depth {cell.input_depth} but "
                         f"{wanted[0]} has shape {kernel.shape}")
    for (name, shape, _), w, array in zip(cell._weight_specs(cell.input_depth), wanted, arrays):
        if tuple(array.shape) != tuple(shape):
            raise ValueError(f"variable {w!r} has shape {tuple(array.shape)}, but "
                             f"{type(cell).__name__} {cell.name!r} needs {tuple(shape)} for "
                             f"{name!r}")
    cell.set_weights([float_array(a, cell.dtype, w) for a, w in zip(arrays, wanted)])


# ------------------------------------------------------------------ finding cells
def _cell_prefixes(names):
    """{variable prefix of a cell: its class} for the cells the names show."""
    gru = {n[:-len("/gates/kernel")] for n in names if n.endswith("/gates/kernel")}
    kernels = {n[:-len("/kernel")] for n in names if n.endswith("/kernel")}
    kernels -= {f"{p}/gates" for p in gru} | {f"{p}/candidate" for p in gru}
    kernels -= {f"{p}/projection" for p in kernels}
    found = {p: GRUCell for p in gru}
    for prefix in kernels:
        cell_name = prefix.rsplit("/", 1)[-1]
        distinct = any(f"{prefix}/{w}" in names
                       for w in ("w_f_diag", "w_i_diag", "w_o_diag", "projection/kernel"))
        if f"{prefix}/bias" not in names:
            continue
        if distinct:
            found[prefix] = LSTMCell
        elif cell_name in DEFAULT_NAMES and DEFAULT_NAMES[cell_name] is not GRUCell:
            found[prefix] = DEFAULT_NAMES[cell_name]
    return found


def _find(variables, names, scope, dtype, options):
    found = _cell_prefixes(names)
    if not found:
        shown = sorted(names)[:8]
        hint = ""
        if any(".ATTRIBUTES" in n for n in names):
            hint = (" These look like an object-based (TF2/Keras) checkpoint: load the Keras "
                    "model and use from_keras on its layers.")
        raise ValueError(f"found no RNN cell variables (<cell>/kernel and <cell>/bias with a "
                         f"TensorFlow cell name, or GRU gates/...) among {len(names)} "
                         f"variables, e.g. {shown}.{hint} Pass cells= to name them.")
    for kind, pattern in LAYOUTS:
        matches = {p: pattern.match(p) for p in found}
        if not all(matches.values()):
            continue
        outers = {m.group("outer") for m in matches.values()}
        if len(outers) != 1:
            continue
        outer = outers.pop()
        layers = _assemble(kind, matches, found, variables, names, dtype, options)
        if layers is not None:
            return Converted(layers, scope=outer, source=f"tensorflow variables ({kind} "
                             f"under {outer!r})", framework="tensorflow")
    groups = sorted({p.split("/")[0] for p in found})
    raise ValueError(f"the variables hold cells at {sorted(found)} which do not form one "
                     f"TensorFlow RNN; pass scope= to pick one (e.g. one of {groups}) or "
                     f"cells= to say what they are")


def _assemble(kind, matches, found, variables, names, dtype, options):
    """Layers for one layout, or None when the cells do not complete it."""
    def make(prefix, depth=None):
        match = matches[prefix]
        return _make_cell(found[prefix], match.group("name"), prefix, variables, names,
                          dtype, options, depth)

    if kind == "single":
        if len(matches) != 1:
            return None
        return [make(next(iter(matches)))]
    if kind == "bidirectional":
        by_dir = {m.group("dir"): p for p, m in matches.items()}
        if len(matches) != 2 or set(by_dir) != {"fw", "bw"}:
            return None
        return [(make(by_dir["fw"]), make(by_dir["bw"]))]
    indexed = {}
    for prefix, m in matches.items():
        key = (m.group("dir") if "dir" in m.re.groupindex else None, int(m.group("layer")))
        multi = m.group("multi") if "multi" in m.re.groupindex else None
        indexed[key] = (prefix, multi)
    directions = sorted({d for d, _ in indexed}, key=lambda d: (d is None, d != "fw"))
    counts = {d: 1 + max(layer for e, layer in indexed if e == d) for d in directions}
    expected = {(d, layer) for d in directions for layer in range(counts[d])}
    if set(indexed) != expected or (kind != "multi" and directions != ["fw", "bw"]):
        return None
    if kind == "stack" and counts["fw"] != counts["bw"]:
        return None
    count = counts[directions[0]]
    if kind == "stack":
        layers, depth = [], None
        for layer in range(count):
            fw = make(indexed[("fw", layer)][0], depth)
            bw = make(indexed[("bw", layer)][0], depth)
            layers.append((fw, bw))
            depth = fw.output_size + bw.output_size
        return layers
    stacks = []
    for d in directions:
        cells, depth = [], None
        multis = {indexed[(d, layer)][1] for layer in range(counts[d])}
        if len(multis) != 1:
            return None
        for layer in range(counts[d]):
            cell = make(indexed[(d, layer)][0], depth)
            cells.append(cell)
            depth = cell.output_size
        stacks.append(MultiRNNCell(cells, name=multis.pop()))
    return [tuple(stacks)] if kind == "bidirectional_multi" else stacks


def _make_cell(cls, name, prefix, variables, names, dtype, options, depth):
    kwargs = {k: v for k, v in options.items() if k in OPTIONS[cls]}
    kernel_name = f"{prefix}/gates/kernel" if cls is GRUCell else f"{prefix}/kernel"
    kernel = to_numpy(variables[names[kernel_name]], kernel_name)
    if kernel.ndim != 2:
        raise ValueError(f"{kernel_name} has shape {kernel.shape}, expected 2-D")
    if cls is GRUCell:
        units = kernel.shape[1] // 2
        kwargs["reset_after"] = f"{prefix}/candidate/recurrent_bias" in names
    elif cls is BasicRNNCell:
        units = kernel.shape[1]
    else:
        if kernel.shape[1] % 4:
            raise ValueError(f"{kernel_name} has shape {kernel.shape}: an LSTM kernel has 4 x "
                             f"num_units columns")
        units = kernel.shape[1] // 4
        if cls is LSTMCell:
            projection = f"{prefix}/projection/kernel"
            if projection in names:
                kwargs["num_proj"] = to_numpy(variables[names[projection]], projection).shape[-1]
            kwargs["use_peepholes"] = f"{prefix}/w_f_diag" in names
    cell_dtype = weights_dtype([kernel], dtype)
    try:
        cell = cls(units, name=name, dtype=cell_dtype, **kwargs)
    except (TypeError, ValueError) as exc:
        raise ValueError(f"cannot make a {cls.__name__} for {prefix!r}: {exc}") from None
    cell._set_scope(prefix.rsplit("/", 1)[0] if "/" in prefix else None)
    _load_cell(cell, variables, names, depth)
    return cell
