"""steward: continual embedding maintenance.

The package holds what every part shares (settings, errors, the CLI); the domain lives in the
sibling packages ``storage``, ``embedding``, ``monitoring`` and ``flows``.
"""

__version__ = "0.1.0"
