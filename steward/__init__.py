"""steward: continual embedding maintenance.

The Python API mirrors the CLI::

    import steward

    with steward.open(home="./.steward") as st:      # or config="steward.toml", drift_alpha=0.01, ...
        st.ingest("shop", "batch-1.parquet")
        print(st.run("shop").outcome)

``steward.open`` returns a :class:`steward.python_api.Steward`; see there for every method. Importing
``steward`` stays cheap (the CLI's start-up depends on it): everything else loads on first use.
"""

from __future__ import annotations

import os
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:  # pragma: no cover
    from steward.python_api import SearchResult, Steward

__version__ = "0.1.0"
__all__ = ["SearchResult", "Steward", "__version__", "open"]


def open(home: str | os.PathLike[str] | None = None, config: str | os.PathLike[str] | None = None,
         **overrides: Any) -> Steward:
    """Open a steward home: settings resolved as the CLI does (``overrides`` such as ``drift_alpha=0.01``
    > environment > ``config`` or ./steward.toml > defaults). Use as a context manager, or ``close()``."""
    from steward.python_api import Steward, load

    return Steward(load(home, config, **overrides))


def __getattr__(name: str) -> Any:
    if name in ("Steward", "SearchResult"):
        from steward import python_api

        return getattr(python_api, name)
    raise AttributeError(f"module 'steward' has no attribute {name!r}")
