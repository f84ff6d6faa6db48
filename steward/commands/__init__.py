"""Sub-commands of ``steward``: one module per topic, each with ``register(subparsers)``.

Keep module-level imports light: every module here is imported for ``steward --help``.
"""
