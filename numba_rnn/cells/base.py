"""The cell base class, its weights, and the contract between built-in cells and the engine."""
import collections
import numbers

import numpy as np

from .. import nest, workspace
from ..kernels.panels import pack_panels
from ..kernels.products import affine_panels, packed_scratch

FLOAT_DTYPES = (np.dtype(np.float32), np.dtype(np.float64))


class LSTMStateTuple(collections.namedtuple("LSTMStateTuple", ("c", "h"))):
    """State of an LSTM cell: ``c`` the cell state, ``h`` the output (of size num_proj if set)."""

    __slots__ = ()

    @property
    def dtype(self):
        return np.asarray(self.c).dtype


def float_dtype(dtype, what="dtype"):
    """``dtype`` as a NumPy float32/float64 dtype, or a ValueError naming ``what``."""
    try:
        dt = np.dtype(dtype)
    except TypeError:
        raise ValueError(f"{what} must be float32 or float64, got {dtype!r}") from None
    if dt not in FLOAT_DTYPES:
        raise ValueError(f"{what} must be float32 or float64, got {dt}")
    return dt


def positive_int(value, what):
    if isinstance(value, bool) or not isinstance(value, numbers.Integral) or value <= 0:
        raise ValueError(f"{what} must be a positive integer, got {value!r}")
    return int(value)


class RNNCell:
    """Base class of every cell: one step of a recurrent network.

    A custom cell subclasses this and defines ``state_size``, ``output_size`` and
    ``__call__(inputs, state) -> (output, new_state)`` with plain NumPy; ``dynamic_rnn``
    then calls it once per time step (the slow path). Built-in cells run whole
    sequences in compiled kernels instead (see ``KernelCell``).

    Weights follow TensorFlow's variable layout and are created by ``build``, which
    ``dynamic_rnn`` calls on first use with the depth of the inputs.
    """

    _default_name = "rnn_cell"
    _frozen = False

    def __init__(self, name=None, dtype=None, seed=None):
        self.name = self._default_name if name is None else str(name)
        self.dtype = None if dtype is None else float_dtype(dtype, "dtype")
        self.seed = seed
        self.input_depth = None
        self._weights = {}
        self._scope = None

    # ----------------------------------------------------------------- structure
    @property
    def state_size(self):
        raise NotImplementedError(f"{type(self).__name__} must define state_size")

    @property
    def output_size(self):
        raise NotImplementedError(f"{type(self).__name__} must define output_size")

    def zero_state(self, batch_size, dtype=None):
        """All-zero state of shape [batch_size, s] for every s in ``state_size``."""
        batch_size = int(batch_size)
        if batch_size < 0:
            raise ValueError(f"batch_size must be >= 0, got {batch_size}")
        if dtype is None:
            dtype = getattr(self, "dtype", None)
        dt = float_dtype(np.float32 if dtype is None else dtype)
        return nest.map_structure(lambda s: np.zeros((batch_size,) + size_shape(s), dtype=dt),
                                  self.state_size)

    def __call__(self, inputs, state):
        raise NotImplementedError(f"{type(self).__name__} must define __call__(inputs, state)")

    # ------------------------------------------------------------------- weights
    @property
    def built(self):
        return self.input_depth is not None

    def _weight_specs(self, input_depth):
        """[(name, shape, initializer)] in get_weights() order; initializer is
        'glorot', 'zeros' or 'ones'. Cells without weights return []."""
        return []

    def build(self, input_depth, dtype=None):
        """Create the weights for inputs of depth ``input_depth`` (TensorFlow initialisers)."""
        input_depth = positive_int(input_depth, "input_depth")
        if dtype is not None:
            dtype = float_dtype(dtype)
            if self.dtype is not None and dtype != self.dtype:
                raise ValueError(f"cell {self.name!r} has dtype {self.dtype}, "
                                 f"cannot build it for {dtype}")
        if self.built:
            if input_depth != self.input_depth:
                raise ValueError(f"cell {self.name!r} was built for input depth "
                                 f"{self.input_depth}, got inputs of depth {input_depth}")
            return
        if self.dtype is None:
            # np.dtype objects have no reliable truth value: compare with None.
            self.dtype = np.dtype(np.float32) if dtype is None else dtype
        rng = np.random.default_rng(self.seed)
        self._weights = {name: _initial_value(init, shape, self.dtype, rng)
                         for name, shape, init in self._weight_specs(input_depth)}
        self.input_depth = input_depth

    def get_weights(self):
        """Copies of the weights, in TensorFlow's variable order."""
        self._require_built("get_weights")
        return [w.copy() for w in self._weights.values()]

    @property
    def trainable_variables(self):
        """The weight arrays themselves (not copies), in ``get_weights()`` order: for
        optimizers that update them in place."""
        self._require_built("trainable_variables")
        return list(self._weights.values())

    def set_weights(self, weights):
        """Load weights given in ``get_weights()`` order (builds the cell if needed)."""
        weights = [np.asarray(w) for w in weights]
        if not self.built:
            self._build_from(weights)
        names = list(self._weights)
        if len(weights) != len(names):
            raise ValueError(f"cell {self.name!r} has {len(names)} weights {names}, "
                             f"got {len(weights)} arrays")
        for name, w in zip(names, weights):
            expected = self._weights[name].shape
            if w.shape != expected:
                raise ValueError(f"weight {name!r} of cell {self.name!r} must have shape "
                                 f"{expected}, got {w.shape}")
            if w.dtype.kind not in "fiu":
                raise ValueError(f"weight {name!r} must hold real numbers, got dtype {w.dtype}")
        self._weights = {name: np.array(w, dtype=self.dtype, order="C")
                         for name, w in zip(names, weights)}
        if self._frozen:
            self._freeze_weights()  # the new ones; the forms made of the old ones dropped

    # ------------------------------------------------------------------ freezing
    def freeze(self):
        """Inference mode: make the weights read-only, so that what the kernels make of
        them on every call (the weights packed for the matrix products, the bias with
        forget_bias folded in) is made once and kept: about 1 ms saved per call for an
        LSTM with 512 units. See ``unfreeze`` to change the weights again. Outputs and
        gradients are the same either way. Returns the cell.

        While frozen, writing into a weight (``trainable_variables``, an optimizer step)
        raises NumPy's "read-only" ValueError; ``set_weights`` still works.
        """
        self._require_built("freeze")
        if not self._frozen:
            self._freeze_weights()
        return self

    def _freeze_weights(self):
        # Views made before the weights turn read-only stay writeable: the kernels get
        # those, since Numba compiles read-only arrays as a type of their own.
        self._kernel_views = {name: w.view() for name, w in self._weights.items()}
        for w in self._weights.values():
            w.flags.writeable = False
        self._frozen = True
        self._kept_forms = {}

    def unfreeze(self):
        """Leave inference mode: the weights writeable again, nothing kept. Returns the cell."""
        for w in self._weights.values():
            w.flags.writeable = True
        self._frozen = False
        self._kept_forms = self._kernel_views = {}
        return self

    @property
    def _kernel_weights(self):
        """{name: weight} as the kernels take them (while frozen, writeable views)."""
        return self._kernel_views if self._frozen else self._weights

    @property
    def frozen(self):
        """Whether ``freeze`` is in effect."""
        return self._frozen

    def _keeps(self):
        """Whether ``_kept`` keeps: while frozen, unless a weight was made writeable behind
        ``freeze``'s back (it could have been changed)."""
        return self._frozen and not any(w.flags.writeable for w in self._weights.values())

    def _kept(self, key, make):
        """``make()``, kept under ``key`` while ``_keeps()``."""
        if not self._keeps():
            return make()
        if key not in self._kept_forms:
            self._kept_forms[key] = make()
        return self._kept_forms[key]

    def _weight_count(self):
        return len(self._weight_specs(1))

    def _build_from(self, weights):
        """Build an unbuilt cell from weights: the first is the [D + R, ...] kernel."""
        specs = self._weight_specs(1)
        if not specs:
            return
        if len(weights) == 0 or weights[0].ndim != 2:
            raise ValueError(f"cannot infer the input depth of cell {self.name!r}: the first "
                             f"weight must be its 2-D kernel, got "
                             f"{weights[0].shape if weights else 'no weights'}")
        recurrent_width = specs[0][1][0] - 1  # the kernel has input_depth + recurrent rows
        depth = weights[0].shape[0] - recurrent_width
        if depth <= 0:
            raise ValueError(f"kernel of cell {self.name!r} has {weights[0].shape[0]} rows, "
                             f"not more than the recurrent width {recurrent_width}")
        dtype = weights[0].dtype if weights[0].dtype in FLOAT_DTYPES else None
        self.build(depth, dtype=None if self.dtype is not None else dtype)

    def named_weights(self):
        """{TensorFlow variable name: copy of the weight}, e.g. 'rnn/lstm_cell/kernel'."""
        self._require_built("named_weights")
        return {f"{self.variable_prefix}/{name}": w.copy() for name, w in self._weights.items()}

    @property
    def variable_prefix(self):
        """The scope under which TensorFlow would name this cell's variables."""
        return self.name if self._scope is None else f"{self._scope}/{self.name}"

    def _set_scope(self, scope):
        self._scope = scope

    def _require_built(self, what):
        if not self.built and self._weight_specs(1):
            raise ValueError(f"cell {self.name!r} has no weights yet: call build(input_depth), "
                             f"set_weights() or run it once before {what}()")

    def __repr__(self):
        return f"{type(self).__name__}(name={self.name!r}, state_size={self.state_size!r})"


def gate_gradients(key, like, plan):
    """Scratch memory (``workspace``) for a backward kernel's gradients of [T, B, G]
    pre-activations, shaped and typed like ``like``: zeros where the kernel writes
    nothing, the steps past a sequence's end, which still enter the weight gradients'
    products."""
    grads = workspace.scratch(("gate gradients", key), like.shape, like.dtype)
    if plan.lengths.size and plan.lengths.min() < like.shape[0]:
        grads.fill(0)
    return grads


def size_shape(size):
    """A state or output size (an int, or a shape tuple for custom cells) as a shape."""
    if isinstance(size, (int, np.integer)) or np.ndim(size) == 0:  # ints first: cheaper
        return (int(size),)
    return tuple(int(s) for s in size)


def _initial_value(init, shape, dtype, rng):
    if init == "zeros":
        return np.zeros(shape, dtype=dtype)
    if init == "ones":
        return np.ones(shape, dtype=dtype)
    # Glorot uniform, with fans computed as TensorFlow does (1-D: fan_in = fan_out = n).
    fan_in, fan_out = (shape[0], shape[0]) if len(shape) == 1 else shape
    limit = np.sqrt(6.0 / (fan_in + fan_out))
    return rng.uniform(-limit, limit, size=shape).astype(dtype)


class KernelCell(RNNCell):
    """A built-in cell: whole sequences run in a compiled kernel.

    Adding a built-in cell means a kernel file in ``numba_rnn/kernels`` and a subclass
    that says how to use it:

    - ``_weight_specs(input_depth)``: its TensorFlow variables;
    - ``_input_projection()``: (W_x [D, G], b [G]) applied to all steps in one GEMM;
    - ``_state_arrays(leaves)`` / ``_state_leaves(arrays)``: the state's flattened
      leaves ([B, s] each) to the arrays the kernel updates in place, and back;
    - ``_recur(xw, plan, arrays, out, saved=None)``: run the kernel over the plan,
      filling ``saved`` (made by ``_saved(steps, batch, dtype)``) for the backward pass;
      it gets the inputs x [T, B, D] instead of xw when ``_projects_in_kernel`` is True
      (its kernel then computes each step's x W_x + b itself);
    - ``_recur_backward(plan, saved, out, arrays0, d_out, d_arrays, grads)``: run the
      backward kernel; returns the gradient of the input projection ``xw``, turns
      ``d_arrays`` into the gradient of the initial state ``arrays0`` and adds the
      recurrent weights' gradients to ``grads`` ({weight name: array});
    - ``_input_projection_grads(grads, d_w_x, d_b)``: add the input projection's
      gradients to ``grads`` (default: rows of "kernel" and "bias");
    - ``_splits_columns()``: whether ``_recur`` can split the hidden units across
      threads when ``plan.column_parts`` > 1 (inference on batches too small to split
      by rows); default False;
    - ``_step_function(dtype)``: (a compiled one-step function ``step(params, x, state)
      -> (output, state leaves)``, its params), for raw_rnn's compiled loop; None if
      the cell's state form is not supported there.

    What the kernels get made from the weights (packed panels, a folded bias) comes from
    ``_packed_recurrent``, ``_packed_input_projection`` or ``_kept``, so that a frozen
    cell makes it only once.
    """

    # True when the kernel computes each step's x W_x + b itself: _recur then gets x.
    _projects_in_kernel = False

    def __init__(self, num_units, activation=None, name=None, dtype=None, seed=None):
        super().__init__(name=name, dtype=dtype, seed=seed)
        from ..kernels.common import activation_code

        self.num_units = positive_int(num_units, "num_units")
        self.activation = activation
        self._act = activation_code(activation)

    def _state_arrays(self, leaves):
        return list(leaves)

    def _state_leaves(self, arrays):
        return list(arrays)

    def _saved(self, steps, batch, dtype):
        return ()

    def _splits_columns(self):
        return False

    def _packed_input_projection(self, transient=False):
        """(``pack_panels(W_x)``, b) of ``_input_projection()``, kept while frozen. With
        ``transient`` (one kernel call uses the panels and drops them), the panels of an
        unfrozen cell are packed into scratch memory (``workspace``)."""
        def make():
            w_x, bias = self._input_projection()
            return self._pack(w_x, "input projection", transient), bias
        return self._kept("input projection", make)

    def _packed_recurrent(self, name, transposed=False, transient=False):
        """``pack_panels`` of the recurrent rows (those after the input's) of weight
        ``name``, or of their transpose, kept while frozen; ``transient`` as in
        ``_packed_input_projection``."""
        def make():
            w = self._kernel_weights[name][self.input_depth:]
            return self._pack(w.T if transposed else w, (name, transposed), transient)
        return self._kept((name, transposed), make)

    def _pack(self, w, key, transient):
        if transient and not self._keeps():  # else kept, or held by the caller
            return packed_scratch(w, key)
        return pack_panels(w)

    def _project(self, x):
        """x W_x + b for every step at once: [T, B, D] -> [T, B, G]."""
        w_x_panels, bias = self._packed_input_projection(transient=True)
        steps, batch, depth = x.shape
        xw = affine_panels(x.reshape(steps * batch, depth), w_x_panels, bias)
        return xw.reshape(steps, batch, len(bias))

    def _recur_inputs(self, x):
        """What ``_recur`` takes: x W_x + b, or x itself if the kernel projects."""
        return x if self._projects_in_kernel else self._project(x)

    def _input_projection_grads(self, grads, d_w_x, d_b):
        grads["kernel"][:self.input_depth] += d_w_x
        grads["bias"] += d_b

    def __call__(self, inputs, state):
        return step_with_dynamic_rnn(self, inputs, state)


def step_with_dynamic_rnn(cell, inputs, state):
    """One step of a built-in cell: inputs [B, D], state -> (output, new state)."""
    from ..rnn import dynamic_rnn, frozen_step

    inputs = np.asarray(inputs)
    if inputs.ndim != 2:
        raise ValueError(f"inputs of one step must have shape [batch_size, depth], "
                         f"got shape {inputs.shape}")
    result = frozen_step(cell, inputs, state)
    if result is not None:
        return result
    outputs, new_state = dynamic_rnn(cell, inputs[None], initial_state=state,
                                     time_major=True, scope=cell._scope)
    return outputs[0], new_state
