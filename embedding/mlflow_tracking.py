"""MLflow as a mirror of steward's registry (the optional ``mlflow`` extra).

A :class:`storage.hooks.LifecycleObserver`: every model version the retrain service registers
becomes an MLflow run in the experiment ``steward/<collection>`` (its training config as params,
the loss and validation MAP@R per epoch, the evaluation metrics, the gate decision as tags and a
0/1 metric) and a version of the registered model ``<prefix><collection>`` tagged with steward's
version number; every promotion and rollback moves that model's ``production`` alias. Versions
trained before MLflow was configured have no MLflow twin: a rollback to one of them removes the
alias rather than leave it on the wrong version.

Only the MLflow client is used (``MlflowClient``, no global tracking state), and it is imported
when the first event arrives, never when MLflow is not configured.
"""

from __future__ import annotations

import logging
import math
import time
from collections.abc import Iterator
from typing import Any

from embedding.report import ModelReport
from storage.registry.entities import AliasChange, ModelVersion

log = logging.getLogger(__name__)

VERSION_TAG = "steward.model_version"
_MAX_PARAM = 6000  # MLflow's limit on a param value's length


def experiment_name(collection: str) -> str:
    return f"steward/{collection}"


def training_params(model: ModelVersion) -> dict[str, str]:
    """The run's params: the training config, flattened, plus lineage."""
    train = dict(model.config.get("train_config") or {})
    params = {f"train.{k}": v for k, v in train.items()}
    params.update({"mode": model.config.get("mode"), "input_kind": model.config.get("input_kind"),
                   "parent_version": model.parent_version, "trained_on_batch": model.trained_on_batch,
                   "classes": len(model.config.get("classes") or ())})
    return {k: str(v)[:_MAX_PARAM] for k, v in params.items() if v is not None}


def _finite(v: Any) -> float | None:
    return float(v) if isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v) else None


def epoch_metrics(report: ModelReport) -> Iterator[tuple[str, float, int]]:
    """(key, value, step) per epoch of the training history: ``train.loss``, ``train.val_map_at_r``."""
    for row in report.training.history:
        step = int(row.get("epoch", 0))
        for key, value in row.items():
            if key != "epoch" and _finite(value) is not None:
                yield f"train.{key}", float(value), step


def final_metrics(report: ModelReport) -> dict[str, float]:
    """The evaluation on the stable evaluation set, its baselines, forgetting and the gate (1 = accepted)."""
    out: dict[str, float | None] = {"gate.accepted": 1.0 if report.gate.accepted else 0.0,
                                    "train.seconds": report.training.seconds,
                                    "train.epochs_run": report.training.epochs_run}
    named = {"eval": report.evaluation, **{f"baseline.{k}": v for k, v in report.baselines.items()}}
    for prefix, ev in named.items():
        if ev is None:
            continue
        for part in ("overall", "old", "new"):
            metrics = getattr(ev, part)
            if metrics is not None:
                out[f"{prefix}.{part}.map_at_r"] = metrics.map_at_r
                out[f"{prefix}.{part}.precision_at_1"] = metrics.precision_at_1
                out[f"{prefix}.{part}.r_precision"] = metrics.r_precision
    forgetting = [v for v in report.forgetting.values() if _finite(v) is not None]
    if forgetting:
        out["forgetting.max"], out["forgetting.mean"] = max(forgetting), sum(forgetting) / len(forgetting)
    return {k: float(v) for k, v in out.items() if _finite(v) is not None}


def run_tags(model: ModelVersion, report: ModelReport) -> dict[str, str]:
    reasons = "; ".join(report.gate.reasons)
    return {"steward.collection": model.collection, VERSION_TAG: str(model.version),
            "steward.status": model.status, "steward.gate": "accepted" if report.gate.accepted else "rejected",
            "steward.gate.reasons": reasons[:5000], "mlflow.runName": f"{model.collection}-v{model.version}"}


class MlflowTracking:
    """The observer; ``tracking_uri`` also serves as the model registry URI."""

    def __init__(self, tracking_uri: str, *, registered_model_prefix: str = "steward-") -> None:
        self.tracking_uri = tracking_uri
        self.prefix = registered_model_prefix
        self._client: Any = None

    @property
    def client(self) -> Any:
        if self._client is None:
            from mlflow import MlflowClient

            self._client = MlflowClient(tracking_uri=self.tracking_uri, registry_uri=self.tracking_uri)
        return self._client

    def registered_model(self, collection: str) -> str:
        return f"{self.prefix}{collection}"

    def _experiment_id(self, collection: str) -> str:
        exp = self.client.get_experiment_by_name(experiment_name(collection))
        return exp.experiment_id if exp is not None else self.client.create_experiment(
            experiment_name(collection), tags={"steward.collection": collection})

    def _ensure_registered_model(self, name: str, collection: str) -> None:
        from mlflow.exceptions import MlflowException

        try:
            self.client.get_registered_model(name)
        except MlflowException as e:
            if e.error_code != "RESOURCE_DOES_NOT_EXIST":
                raise
            self.client.create_registered_model(name, tags={"steward.collection": collection},
                                                description=f"steward collection {collection!r}")

    def model_registered(self, model: ModelVersion) -> None:
        from mlflow.entities import Metric, Param, RunTag

        report = ModelReport.from_dict(model.metrics or {})
        client = self.client
        tags = run_tags(model, report)
        run = client.create_run(self._experiment_id(model.collection), run_name=tags["mlflow.runName"], tags=tags)
        run_id = run.info.run_id
        now = int(time.time() * 1000)
        metrics = [Metric(k, v, now, step) for k, v, step in epoch_metrics(report)]
        metrics += [Metric(k, v, now, 0) for k, v in final_metrics(report).items()]
        params = [Param(k, v) for k, v in training_params(model).items()]
        for i in range(0, max(len(metrics), 1), 1000):  # log_batch takes at most 1000 metrics per call
            client.log_batch(run_id, metrics=metrics[i:i + 1000], params=params if i == 0 else [],
                             tags=[RunTag("steward.report_schema", str(model.metrics.get("schema_version", "")))])
        client.set_terminated(run_id, "FINISHED")
        name = self.registered_model(model.collection)
        self._ensure_registered_model(name, model.collection)
        version = client.create_model_version(
            name, source=f"runs:/{run_id}/model", run_id=run_id,
            tags={VERSION_TAG: str(model.version), "steward.status": model.status},
            description=f"steward {model.collection} v{model.version} ({tags['steward.gate']} by the gate)")
        log.info("MLflow: %s v%d logged as run %s, registered as %s version %s", model.collection, model.version,
                 run_id, name, version.version)

    def mlflow_version(self, collection: str, steward_version: int) -> str | None:
        """The MLflow version number registered for steward's ``steward_version`` (None: never logged)."""
        name = self.registered_model(collection)
        found = self.client.search_model_versions(f"name='{name}' and tag.`{VERSION_TAG}`='{steward_version}'")
        return max((v.version for v in found), key=int, default=None)

    def alias_changed(self, change: AliasChange) -> None:
        from mlflow.exceptions import MlflowException

        name = self.registered_model(change.collection)
        try:
            version = self.mlflow_version(change.collection, change.to_model)
        except MlflowException as e:
            if e.error_code != "RESOURCE_DOES_NOT_EXIST":
                raise
            version = None
        if version is not None:
            self.client.set_registered_model_alias(name, change.alias, version)
            log.info("MLflow: %s@%s -> version %s (steward v%d)", name, change.alias, version, change.to_model)
            return
        log.warning("MLflow has no version of %s for steward v%d (trained before MLflow was configured); "
                    "removing its %r alias instead of leaving it on another version", name, change.to_model,
                    change.alias)
        try:
            self.client.delete_registered_model_alias(name, change.alias)
        except MlflowException as e:
            if e.error_code != "RESOURCE_DOES_NOT_EXIST":
                raise
