"""What a flat model's output channels mean, and the loss and decoding that follow from it.

A flat model (DeepLab, PDN, DSNet, SPGNet) produces ``num_outputs`` score maps; an :class:`Outputs` object turns
a label map of a dataset's own ids into its per-pixel loss and turns scores back into the dataset's ids:

- :class:`RawClasses` (:mod:`.raw`): labels already are class indices ``0..C-1`` (ignore 255), as in the papers'
  tables;
- :class:`DatasetClasses` (:mod:`.dataset`): one dataset's labels that have a concept, in id order (single-dataset
  training);
- :class:`LeafClasses` (:mod:`.leaves`): one output per leaf of the tree, for joint training on several datasets.

:func:`make_outputs` picks one from a flat model's ``num_classes`` and ``datasets`` arguments.
"""

from __future__ import annotations

from collections.abc import Sequence

from hierseg.core.errors import HiersegError
from hierseg.models.outputs.base import Outputs
from hierseg.models.outputs.dataset import DatasetClasses
from hierseg.models.outputs.leaves import LeafClasses
from hierseg.models.outputs.raw import RawClasses
from hierseg.taxonomy.neurons import neuron_graph
from hierseg.taxonomy.tree import Taxonomy, require_taxonomy

__all__ = ["DatasetClasses", "LeafClasses", "Outputs", "RawClasses", "make_outputs"]


def make_outputs(num_classes: int | None = None, datasets: Sequence[str] | str | None = None,
                 taxonomy: Taxonomy | None = None, default: Sequence[str] | None = None) -> Outputs:
    """The outputs of a flat model: raw classes when ``num_classes`` is given, else one dataset's labels, else
    (several datasets) the tree's leaves with the taxonomy-aware loss. Neither given: ``default``, the datasets of
    the family's paper; an empty ``datasets`` is an error for every family."""
    if num_classes is None and datasets is None:
        datasets = default
    if num_classes is not None:
        if datasets:
            raise HiersegError("give either num_classes (raw class indices) or datasets (label spaces), not both")
        if num_classes < 1:
            raise HiersegError(f"num_classes must be at least 1, not {num_classes}")
        return RawClasses(num_classes, taxonomy=require_taxonomy(taxonomy))  # the tree outputs: in neuron_graph
    if datasets is not None and len(datasets) == 0:
        raise HiersegError("datasets is empty: name at least one dataset (datasets=['cityscapes']) or give "
                           "num_classes=N")
    if not datasets:
        raise HiersegError("a flat model needs num_classes=N or datasets=[...]")
    datasets = (datasets,) if isinstance(datasets, str) else tuple(datasets)
    graph = neuron_graph(taxonomy)
    if len(datasets) == 1:
        return DatasetClasses(graph, datasets[0])
    return LeafClasses(graph, datasets)
