"""state_saving_rnn and StateSaver: state carried from one call to the next, by name."""
import numpy as np

from . import checks, nest
from .rnn import static_rnn


class StateSaver:
    """Keeps RNN states between calls so long sequences can be fed in segments.

    ``initial_states`` maps each state name to the value a sequence starts from: an
    array ``[s]`` (the same for every sequence) or ``[batch_size, s]``. Without keys the
    saver holds one state per name for the whole batch. With keys (``set_keys``, one
    hashable per batch row, e.g. a sequence id) it holds a state per sequence key, so the
    batch may change from one segment to the next; a key seen for the first time starts
    from the initial state. ``reset()`` forgets everything, ``reset(keys)`` only those
    sequences (use it when a sequence ends). ``state(name)`` and ``save_state(name,
    value)`` are the interface ``state_saving_rnn`` uses, as in TensorFlow.
    """

    def __init__(self, initial_states, batch_size=None):
        if not isinstance(initial_states, dict) or not initial_states:
            raise ValueError("initial_states must be a non-empty dict {state name: array}")
        self._initial = {}
        for name, value in initial_states.items():
            value = np.array(value, copy=True)
            if value.dtype.kind != "f" or value.ndim not in (1, 2):
                raise ValueError(f"initial state {name!r} must be a float array [s] or "
                                 f"[batch_size, s], got dtype {value.dtype} shape {value.shape}")
            self._initial[name] = value
        self.batch_size = batch_size
        self._keys = None
        self._saved = {}         # name -> [B, s] (no keys)
        self._saved_by_key = {}  # (name, key) -> [s]

    def set_keys(self, keys):
        """The sequence keys of the rows of the next batch (None: no keys)."""
        if keys is not None:
            keys = list(keys)
            if len(set(keys)) != len(keys):
                raise ValueError("keys must be distinct within a batch")
            self.batch_size = len(keys)
        self._keys = keys

    def state(self, name):
        initial = self._initial_value(name)
        if self._keys is not None:
            rows = [self._saved_by_key.get((name, key), initial) for key in self._keys]
            return np.stack(rows) if rows else np.zeros((0,) + initial.shape, initial.dtype)
        if name in self._saved:
            return self._saved[name].copy()
        if initial.ndim == 2:
            return initial.copy()
        if self.batch_size is None:
            raise ValueError(f"initial state {name!r} has shape {initial.shape}: give "
                             f"batch_size, [batch_size, s] initial states, or keys")
        return np.tile(initial, (self.batch_size, 1))

    def save_state(self, name, value):
        self._initial_value(name)
        value = np.array(value, copy=True)
        if self._keys is not None:
            for key, row in zip(self._keys, value):
                self._saved_by_key[(name, key)] = row
        else:
            self._saved[name] = value

    def reset(self, keys=None):
        """Forget saved states: all of them, or those of the given sequence keys."""
        if keys is None:
            self._saved.clear()
            self._saved_by_key.clear()
            return
        keys = set(keys)
        for name_key in [nk for nk in self._saved_by_key if nk[1] in keys]:
            del self._saved_by_key[name_key]

    def _initial_value(self, name):
        if name not in self._initial:
            raise KeyError(f"no state named {name!r}; this saver knows {sorted(self._initial)}")
        initial = self._initial[name]
        if self._keys is not None and initial.ndim == 2:
            raise ValueError(f"initial state {name!r} is per batch row [batch_size, s]; with "
                             f"keys give it per sequence, shape [s]")
        return initial


def state_saving_rnn(cell, inputs, state_saver, state_name, sequence_length=None, scope=None):
    """``static_rnn`` whose initial state comes from ``state_saver`` and whose final state
    is saved back to it, so consecutive calls continue the same sequences.

    ``inputs`` is a list of per-step ``[batch_size, depth]`` arrays. ``state_name`` is a
    string when ``cell.state_size`` is a single size, else a structure of strings nested
    like it (e.g. ``("c", "h")`` for an LSTM). ``state_saver`` is any object with
    ``state(name)`` and ``save_state(name, value)``; ``StateSaver`` is ready to use.
    Returns ``(outputs, state)`` as ``static_rnn`` does.
    """
    checks.check_cell(cell)
    for method in ("state", "save_state"):
        if not callable(getattr(state_saver, method, None)):
            raise TypeError(f"state_saver must have a {method}() method, got "
                            f"{type(state_saver).__name__}")
    sizes = cell.state_size
    if not nest.same_structure(sizes, state_name) or not all(
            isinstance(n, str) for n in nest.flatten(state_name)):
        raise ValueError(f"state_name must be strings nested like cell.state_size {sizes!r}, "
                         f"got {state_name!r}")
    names = nest.flatten(state_name)
    initial = nest.pack_sequence_as(sizes, [state_saver.state(n) for n in names])
    outputs, state = static_rnn(cell, inputs, initial_state=initial,
                                sequence_length=sequence_length, scope=scope)
    for name, value in zip(names, nest.flatten(state)):
        state_saver.save_state(name, value)
    return outputs, state
