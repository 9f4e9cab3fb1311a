"""MultiRNNCell: a stack of cells, run layer by layer over the whole sequence."""
import numpy as np

from .. import nest
from .base import KernelCell, RNNCell, step_with_dynamic_rnn


class MultiRNNCell(RNNCell):
    """Cells stacked so that each layer's output is the next layer's input.

    The state is the tuple of the layers' states (``state_is_tuple=False``: their
    concatenation, which requires every layer to have a single-array state). The output
    is the last layer's. ``get_weights()`` is every layer's list, in layer order.
    ``dynamic_rnn`` runs one layer over the whole sequence before the next, which gives
    the same results as stepping the stack per time step and lets each layer's input
    projection be a single matrix product.
    """

    _default_name = "multi_rnn_cell"

    def __init__(self, cells, state_is_tuple=True, name=None):
        cells = list(cells) if isinstance(cells, (list, tuple)) else None
        if not cells:
            raise ValueError("cells must be a non-empty list of RNNCell instances")
        for i, cell in enumerate(cells):
            if not isinstance(cell, RNNCell):
                raise TypeError(f"cells[{i}] must be an RNNCell, got {type(cell).__name__}")
        if len({id(c) for c in cells}) != len(cells):
            raise ValueError("cells must be distinct objects: reusing one cell in two layers "
                             "would share its weights")
        self.state_is_tuple = bool(state_is_tuple)
        if not self.state_is_tuple and any(nest.is_sequence(c.state_size) for c in cells):
            raise ValueError("state_is_tuple=False needs every cell to have a single-array "
                             "state; some cells have tuple states")
        # Not RNNCell.__init__: dtype and input_depth are the layers', not the stack's own.
        self.name = self._default_name if name is None else str(name)
        self.cells = cells
        self._set_scope(None)  # layers are named cell_0, cell_1, ... even before a run

    @property
    def state_size(self):
        sizes = tuple(cell.state_size for cell in self.cells)
        return sizes if self.state_is_tuple else sum(sizes)

    @property
    def output_size(self):
        return self.cells[-1].output_size

    @property
    def built(self):
        return all(getattr(cell, "built", True) for cell in self.cells)

    @property
    def input_depth(self):
        return getattr(self.cells[0], "input_depth", None)

    @property
    def dtype(self):
        return getattr(self.cells[0], "dtype", None)

    def build(self, input_depth, dtype=None):
        depth = input_depth
        for cell in self.cells:
            if isinstance(cell, (KernelCell, MultiRNNCell)):  # custom cells build themselves
                cell.build(depth, dtype=dtype)
                dtype = cell.dtype if dtype is None else dtype
            if not isinstance(cell.output_size, int):
                raise ValueError(f"layer {cell.name!r} has output_size {cell.output_size!r}; "
                                 "stacked layers need integer output sizes")
            depth = cell.output_size

    def get_weights(self):
        return [w for cell in self.cells for w in cell.get_weights()]

    @property
    def trainable_variables(self):
        return [w for cell in self.cells for w in cell.trainable_variables]

    def set_weights(self, weights):
        """Load every layer's weights, in layer order (builds unbuilt layers)."""
        weights = list(weights)
        counts = [cell._weight_count() for cell in self.cells]
        if sum(counts) != len(weights):
            raise ValueError(f"MultiRNNCell has {sum(counts)} weights ({counts} per layer), "
                             f"got {len(weights)} arrays")
        offset = 0
        for cell, count in zip(self.cells, counts):
            cell.set_weights(weights[offset:offset + count])
            offset += count

    def _weight_count(self):
        return sum(cell._weight_count() for cell in self.cells)

    def _built_in_layers(self):
        return [cell for cell in self.cells if isinstance(cell, (KernelCell, MultiRNNCell))]

    def freeze(self):
        """``RNNCell.freeze`` for every built-in layer (custom cells are left as they
        are). Returns the cell."""
        for cell in self._built_in_layers():
            cell.freeze()
        return self

    def unfreeze(self):
        for cell in self._built_in_layers():
            cell.unfreeze()
        return self

    @property
    def frozen(self):
        return all(cell.frozen for cell in self._built_in_layers())

    def named_weights(self):
        named = {}
        for cell in self.cells:
            named.update(cell.named_weights())
        return named

    def _set_scope(self, scope):
        self._scope = scope
        for i, cell in enumerate(self.cells):
            cell._set_scope(f"{self.variable_prefix}/cell_{i}")

    def _layer_states(self, state):
        """Split a state of this cell into one state per layer."""
        if self.state_is_tuple:
            return list(state)
        bounds = np.cumsum([0] + [cell.state_size for cell in self.cells])
        return [state[:, a:b] for a, b in zip(bounds[:-1], bounds[1:])]

    def _join_layer_states(self, states):
        return tuple(states) if self.state_is_tuple else np.concatenate(states, axis=1)

    def __call__(self, inputs, state):
        return step_with_dynamic_rnn(self, inputs, state)


