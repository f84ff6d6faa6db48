"""Real data sets for the benchmarks, built from what is installed on this machine.

The text corpus (``text_corpus.py``, described in ``README.md``): docstrings of the standard
library and the installed packages, labelled by package, embedded with the MiniLM encoder.
Import from ``benchmarks.datasets.text_corpus``; this package module stays import-light.
"""
