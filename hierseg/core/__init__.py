"""What every layer shares and none owns: the one user-facing error type (:mod:`hierseg.core.errors`), file input
and output with atomic writes and folder locks (:mod:`hierseg.core.io`), and the reading of YAML values and
``--set KEY=VALUE`` assignments (:mod:`hierseg.core.yamltext`).

Pure Python plus PyYAML: the torch-free :mod:`hierseg.taxonomy` and the CLI import it as freely as the engine does.
"""
