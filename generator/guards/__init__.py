"""Guards at the process's edges: what it reads from files a user names, and what reaches stdout and the logs.

* :mod:`generator.guards.inputs` -- regular files only, never past a size cap,
  UTF-8, a message that names the file (every CLI, ``forge.toml``, presets).
* :mod:`generator.guards.output` -- provider keys redacted in every log
  record, provider libraries kept quiet, a ``--json`` command's stdout left to
  one JSON object.

Not a CLI package: library modules use these too (``generator.paths`` reads
``forge.toml`` through ``inputs``; the teacher backend and the capture plugin
quiet the provider libraries), and nothing may import a CLI module
(``tests/test_layers.py``).  Imports nothing heavy.
"""
