"""Gradients: ``vjp`` runs an RNN function and returns its backward pass (BPTT)."""
import collections
import inspect
import math

import numpy as np

from . import checks, nest, threads
from .engine import Tape
from .rnn import (
    _prepare,
    _prepare_bidirectional,
    bidirectional_dynamic_rnn,
    dynamic_rnn,
    stack_steps,
    static_rnn,
    unstack_steps,
)

Gradients = collections.namedtuple("Gradients", ("inputs", "initial_state", "weights"))
Gradients.__doc__ = """Gradients of a scalar loss with respect to the arguments of an RNN call.

``inputs`` is shaped like the inputs, ``initial_state`` like the state (for
bidirectional_dynamic_rnn: the pair (fw, bw)), and ``weights`` is a list aligned with
``cell.get_weights()`` (bidirectional: cell_fw's weights, then cell_bw's)."""


def vjp(fn, *args, **kwargs):
    """Run ``fn(*args, **kwargs)`` and return ``(result, backward)``.

    ``fn`` is ``dynamic_rnn``, ``bidirectional_dynamic_rnn`` or ``static_rnn`` with
    built-in cells. ``result`` is exactly what ``fn`` returns. ``backward(d_result)``
    takes the gradient of a loss with respect to ``result``, nested the same way (None
    for any part, or any leaf, means zero), and returns ``Gradients(inputs,
    initial_state, weights)``. It may be called any number of times, with different
    cotangents; each call gives fresh arrays.

    With ``swap_memory=True`` the forward pass keeps only a checkpoint of the state
    every ~sqrt(T) steps and the backward pass recomputes the activations in between:
    much less memory for long sequences, for about one more forward pass. The gradients
    are the same to rounding.

    Gradients are bitwise reproducible for the same inputs and thread count (no
    reduction depends on thread timing). Across thread counts they agree to rounding
    only, since the batch is split differently.

    Example, one SGD step on a sum-of-squares loss::

        (outputs, state), backward = nr.vjp(nr.dynamic_rnn, cell, x)
        loss = 0.5 * np.sum(outputs ** 2)
        grads = backward((outputs, None))   # d loss / d outputs = outputs
        cell.set_weights([w - 0.1 * g for w, g in zip(cell.get_weights(), grads.weights)])
    """
    handler = _HANDLERS.get(fn)
    if handler is None:
        names = ", ".join(f.__name__ for f in _HANDLERS)
        raise TypeError(f"vjp supports {names}; got {getattr(fn, '__name__', fn)!r}")
    bound = inspect.signature(fn).bind(*args, **kwargs)
    bound.apply_defaults()
    return handler(**bound.arguments)


def _checkpoint_every(swap_memory, steps):
    return max(1, math.isqrt(max(steps - 1, 0)) + 1) if swap_memory else None


def _dynamic(cell, inputs, sequence_length, initial_state, dtype, parallel_iterations,
             swap_memory, time_major, scope):
    run = _prepare(cell, inputs, sequence_length, initial_state, dtype, time_major,
                   checks.check_scope(scope, "rnn"))
    steps = np.shape(run.leaves[0])[run.time_axis]
    tape = Tape(_checkpoint_every(swap_memory, steps))
    with threads.thread_limit(parallel_iterations) as n_threads:
        result = run(n_threads, tape)

    def backward(d_result):
        d_outputs, d_state = _cotangents(result, d_result, ("outputs", "state"))
        with threads.thread_limit(parallel_iterations):
            return Gradients(*run.backward(tape, d_outputs, d_state))

    return result, backward


def _bidirectional(cell_fw, cell_bw, inputs, sequence_length, initial_state_fw,
                   initial_state_bw, dtype, parallel_iterations, swap_memory, time_major, scope):
    both = _prepare_bidirectional(cell_fw, cell_bw, inputs, sequence_length, initial_state_fw,
                                  initial_state_bw, dtype, time_major, scope)
    steps = np.shape(both.forward.leaves[0])[both.time_axis]
    tapes = (Tape(_checkpoint_every(swap_memory, steps)),
             Tape(_checkpoint_every(swap_memory, steps)))
    with threads.thread_limit(parallel_iterations) as n_threads:
        result = both(n_threads, tapes)

    def backward(d_result):
        d_outputs, d_states = _cotangents(result, d_result, ("outputs", "output_states"))
        with threads.thread_limit(parallel_iterations) as n_threads:
            return Gradients(*both.backward(tapes, d_outputs, d_states, n_threads))

    return result, backward


def _static(cell, inputs, initial_state, dtype, sequence_length, scope):
    checks.check_cell(cell)
    (outputs, state), backward_stacked = _dynamic(
        cell, stack_steps(inputs), sequence_length, initial_state, dtype, None, False, True,
        scope)
    result = (unstack_steps(outputs), state)

    def backward(d_result):
        d_outputs, d_state = _cotangents(result, d_result, ("outputs", "state"))
        grads = backward_stacked((stack_steps(d_outputs), d_state))
        return grads._replace(inputs=unstack_steps(grads.inputs))

    return result, backward


_HANDLERS = {dynamic_rnn: _dynamic, bidirectional_dynamic_rnn: _bidirectional,
             static_rnn: _static}


def _cotangents(result, d_result, names):
    """``d_result`` checked against ``result``: same nesting, same shapes; None -> zeros."""
    if d_result is None:
        d_result = (None, None)
    if not isinstance(d_result, (tuple, list)) or len(d_result) != len(result):
        raise ValueError(f"backward takes the gradient of the result, nested like it: a pair "
                         f"({', '.join(names)}), got {type(d_result).__name__}")
    return tuple(_cotangent(value, d, name) for value, d, name in zip(result, d_result, names))


def _cotangent(value, d, name):
    if d is None:
        return nest.map_structure(np.zeros_like, value)
    if not nest.same_structure(value, d):
        raise ValueError(f"the gradient of {name} must be nested like {name}, got a different "
                         f"structure")
    leaves = []
    for i, (v, g) in enumerate(zip(nest.flatten(value), nest.flatten(d))):
        where = name if not nest.is_sequence(value) else f"{name} leaf {i}"
        if g is None:
            leaves.append(np.zeros_like(v))
            continue
        g = np.asarray(g)
        if g.shape != v.shape:
            raise ValueError(f"the gradient of {where} must have shape {v.shape}, got {g.shape}")
        if g.dtype.kind not in "fiu":
            raise ValueError(f"the gradient of {where} must hold real numbers, got dtype "
                             f"{g.dtype}")
        leaves.append(g.astype(v.dtype, copy=False))
    return nest.pack_sequence_as(value, leaves)
