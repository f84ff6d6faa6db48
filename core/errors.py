"""One exception hierarchy for the whole project.

Every error a user can cause derives from :class:`StewardError`; the CLI prints its message on
one line and exits with its ``exit_code`` instead of showing a traceback. Messages name the bad
value and say what to do about it.
"""

from __future__ import annotations


class StewardError(Exception):
    """Base class: an expected failure with a message meant for a person."""

    exit_code: int = 1


class ConfigError(StewardError):
    """Settings or a config file are invalid."""

    exit_code = 2


class ValidationError(StewardError):
    """Input data is unusable as a whole (file-level problem); nothing was written."""

    exit_code = 3


class NotFoundError(StewardError):
    """A collection, batch, version, alias or artifact that was asked for does not exist."""

    exit_code = 4


class ConflictError(StewardError):
    """The operation clashes with the current state (duplicate, lost race, wrong status)."""

    exit_code = 5


class ArtifactIntegrityError(StewardError):
    """An artifact is missing, truncated or altered: its checksum does not match."""

    exit_code = 6


class LockHeldError(ConflictError):
    """Another process holds the lock for this collection."""


class PinnedError(ConflictError):
    """Production is pinned by an operator; automated runs may not move it."""


class GateRejectedError(StewardError):
    """A candidate failed the promotion gate (raised only where rejection must stop a flow)."""

    exit_code = 7
