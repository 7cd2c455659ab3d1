"""hierseg: hierarchical, multi-dataset semantic segmentation."""

__version__ = "0.3.0"
