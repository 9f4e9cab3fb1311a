"""Save and load cells: one ``.npz`` file with the weights and a JSON config of the cell.

::

    save("model.npz", cell)      # a cell, a MultiRNNCell, or a tuple of them (e.g. (fw, bw))
    cell = load("model.npz")     # the same cell type, options, names, dtype and weights

The file is a plain NumPy ``.npz`` archive (``np.load(path)`` reads it too) holding:

- ``config``: a UTF-8 JSON document stored as a uint8 array: the format name and version,
  the numba_rnn version that wrote it, the cell tree (type, sizes, options, name, dtype,
  input depth) and, for every weight, its name, shape, dtype and SHA-256;
- ``w0``, ``w1``, ...: the weights, in ``get_weights()`` order.

Loading never unpickles (object arrays are refused), reads each array header before its
data, checks every shape and dtype against the cell the config describes and every
checksum, and raises ``WeightsFileError`` (a ``ValueError``) naming what is wrong for a
truncated, damaged, tampered or foreign file.
"""
import hashlib
import json
import os
import tempfile
import zipfile
import zlib

import numpy as np

from .cells import BasicLSTMCell, BasicRNNCell, GRUCell, LSTMCell, MultiRNNCell, RNNCell
from .kernels.common import ACTIVATIONS

FORMAT = "numba_rnn.weights"
FORMAT_VERSION = 1
MAX_CONFIG_BYTES = 1 << 20  # a config is a few kB; anything near this is not ours
MAX_HEADER_BYTES = 1 << 16  # an .npy header, with room to spare
_NAMES = {code: name for name, code in ACTIVATIONS.items()}

# Options of each cell type, as stored in the config (besides type, name, dtype, input_depth).
CELL_OPTIONS = {
    "BasicRNNCell": ("num_units", "activation"),
    "GRUCell": ("num_units", "activation", "reset_after"),
    "BasicLSTMCell": ("num_units", "forget_bias", "state_is_tuple", "activation"),
    "LSTMCell": ("num_units", "use_peepholes", "cell_clip", "num_proj", "proj_clip",
                 "forget_bias", "state_is_tuple", "activation"),
}
CELL_TYPES = {"BasicRNNCell": BasicRNNCell, "GRUCell": GRUCell, "BasicLSTMCell": BasicLSTMCell,
              "LSTMCell": LSTMCell}


class WeightsFileError(ValueError):
    """A weights file that cannot be loaded: not an .npz, damaged, tampered or foreign."""


# ------------------------------------------------------------------------------ save
def save(path, cell):
    """Write ``cell``'s configuration and weights to ``path`` (one ``.npz`` file).

    ``cell`` is a built-in cell (``BasicRNNCell``, ``GRUCell``, ``BasicLSTMCell``,
    ``LSTMCell``), a ``MultiRNNCell`` of them, or a tuple of any of these (for example
    ``(cell_fw, cell_bw)``), with weights (built, loaded or run once). ``path`` is a file
    name (written as given, no extension added, replaced atomically) or a binary file
    object. Custom ``RNNCell`` subclasses cannot be saved: their options are unknown here.

    >>> import io, numpy as np, numba_rnn as nr
    >>> cell = nr.GRUCell(4, reset_after=True, seed=0)
    >>> cell.build(3)
    >>> buffer = io.BytesIO()
    >>> nr.save(buffer, cell)
    >>> copy = nr.load(io.BytesIO(buffer.getvalue()))
    >>> type(copy).__name__, copy.reset_after, copy.input_depth
    ('GRUCell', True, 3)
    >>> all(np.array_equal(a, b) for a, b in zip(cell.get_weights(), copy.get_weights()))
    True
    """
    weights = []
    tree = _describe(cell, "cell", weights)
    entries = []
    for i, (where, array) in enumerate(weights):
        entries.append({"key": f"w{i}", "name": where, "shape": list(array.shape),
                        "dtype": array.dtype.name, "sha256": _sha256(array)})
    from . import __version__

    config = {"format": FORMAT, "format_version": FORMAT_VERSION, "numba_rnn_version": __version__,
              "cell": tree, "weights": entries}
    try:
        text = json.dumps(config, allow_nan=False, sort_keys=True)
    except ValueError:
        raise ValueError("cannot save a cell with a non-finite option (inf or NaN in "
                         "forget_bias, cell_clip or proj_clip): JSON cannot hold it") from None
    arrays = {"config": np.frombuffer(text.encode("utf-8"), dtype=np.uint8)}
    arrays.update((f"w{i}", array) for i, (_, array) in enumerate(weights))
    if hasattr(path, "write"):
        np.savez(path, **arrays)
        return
    path = os.fspath(path)
    directory = os.path.dirname(os.path.abspath(path))
    fd, tmp = tempfile.mkstemp(dir=directory, prefix=".numba_rnn-", suffix=".npz.tmp")
    try:
        with os.fdopen(fd, "wb") as f:
            np.savez(f, **arrays)
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.remove(tmp)
        raise


def _describe(cell, where, weights):
    """Config of ``cell``; appends (name, weight) pairs to ``weights`` unless it is None."""
    if isinstance(cell, tuple) and not hasattr(cell, "_fields"):
        if not cell:
            raise ValueError(f"{where} is an empty tuple: nothing to save")
        return {"type": "tuple",
                "items": [_describe(c, f"{where}[{i}]", weights) for i, c in enumerate(cell)]}
    if isinstance(cell, list):
        return _describe(tuple(cell), where, weights)
    if type(cell) is MultiRNNCell:
        return {"type": "MultiRNNCell", "name": cell.name, "state_is_tuple": cell.state_is_tuple,
                "cells": [_describe(c, f"{where}.cells[{i}]", weights)
                          for i, c in enumerate(cell.cells)]}
    kind = type(cell).__name__
    if kind not in CELL_TYPES or type(cell) is not CELL_TYPES[kind]:
        what = kind if isinstance(cell, RNNCell) else f"a {kind} object, not a cell"
        raise TypeError(f"cannot save {where}: {what}. save() handles BasicRNNCell, GRUCell, "
                        f"BasicLSTMCell, LSTMCell, MultiRNNCell and tuples of them")
    if not cell.built:
        raise ValueError(f"cannot save {where} ({kind} {cell.name!r}): it has no weights yet; "
                         f"build it, set its weights or run it first")
    config = {"type": kind, "name": cell.name, "dtype": cell.dtype.name,
              "input_depth": cell.input_depth}
    for option in CELL_OPTIONS[kind]:
        value = getattr(cell, option)
        if option == "activation":
            value = _NAMES[cell._act]
        elif option in ("cell_clip", "proj_clip") and value is not None:
            value = float(value)
        config[option] = value
    if weights is not None:
        for name, array in cell._weights.items():
            weights.append((f"{where}/{name}", np.ascontiguousarray(array)))
    return config


def _sha256(array):
    return hashlib.sha256(np.ascontiguousarray(array).tobytes()).hexdigest()


# ------------------------------------------------------------------------------ load
def load(path):
    """Read a cell written by ``save``: a built cell with its weights (or a tuple of them).

    ``path`` is a file name or a binary file object. Nothing is unpickled. Raises
    ``WeightsFileError`` naming the problem when the file is not an .npz archive, is
    truncated or damaged, was not written by ``save``, was written by a newer format
    version, or when any weight's shape, dtype or checksum disagrees with the config.
    """
    name = getattr(path, "name", None) if hasattr(path, "read") else os.fspath(path)
    label = repr(name) if name else "the file"
    try:
        archive = zipfile.ZipFile(path)
    except FileNotFoundError:
        raise
    except (zipfile.BadZipFile, OSError, EOFError, ValueError) as exc:
        raise WeightsFileError(f"{label} is not a numba_rnn weights file: not a readable .npz "
                               f"(zip) archive, or truncated ({exc})") from None
    with archive:
        try:
            return _load(archive, label)
        except WeightsFileError:
            raise
        except (zipfile.BadZipFile, EOFError, zlib.error, OSError, KeyError) as exc:
            raise WeightsFileError(f"{label} is damaged or truncated: {exc}") from None


def _load(archive, label):
    members = {info.filename: info for info in archive.infolist()}
    if "config.npy" not in members:
        found = sorted(members)[:5]
        raise WeightsFileError(f"{label} is not a numba_rnn weights file: it has no 'config' "
                               f"entry (found {found}{' ...' if len(members) > 5 else ''})")
    config_array = _read_array(archive, members["config.npy"], label, "config",
                               max_bytes=MAX_CONFIG_BYTES)
    if config_array.dtype != np.uint8 or config_array.ndim != 1:
        raise WeightsFileError(f"{label}: 'config' must be a 1-D uint8 array (UTF-8 JSON), got "
                               f"{config_array.dtype} of shape {config_array.shape}")
    try:
        config = json.loads(config_array.tobytes().decode("utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise WeightsFileError(f"{label}: its config is not valid UTF-8 JSON ({exc})") from None
    _check_header(config, label)

    entries = config["weights"]
    cell, expected = _build(config["cell"], "cell", label)
    if len(entries) != len(expected):
        raise WeightsFileError(f"{label}: its config lists {len(entries)} weights but the cell it "
                               f"describes has {len(expected)}")
    keys = {f"w{i}.npy" for i in range(len(expected))}
    extra = sorted(set(members) - keys - {"config.npy"})
    if extra:
        raise WeightsFileError(f"{label} has entries that are not in its config: {extra}")
    loaded = {}
    for i, (entry, (where, layer, shape, dtype)) in enumerate(zip(entries, expected)):
        _check_entry(entry, i, where, shape, dtype, label)
        member = members.get(f"w{i}.npy")
        if member is None:
            raise WeightsFileError(f"{label} is missing weight w{i} ({where})")
        array = _read_array(archive, member, label, f"w{i} ({where})", shape=shape, dtype=dtype)
        if _sha256(array) != entry["sha256"]:
            raise WeightsFileError(f"{label}: weight w{i} ({where}) does not match its SHA-256 "
                                   f"checksum: the file was modified after it was saved")
        loaded.setdefault(id(layer), (layer, []))[1].append(array)
    for layer, arrays in loaded.values():
        layer.set_weights(arrays)
    return cell


def _check_header(config, label):
    if not isinstance(config, dict) or config.get("format") != FORMAT:
        found = config.get("format") if isinstance(config, dict) else type(config).__name__
        raise WeightsFileError(f"{label} is not a numba_rnn weights file: its config has format "
                               f"{found!r}, expected {FORMAT!r}")
    version = config.get("format_version")
    if not isinstance(version, int) or isinstance(version, bool) or version < 1:
        raise WeightsFileError(f"{label}: invalid format_version {version!r}")
    if version > FORMAT_VERSION:
        raise WeightsFileError(f"{label} was written in format version {version} (by numba_rnn "
                               f"{config.get('numba_rnn_version')!r}); this numba_rnn reads up "
                               f"to version {FORMAT_VERSION}: upgrade numba_rnn")
    if not isinstance(config.get("cell"), dict) or not isinstance(config.get("weights"), list):
        raise WeightsFileError(f"{label}: its config needs a 'cell' object and a 'weights' list")


def _check_entry(entry, i, where, shape, dtype, label):
    if not isinstance(entry, dict):
        raise WeightsFileError(f"{label}: weights[{i}] of its config is not an object")
    if entry.get("key") != f"w{i}":
        raise WeightsFileError(f"{label}: weights[{i}] has key {entry.get('key')!r}, "
                               f"expected 'w{i}'")
    if entry.get("name") != where:
        raise WeightsFileError(f"{label}: weight w{i} is named {entry.get('name')!r} but the "
                               f"cell config puts {where!r} there")
    if entry.get("shape") != list(shape):
        raise WeightsFileError(f"{label}: weight w{i} ({where}) is listed with shape "
                               f"{entry.get('shape')} but the cell config needs {list(shape)}")
    if entry.get("dtype") != dtype.name:
        raise WeightsFileError(f"{label}: weight w{i} ({where}) is listed as "
                               f"{entry.get('dtype')!r} but the cell is {dtype.name}")
    digest = entry.get("sha256")
    if not isinstance(digest, str) or len(digest) != 64:
        raise WeightsFileError(f"{label}: weight w{i} ({where}) has no valid sha256")


def _read_array(archive, info, label, what, shape=None, dtype=None, max_bytes=None):
    """One .npy member, its header checked before its data is read; never unpickles."""
    with archive.open(info) as f:
        try:
            major, minor = np.lib.format.read_magic(f)
            if (major, minor) == (1, 0):
                header = np.lib.format.read_array_header_1_0(f)
            elif (major, minor) == (2, 0):
                header = np.lib.format.read_array_header_2_0(f)
            else:
                raise ValueError(f"unsupported .npy version {major}.{minor}")
        except ValueError as exc:
            raise WeightsFileError(f"{label}: entry {what} is not a valid .npy array "
                                   f"({exc})") from None
        file_shape, fortran, file_dtype = header
        if file_dtype.hasobject:
            raise WeightsFileError(f"{label}: entry {what} holds Python objects (dtype "
                                   f"{file_dtype}); weights files never contain pickles")
        if shape is not None and tuple(file_shape) != tuple(shape):
            raise WeightsFileError(f"{label}: weight {what} has shape {tuple(file_shape)} but "
                                   f"the config needs {tuple(shape)}")
        if dtype is not None and file_dtype != dtype:
            raise WeightsFileError(f"{label}: weight {what} has dtype {file_dtype.str} but the "
                                   f"config needs {dtype.str}")
        nbytes = int(np.prod(file_shape, dtype=np.int64)) * file_dtype.itemsize
        if max_bytes is not None and nbytes > max_bytes:
            raise WeightsFileError(f"{label}: entry {what} is {nbytes} bytes, more than a "
                                   f"config can be ({max_bytes})")
        if not nbytes <= info.file_size <= nbytes + MAX_HEADER_BYTES:
            raise WeightsFileError(f"{label}: entry {what} is {info.file_size} bytes in the "
                                   f"archive but its header announces {nbytes} bytes of data")
        data = f.read(nbytes + 1)
    if len(data) != nbytes:
        raise WeightsFileError(f"{label}: entry {what} holds {len(data)} bytes of data, its "
                               f"header announces {nbytes}")
    order = "F" if fortran else "C"
    return np.frombuffer(data, dtype=file_dtype).reshape(file_shape, order=order).copy()


def _build(config, where, label):
    """An unbuilt cell from its config, and [(name, layer, shape, dtype)] per weight."""
    if not isinstance(config, dict):
        raise WeightsFileError(f"{label}: {where} in its config is not an object")
    kind = config.get("type")
    expected = []
    if kind == "tuple":
        _keys(config, {"type", "items"}, where, label)
        items = config["items"]
        if not isinstance(items, list) or not items:
            raise WeightsFileError(f"{label}: {where}.items must be a non-empty list")
        cells = []
        for i, item in enumerate(items):
            cell, more = _build(item, f"{where}[{i}]", label)
            cells.append(cell)
            expected += more
        return tuple(cells), expected
    if kind == "MultiRNNCell":
        _keys(config, {"type", "name", "state_is_tuple", "cells"}, where, label)
        layers = config["cells"]
        if not isinstance(layers, list) or not layers:
            raise WeightsFileError(f"{label}: {where}.cells must be a non-empty list")
        cells = []
        for i, item in enumerate(layers):
            cell, more = _build(item, f"{where}.cells[{i}]", label)
            if isinstance(cell, tuple):
                raise WeightsFileError(f"{label}: {where}.cells[{i}] is a tuple, not a cell")
            cells.append(cell)
            expected += more
        cell = _construct(MultiRNNCell, dict(cells=cells, state_is_tuple=_bool(
            config["state_is_tuple"], f"{where}.state_is_tuple", label), name=config["name"]),
            where, label)
        return cell, expected
    if kind not in CELL_TYPES:
        raise WeightsFileError(f"{label}: {where} has type {kind!r}; known types are "
                               f"{sorted(CELL_TYPES) + ['MultiRNNCell', 'tuple']}")
    options = CELL_OPTIONS[kind]
    _keys(config, {"type", "name", "dtype", "input_depth", *options}, where, label)
    kwargs = {option: config[option] for option in options}
    if not isinstance(config["name"], str):
        raise WeightsFileError(f"{label}: {where}.name must be a string")
    if config["dtype"] not in ("float32", "float64"):
        raise WeightsFileError(f"{label}: {where}.dtype must be 'float32' or 'float64', got "
                               f"{config['dtype']!r}")
    if kwargs["activation"] not in ACTIVATIONS:
        raise WeightsFileError(f"{label}: {where}.activation must be one of "
                               f"{sorted(ACTIVATIONS)}, got {kwargs['activation']!r}")
    for option in ("reset_after", "use_peepholes", "state_is_tuple"):
        if option in kwargs:
            kwargs[option] = _bool(kwargs[option], f"{where}.{option}", label)
    for option in ("num_units", "num_proj", "forget_bias", "cell_clip", "proj_clip"):
        value = kwargs.get(option)
        if value is not None and (isinstance(value, bool) or not isinstance(value, (int, float))):
            raise WeightsFileError(f"{label}: {where}.{option} must be a number, got {value!r}")
    cell = _construct(CELL_TYPES[kind], dict(kwargs, name=config["name"], dtype=config["dtype"]),
                      where, label)
    depth = config["input_depth"]
    if isinstance(depth, bool) or not isinstance(depth, int) or depth <= 0:
        raise WeightsFileError(f"{label}: {where}.input_depth must be a positive integer, got "
                               f"{depth!r}")
    dtype = np.dtype(config["dtype"])
    # Shapes only: nothing is allocated until the file shows it holds that much data.
    for name, shape, _ in cell._weight_specs(depth):
        expected.append((f"{where}/{name}", cell, tuple(shape), dtype))
    return cell, expected


def _keys(config, allowed, where, label):
    missing = sorted(allowed - set(config))
    unknown = sorted(set(config) - allowed)
    if missing or unknown:
        raise WeightsFileError(f"{label}: {where} ({config.get('type')}) "
                               + (f"lacks {missing}" if missing else "")
                               + (" and " if missing and unknown else "")
                               + (f"has unknown options {unknown}" if unknown else ""))


def _bool(value, where, label):
    if not isinstance(value, bool):
        raise WeightsFileError(f"{label}: {where} must be true or false, got {value!r}")
    return value


def _construct(cls, kwargs, where, label):
    try:
        return cls(**kwargs)
    except (TypeError, ValueError) as exc:
        raise WeightsFileError(f"{label}: {where} ({cls.__name__}) cannot be created from its "
                               f"config: {exc}") from None
