"""The generator's side of training (the trainer itself is the ``trainer`` package).

* :mod:`generator.training.background` -- what a game calls between play
  sessions: start ``python -m generator.train --if-needed`` as a separate,
  low-priority process and return at once (imports neither the trainer nor torch).
* :mod:`generator.training.bootstrap` -- procedural-teacher levels made through
  the facade and recorded like a game's, for ``--bootstrap N`` when the store
  has too little play data.  It lives in ``generator`` so that the trainer
  never imports the facade or the backends (``tests/test_layers.py``).

The command line stays ``python -m generator.train``.
"""
