"""The built artifacts, shipped in the wheel as the package ``hierseg.artifacts``.

``taxonomy/dsspn359.json`` is the concept tree and ``label_maps/<dataset>.csv`` one label map per dataset, both
written by ``hierseg taxonomy build``. Code finds them through :mod:`importlib.resources`
(:data:`hierseg.taxonomy.tree.SHIPPED`), so a checkout reads this folder and an installed wheel its copy.
"""
