"""Between-session training: dataset, fine-tune, quantize, evaluate, registry.

Imported only by ``generator/train.py`` and ``generator/models.py`` (lazily);
never by the game.
"""
