"""Model zoo: DSSPN and the flat baselines (DeepLab, PDN, DSNet, SPGNet) on timm backbones.

``create_model(name, **overrides)`` builds any registered model; ``list_models()`` names them. Each family lives
in its own module and registers small entry points with ``@register_model``; every model is a
:class:`~hierseg.models.base.Segmenter`, the contract the engine relies on.
"""

from hierseg.models import deeplab, dsnet, dsspn, pdn, spgnet  # noqa: F401  (registers the entry points)
from hierseg.models.backbone import Backbone, BackboneWeights, ResNetStages, create_backbone
from hierseg.models.base import Segmenter
from hierseg.models.registry import accepted_arguments, create_model, list_models, model_family, register_model

__all__ = ["Backbone", "BackboneWeights", "ResNetStages", "Segmenter", "accepted_arguments", "create_backbone",
           "create_model", "list_models", "model_family", "register_model"]
