"""hierseg.taxonomy: the WordNet-merged concept tree over COCO-Stuff, ADE20K, Cityscapes and Mapillary Vistas.

Pure Python (no torch). Loading the built tree needs neither WordNet nor torch; building and validating
synsets need WordNet 3.0 (see :mod:`hierseg.taxonomy.wordnet`).
"""

from hierseg.taxonomy.errors import HiersegError
from hierseg.taxonomy.specs import DATASETS, DatasetSpec, Label, load_spec
from hierseg.taxonomy.tree import Concept, Taxonomy

__all__ = ["DATASETS", "Concept", "DatasetSpec", "HiersegError", "Label", "Taxonomy", "load_spec"]
