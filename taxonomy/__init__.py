"""hierseg.taxonomy: the WordNet-merged concept tree over COCO-Stuff, ADE20K, Cityscapes and Mapillary Vistas.

Pure Python + numpy (no torch; tensor helpers accept a torch tensor duck-typed).
Loading the built tree needs neither WordNet nor torch; building and validating
synsets need WordNet 3.0 (see :mod:`hierseg.taxonomy.authoring.wordnet`).
"""

from hierseg.core.errors import HiersegError
from hierseg.taxonomy.labelspace import TREE, LabelSpace, label_space
from hierseg.taxonomy.neurons import IGNORE_INDEX, ConceptMask, Neuron, NeuronGraph
from hierseg.taxonomy.specs import DATASETS, DatasetSpec, Label, load_spec
from hierseg.taxonomy.subgraph import ActivatedBatch, activated_batch, activated_neurons
from hierseg.taxonomy.translate import RELATIONS, Translation, translation
from hierseg.taxonomy.tree import Concept, Taxonomy

__all__ = ["DATASETS", "IGNORE_INDEX", "RELATIONS", "TREE", "ActivatedBatch", "Concept", "ConceptMask", "DatasetSpec",
           "HiersegError", "Label", "LabelSpace", "Neuron", "NeuronGraph", "Taxonomy", "Translation",
           "activated_batch", "activated_neurons", "label_space", "load_spec", "translation"]
