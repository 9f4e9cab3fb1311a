"""Validation and normalisation of the arguments of the RNN functions.

Every check raises an error that names the argument, what was expected and what was
given, before any kernel runs. Nothing here writes to the caller's arrays.
"""

import numpy as np

from . import nest
from .cells.base import FLOAT_DTYPES, KernelCell, RNNCell, float_dtype, size_shape
from .cells.multi import MultiRNNCell


def check_cell(cell, what="cell"):
    if not isinstance(cell, RNNCell):
        raise TypeError(f"{what} must be an instance of RNNCell, got {type(cell).__name__}")


def check_inputs(inputs, time_major, what="inputs"):
    """Leaves of ``inputs`` as arrays, with the shared (max_time, batch_size).

    Returns (leaves, max_time, batch_size, dtype) with the leaves still in the caller's
    layout (nothing copied yet).
    """
    if inputs is None:
        raise ValueError(f"{what} must be an array or a nested tuple of arrays, got None")
    leaves = nest.flatten(inputs)
    if nest.is_sequence(inputs) and not leaves:
        raise ValueError(f"{what} must not be an empty list or tuple")
    arrays = []
    for i, leaf in enumerate(leaves):
        name = what if len(leaves) == 1 and not nest.is_sequence(inputs) else f"{what} leaf {i}"
        if leaf is None:
            raise ValueError(f"{name} is None; every input must be an array")
        array = np.asarray(leaf)
        if array.dtype not in FLOAT_DTYPES:
            raise ValueError(f"{name} must hold float32 or float64 values, got dtype "
                             f"{array.dtype} (cast integer data with .astype(np.float32))")
        if array.ndim < 2:
            layout = "[max_time, batch_size, ...]" if time_major else "[batch_size, max_time, ...]"
            raise ValueError(f"{name} must have shape {layout}, got shape {array.shape}")
        arrays.append(array)
    time_axis, batch_axis = (0, 1) if time_major else (1, 0)
    steps, batch = arrays[0].shape[time_axis], arrays[0].shape[batch_axis]
    for i, array in enumerate(arrays[1:], start=1):
        if (array.shape[time_axis], array.shape[batch_axis]) != (steps, batch):
            raise ValueError(f"all {what} must agree on max_time and batch_size: leaf 0 has "
                             f"max_time {steps} and batch_size {batch}, leaf {i} has max_time "
                             f"{array.shape[time_axis]} and batch_size {array.shape[batch_axis]}")
    dtypes = {a.dtype for a in arrays}
    if len(dtypes) > 1:
        raise ValueError(f"all {what} must have one dtype, got {sorted(map(str, dtypes))}")
    return arrays, steps, batch, arrays[0].dtype


def resolve_dtype(dtype, input_dtype, what="dtype"):
    """The dtype of the run: the inputs'; ``dtype`` if given must agree with it."""
    if dtype is not None and float_dtype(dtype, what) != input_dtype:
        raise ValueError(f"{what} is {np.dtype(dtype)} but the inputs are {input_dtype}; "
                         f"they must match")
    return input_dtype


def check_cell_fits(cell, inputs, dtype, what="cell"):
    """Build ``cell`` for the inputs' depth and dtype, or explain why it cannot run them."""
    if not isinstance(cell, (KernelCell, MultiRNNCell)):
        return  # custom cells manage their own weights
    if nest.is_sequence(inputs):
        raise ValueError(f"{what} {cell.name!r} takes a single input array, got a nested "
                         f"structure of {len(nest.flatten(inputs))} arrays")
    if inputs.ndim != 3:
        raise ValueError(f"inputs of {what} {cell.name!r} must be 3-D "
                         f"[batch, time, depth] or [time, batch, depth], got shape "
                         f"{inputs.shape}")
    depth = inputs.shape[2]
    if depth == 0:
        raise ValueError(f"inputs have depth 0; {what} {cell.name!r} needs at least one feature")
    first = cell.cells[0] if isinstance(cell, MultiRNNCell) else cell
    built_depth = getattr(first, "input_depth", None)
    if built_depth is not None and built_depth != depth:
        raise ValueError(f"{what} {first.name!r} was built for inputs of depth "
                         f"{first.input_depth}, got inputs of depth {depth}")
    layers = cell.cells if isinstance(cell, MultiRNNCell) else [cell]
    for layer in layers:
        layer_dtype = getattr(layer, "dtype", None)
        if layer_dtype is not None and layer_dtype != dtype:
            raise ValueError(f"{what} {layer.name!r} holds {layer.dtype} weights but the inputs "
                             f"are {dtype}; create the cell with dtype={dtype.name!r} or cast "
                             f"the inputs")
    cell.build(depth, dtype=dtype)


def check_lengths(sequence_length, batch, steps, what="sequence_length"):
    """``sequence_length`` as an int64 [batch] array (all ``steps`` when None)."""
    if sequence_length is None:
        return np.full(batch, steps, dtype=np.int64)
    lengths = np.asarray(sequence_length)
    if lengths.shape != (batch,):
        raise ValueError(f"{what} must be a vector of shape [batch_size] = ({batch},), got "
                         f"shape {lengths.shape}")
    if lengths.dtype.kind == "f":
        if np.isnan(lengths).any():
            raise ValueError(f"{what} must be whole numbers, got NaN")
        if np.any(lengths != np.round(lengths)):
            raise ValueError(f"{what} must be whole numbers, got {lengths}")
    elif lengths.dtype.kind not in "iu":
        raise ValueError(f"{what} must be an integer vector, got dtype {lengths.dtype}")
    if batch and lengths.min() < 0:
        raise ValueError(f"{what} must be >= 0, got {lengths.min()}")
    if batch and lengths.max() > steps:
        raise ValueError(f"{what} must be <= max_time = {steps}, got {lengths.max()}")
    return lengths.astype(np.int64)


def check_state(cell, state, batch, dtype, what="initial_state"):
    """``state`` (or the zero state when None) as fresh arrays in the cell's structure."""
    if state is None:
        return cell.zero_state(batch, dtype)
    sizes = cell.state_size
    if not nest.same_structure(sizes, state):
        raise ValueError(f"{what} must have the structure of cell.state_size {sizes!r}, got "
                         f"{_describe(state)}")
    leaves = []
    for i, (size, leaf) in enumerate(zip(nest.flatten(sizes), nest.flatten(state))):
        name = what if not nest.is_sequence(sizes) else f"{what} leaf {i}"
        if isinstance(leaf, np.ndarray):
            if leaf.dtype != dtype:
                raise ValueError(f"{name} has dtype {leaf.dtype} but the inputs are {dtype}; "
                                 f"they must match")
        else:
            leaf = np.asarray(leaf, dtype=dtype)
        shape = (batch,) + size_shape(size)
        if leaf.shape != shape:
            raise ValueError(f"{name} must have shape {shape} (batch_size, state size), got "
                             f"{leaf.shape}")
        leaves.append(leaf)
    return nest.pack_sequence_as(sizes, leaves)


def _describe(structure):
    if nest.is_sequence(structure):
        return "(" + ", ".join(_describe(s) for s in structure) + ")"
    shape = getattr(structure, "shape", None)
    return f"array{tuple(shape)}" if shape is not None else type(structure).__name__


def check_scope(scope, default):
    if scope is None:
        return default
    if not isinstance(scope, str) or not scope:
        raise ValueError(f"scope must be a non-empty string, got {scope!r}")
    return scope
