"""hierseg.data: readers for the official dataset layouts, synthetic datasets in those layouts, transforms,
and the multi-dataset batch sampler. Knows files and ids, not models."""
