"""ANN indexes for embedding galleries (faiss): choose, build, tune, version, update and search.

- :mod:`embedding.index.choice`: ``choose_index(n, dim, memory_budget_bytes=, latency_target_ms=)`` (pure)
- :mod:`embedding.index.build`: faiss construction, training, threads
- :mod:`embedding.index.tune`: recall@k against exact search, parameter tuning, latency measurement
- :mod:`embedding.index.ann`: ``AnnIndex`` (item ids, add/update/remove, filtered search, file format)
- :mod:`embedding.index.incremental`: changes between rebuilds, re-measurement, rebuild proposals
- :mod:`embedding.index.service`: ``build_index_for_model``, ``load_index``, ``update_index`` (registry + artifacts)

Submodules import faiss lazily where they can; import what you need from them directly.
"""
