"""Nested structures of arrays: tuples, lists and namedtuples, as in ``tf.nest``.

A leaf is anything that is not a tuple or a list (an array, an int, None).
"""


def is_sequence(x):
    return isinstance(x, (tuple, list))


def flatten(structure):
    """Leaves of ``structure`` in depth-first order."""
    if not is_sequence(structure):
        return [structure]
    leaves = []
    for item in structure:
        # Leaves appended here rather than by a call per leaf: this runs several times
        # in every RNN call.
        if is_sequence(item):
            leaves.extend(flatten(item))
        else:
            leaves.append(item)
    return leaves


def pack_sequence_as(structure, leaves):
    """Rebuild ``structure`` with ``leaves`` (as returned by ``flatten``) in place of its leaves."""
    leaves = list(leaves)
    packed, used = _pack(structure, leaves, 0)
    if used != len(leaves):
        raise ValueError(f"structure has {used} leaves but {len(leaves)} values were given")
    return packed


def _pack(structure, leaves, i):
    if not is_sequence(structure):
        return leaves[i], i + 1
    items = []
    for item in structure:
        if is_sequence(item):
            packed, i = _pack(item, leaves, i)
        else:
            packed, i = leaves[i], i + 1
        items.append(packed)
    return _like(structure, items), i


def _like(structure, items):
    """``items`` in a sequence of the type of ``structure``."""
    if isinstance(structure, list):
        return items
    if hasattr(structure, "_fields"):  # namedtuple
        return type(structure)(*items)
    return tuple(items)


def map_structure(fn, *structures):
    """Apply ``fn`` leaf-wise to structures of the same shape."""
    for other in structures[1:]:
        assert_same_structure(structures[0], other)
    return _map(fn, structures)


def _map(fn, structures):
    if not is_sequence(structures[0]):
        return fn(*structures)
    return _like(structures[0], [_map(fn, items) for items in zip(*structures)])


def same_structure(a, b):
    """True when ``a`` and ``b`` nest the same way (sequence types may differ)."""
    a_nested, b_nested = is_sequence(a), is_sequence(b)
    if not (a_nested and b_nested):
        return a_nested == b_nested
    return len(a) == len(b) and all(same_structure(x, y) for x, y in zip(a, b))


def assert_same_structure(a, b, what="structure"):
    if not same_structure(a, b):
        raise ValueError(f"{what} does not match: expected the structure of {_shape_of(a)}, "
                         f"got {_shape_of(b)}")


def _shape_of(structure):
    """A short description of a structure for error messages (leaves shown as '*')."""
    if not is_sequence(structure):
        return "*"
    trailing = "," if len(structure) == 1 else ""
    return "(" + ", ".join(_shape_of(s) for s in structure) + trailing + ")"
