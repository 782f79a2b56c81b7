"""Between-session training: dataset, fine-tune, quantize, evaluate, registry.

Imported only by the command lines ``generator.train`` and
``generator.llama_server`` (lazily); never by the game or by library code
(``tests/test_layers.py``, decision D23).
"""
