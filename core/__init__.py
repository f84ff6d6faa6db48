"""The ground floor: what every other package of steward may import, and nothing else.

``core`` holds the exception hierarchy (:mod:`core.errors`) and the settings object with every
default and knob (:mod:`core.settings`). It imports nothing of steward's own; everything else
(``storage``, ``embedding``, ``monitoring``, ``maintenance``, ``flows`` and the ``steward``
application) builds on it. ``tests/test_layers.py`` fails when an import runs the other way.
"""
