"""hierseg: hierarchical, multi-dataset semantic segmentation."""

__version__ = "0.2.0"
