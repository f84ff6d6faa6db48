"""Drift monitoring: calibrated two-sample tests on embeddings, novelty detection, reports, alerts.

Import-light on purpose: nothing heavy is imported here. Use the submodules:

- ``monitoring.detectors`` : one module per detector, all returning :class:`DetectorResult`
- ``monitoring.decision``  : combines detector p-values with family-wise error control
- ``monitoring.suite``     : runs every applicable detector on two arrays (pure, no I/O)
- ``monitoring.check``     : ``check_drift(workspace, collection, ...)`` (registry + alerts)
- ``monitoring.alerts``    : alert rows, Prefect event, webhook delivery and retries
- ``monitoring.evidently_report`` : optional human HTML report (slow; off the hot path)
"""
