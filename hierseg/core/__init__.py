"""What every layer shares and none owns: the one user-facing error type and one-line message text
(:mod:`hierseg.core.errors`), file input and output with bounded FIFO-safe reads, atomic writes that never follow
links, and folder locks (:mod:`hierseg.core.io`), the one YAML loader and ``--set KEY=VALUE`` assignments
(:mod:`hierseg.core.yamltext`), and the JSON and CSV readers' errors (:mod:`hierseg.core.jsontext`,
:mod:`hierseg.core.csvtext`).

Pure Python plus PyYAML: the torch-free :mod:`hierseg.taxonomy` and the CLI import it as freely as the engine does.
"""
