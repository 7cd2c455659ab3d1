"""hierseg: hierarchical, multi-dataset semantic segmentation."""

__version__ = "0.1.0"
