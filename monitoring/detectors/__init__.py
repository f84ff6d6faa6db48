"""Drift detectors. Each returns a :class:`monitoring.detectors.base.DetectorResult` with a p-value
that is valid under "reference and current come from the same distribution"."""

from monitoring.detectors.base import DetectorResult

__all__ = ["DetectorResult"]
