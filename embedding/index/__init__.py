"""ANN indexes for embedding galleries (faiss): choose, build, tune, version, update and search.

- :mod:`embedding.index.choice`: ``choose_index`` from measured crossovers, ``choice_from_factory`` (pure)
- :mod:`embedding.index.build`: faiss construction, training, threads
- :mod:`embedding.index.tune`: recall@k on held-out queries (ties counted), cheapest-first tuning, latency
- :mod:`embedding.index.ann`: ``AnnIndex`` (positional labels, id arrays, tombstone bitmap, search paths, file format)
- :mod:`embedding.index.incremental`: updates with fresh metrics, compaction, re-tuning, rebuild proposals
- :mod:`embedding.index.service`: ``build_index_for_model``, ``load_index``, ``update_index`` (registry + artifacts)

Submodules import faiss lazily where they can; import what you need from them directly.
"""
