"""Continual metric learning: the embedding head, its losses, rehearsal, prototypes, evaluation,
the promotion gate, inference and the retrain service.

Kept import-light on purpose (no torch here): ``steward --help`` and the index package import
from this namespace. Import the submodules you need, e.g. ``from embedding.retrain import retrain``.
"""
