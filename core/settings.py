"""One settings object with every knob and every default of steward, read once.

Precedence: explicit overrides (CLI flags, ``--set``) > environment variables > ``steward.toml`` >
the defaults below. The toml file is looked up at ``$STEWARD_CONFIG`` or ``./steward.toml``.

Knobs are grouped in sections (``drift``, ``alert``, ``gate``, ``index``, ``maintenance``, ``shadow``, ...); each key
has a dotted name, and the same value can be given

- in toml as a table entry (``[drift]`` / ``alpha = 0.01``) or flat (``drift_alpha = 0.01``),
  at the top level or under a ``[steward]`` table;
- in the environment as ``STEWARD_`` + the flat name in capitals (``STEWARD_DRIFT_ALPHA``);
- on the command line as ``--set drift.alpha=0.01`` (or a command's own flag, e.g. ``--alpha``).

Library code receives the resolved :class:`Settings` (or one of its sections) as an argument and
never reads the environment itself; flows receive ``Settings.to_dict()`` as a parameter, so a
``--config`` given to the CLI reaches every task. Secrets (``api_token``, ``webhook_url``) are left
out of that dict and filled in from the worker's own environment (see :func:`with_secrets_from`).
"""

from __future__ import annotations

import dataclasses
import os
import tomllib
import types
import typing
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from core.errors import ConfigError

RETRAIN_POLICIES: tuple[str, ...] = ("drift", "new-data", "always")
PROMOTION_MODES: tuple[str, ...] = ("auto", "manual")
SECRET_KEYS: frozenset[str] = frozenset({"api_token", "webhook_url"})


def _require(ok: bool, key: str, value: Any, expectation: str) -> None:
    if not ok:
        raise ConfigError(f"setting {key}={value!r} is invalid: it must be {expectation}")


@dataclass(frozen=True)
class DriftSettings:
    # Family-wise false-alarm rate of the combined drift decision.
    alpha: float = 0.05
    # How many earlier non-empty batches form the reference window of a drift check.
    reference_batches: int = 3
    # How often the served ``check-drift`` deployment runs.
    check_interval_seconds: int = 3600
    # Opt-in detectors run beside the default ones, comma-separated (e.g. "neighbourhood": finds a new
    # class in randomly sampled batches, but acts on every batch of a stream whose batches bring new
    # sub-populations; README "Drift")
    extra_detectors: str = ""

    def __post_init__(self) -> None:
        _require(0 < self.alpha < 1, "drift.alpha", self.alpha, "strictly between 0 and 1 (e.g. 0.05)")
        _require(self.reference_batches >= 1, "drift.reference_batches", self.reference_batches, "at least 1")
        _require(self.check_interval_seconds > 0, "drift.check_interval_seconds", self.check_interval_seconds,
                 "positive")


@dataclass(frozen=True)
class AlertSettings:
    # One ongoing drift raises one alert per window (per collection and production model).
    dedup_seconds: int = 3600

    def __post_init__(self) -> None:
        _require(self.dedup_seconds >= 0, "alert.dedup_seconds", self.dedup_seconds, "0 or more")


@dataclass(frozen=True)
class GateSettings:
    """Promotion gate thresholds: largest allowed MAP@R drops of a candidate against production."""

    max_old_map_drop: float = 0.01  # on the classes production knew
    max_overall_map_drop: float = 0.005  # on all classes
    max_class_map_drop: float | None = 0.10  # of any single old class (None: not checked)
    min_overall_map: float = 0.0  # absolute floor, also for the first model
    # The candidate may not be worse than the raw input features (normalised, no model) by more than
    # this, beyond noise (None: not checked): no model may serve worse than having no model.
    max_drop_vs_raw: float | None = 0.0
    # A drop counts only when a paired bootstrap over the held-out queries puts its lower bound above
    # the limit at this one-sided confidence (per class: Bonferroni over the classes). 0 samples:
    # point values decide.
    bootstrap_samples: int = 1000
    confidence: float = 0.95
    # Fairness: the largest allowed widening of the gap between the best and the worst group's MAP@R
    # (groups: ``evaluation.group_column``), beyond noise (None: not checked).
    max_group_gap_increase: float | None = 0.05
    # Auto-promotion waits until the candidate has answered at least this many mirrored live queries
    # as a shadow of production (``steward api --shadow-version``); 0: not required.
    min_shadow_queries: int = 0

    def __post_init__(self) -> None:
        _require(self.min_shadow_queries >= 0, "gate.min_shadow_queries", self.min_shadow_queries, "0 or more")
        # A negative largest drop is allowed: it demands an improvement of at least that much.
        _require(0 <= self.min_overall_map <= 1, "gate.min_overall_map", self.min_overall_map, "in [0, 1]")
        if self.max_group_gap_increase is not None:
            _require(self.max_group_gap_increase >= 0, "gate.max_group_gap_increase", self.max_group_gap_increase,
                     "0 or more")
        _require(self.bootstrap_samples >= 0, "gate.bootstrap_samples", self.bootstrap_samples, "0 or more")
        _require(0.5 <= self.confidence < 1, "gate.confidence", self.confidence, "in [0.5, 1)")


@dataclass(frozen=True)
class EvaluationSettings:
    """The stable evaluation set every model version of a collection is scored on (embedding.holdout)."""

    per_class: int = 50  # held-out items per class in the set; a class's items are fixed once it has them
    # A metadata column of the collection's rows (e.g. "language", "region", "source") whose values are
    # its groups: every evaluation then reports MAP@R and P@1 per group and the largest gap (None: off).
    group_column: str | None = None

    def __post_init__(self) -> None:
        _require(self.per_class >= 2, "evaluation.per_class", self.per_class, "at least 2")
        if self.group_column is not None:
            _require(self.group_column not in ("item_id", "label", "features", "text", "deleted", ""),
                     "evaluation.group_column", self.group_column, "a metadata column, not a reserved one")


@dataclass(frozen=True)
class LabelSettings:
    """Suspect labels (embedding.label_noise): an item is flagged when fewer than ``min_agreement`` of
    its ``k`` nearest labelled neighbours under production share its label."""

    k: int = 10
    min_agreement: float = 0.5

    def __post_init__(self) -> None:
        _require(self.k >= 1, "labels.k", self.k, "at least 1")
        _require(0 < self.min_agreement <= 1, "labels.min_agreement", self.min_agreement, "in (0, 1]")


@dataclass(frozen=True)
class QualitySettings:
    """Data-quality checks of every new batch (monitoring.data_quality); a failing batch is excluded
    from training. Set by benchmarks/data_quality.py: clean real batches almost never fail."""

    enabled: bool = True
    max_zero_rows: float = 0.01  # share of all-zero rows
    max_constant_rows: float = 0.01  # share of rows with (nearly) no spread
    constant_spread: float = 0.05  # "no spread": below this share of the reference's median row spread
    max_out_of_range: float = 0.05  # share of rows outside the reference's norm or value range
    norm_quantile: float = 0.001  # the reference norm range is its [q, 1-q] quantiles ...
    range_margin: float = 1.5  # ... widened by this factor's excess (0.5: half its width; each dimension:
    # half the typical dimension's span) ...
    norm_tolerance: float = 0.05  # ... plus this share of the typical norm (rounding of normalised rows)
    max_duplicate_rows: float = 0.05  # share of repeated rows, at least ...
    duplicate_factor: float = 3.0  # ... or this many times the reference's own repeat rate
    stuck_probability: float = 1e-6  # a constant dimension is stuck when the reference makes it this unlikely
    max_stuck_dimensions: float = 0.0  # share of stuck dimensions
    max_quarantine_jump: float = 0.05  # quarantine rate above the reference batches' median
    min_reference_rows: int = 50  # fewer reference rows: only the checks that need no reference run

    def __post_init__(self) -> None:
        for name in ("max_zero_rows", "max_constant_rows", "max_out_of_range", "max_duplicate_rows",
                     "max_stuck_dimensions", "max_quarantine_jump"):
            _require(0 <= getattr(self, name) <= 1, f"quality.{name}", getattr(self, name), "in [0, 1]")
        _require(0 < self.norm_quantile < 0.5, "quality.norm_quantile", self.norm_quantile, "in (0, 0.5)")
        _require(self.range_margin >= 1, "quality.range_margin", self.range_margin, "at least 1")


@dataclass(frozen=True)
class IndexSettings:
    target_recall: float = 0.95  # recall@10 the ANN index is tuned to reach
    memory_budget_mb: float | None = None  # cap on the index size in RAM
    latency_target_ms: float | None = None  # single-query latency at which exact search is good enough
    max_tombstone_fraction: float = 0.10  # an update compacts once removed vectors exceed this share of live
    max_latency_ratio: float = 1.5  # ... or once single-query p50 exceeds this multiple of the fresh build's
    # Recent query vectors the search service keeps per collection and model version (a bounded
    # sample, written to the artifact location) for index tuning; 0 records none.
    query_sample_size: int = 1000
    query_sample_horizon: int = 100_000  # the sample spreads over about the last this many queries
    query_sample_flush_seconds: float = 60.0  # the service writes a changed sample at most this often
    query_sample_max_age_hours: float = 168.0  # index builds and updates ignore samples older than this

    def __post_init__(self) -> None:
        _require(0 < self.target_recall <= 1, "index.target_recall", self.target_recall, "in (0, 1]")
        _require(self.query_sample_size >= 0, "index.query_sample_size", self.query_sample_size,
                 "at least 0 (0 records no query vectors)")
        _require(self.query_sample_horizon >= max(self.query_sample_size, 1), "index.query_sample_horizon",
                 self.query_sample_horizon, "at least index.query_sample_size (and 1)")
        _require(self.query_sample_flush_seconds > 0, "index.query_sample_flush_seconds",
                 self.query_sample_flush_seconds, "positive")
        _require(self.query_sample_max_age_hours > 0, "index.query_sample_max_age_hours",
                 self.query_sample_max_age_hours, "positive")
        _require(0 < self.max_tombstone_fraction <= 1, "index.max_tombstone_fraction", self.max_tombstone_fraction,
                 "in (0, 1]")
        _require(self.max_latency_ratio >= 1, "index.max_latency_ratio", self.max_latency_ratio, "at least 1")
        if self.memory_budget_mb is not None:
            _require(self.memory_budget_mb > 0, "index.memory_budget_mb", self.memory_budget_mb, "positive")
        if self.latency_target_ms is not None:
            _require(self.latency_target_ms > 0, "index.latency_target_ms", self.latency_target_ms, "positive")


@dataclass(frozen=True)
class MaintenanceSettings:
    # When a maintenance run retrains: on drift, on any unseen data ("new-data"), or "always".
    retrain_policy: str = "drift"
    # "auto": a candidate that passes the gate is promoted; "manual": it waits for `steward promote`.
    promotion: str = "auto"
    cron: str = "0 2 * * *"  # the served nightly maintenance
    lock_ttl_seconds: int = 6 * 3600  # a run's collection lock expires after this (crash safety)

    def __post_init__(self) -> None:
        _require(self.retrain_policy in RETRAIN_POLICIES, "maintenance.retrain_policy", self.retrain_policy,
                 f"one of {', '.join(RETRAIN_POLICIES)}")
        _require(self.promotion in PROMOTION_MODES, "maintenance.promotion", self.promotion,
                 f"one of {', '.join(PROMOTION_MODES)}")
        _require(self.lock_ttl_seconds > 0, "maintenance.lock_ttl_seconds", self.lock_ttl_seconds, "positive")


@dataclass(frozen=True)
class ShadowSettings:
    """Shadow A/B in ``steward api``: a share of live queries is also answered by another model version
    (never served) and compared with production. Off while ``fraction`` is 0."""

    fraction: float = 0.0  # share of search requests mirrored (deterministic: every 1/fraction-th)
    version: int | None = None  # model version to shadow; None: the newest version that is not production
    collection: str | None = None  # only this collection; None: every served collection
    queue_size: int = 256  # mirrored requests waiting for the shadow worker; more are dropped (counted)
    flush_records: int = 100  # records written to the registry in one batch ...
    flush_seconds: float = 10.0  # ... or at least this often while records wait

    def __post_init__(self) -> None:
        _require(0 <= self.fraction <= 1, "shadow.fraction", self.fraction, "in [0, 1]")
        if self.version is not None:
            _require(self.version >= 1, "shadow.version", self.version, "at least 1 (or unset: the newest candidate)")
        _require(self.queue_size >= 1, "shadow.queue_size", self.queue_size, "at least 1")
        _require(self.flush_records >= 1, "shadow.flush_records", self.flush_records, "at least 1")
        _require(self.flush_seconds > 0, "shadow.flush_seconds", self.flush_seconds, "positive")


@dataclass(frozen=True)
class SecretsSettings:
    """Where secrets come from besides the environment and steward.toml: names of Prefect ``Secret``
    blocks, read at run time (by the CLI, the API and every flow run) when the secret itself is not
    set. The names are not secrets, so flows carry them; the values never travel as parameters."""

    webhook_url_block: str | None = None  # Prefect Secret block holding the webhook URL
    api_token_block: str | None = None  # Prefect Secret block holding the API token


@dataclass(frozen=True)
class MlflowSettings:
    """Optional MLflow tracking (the ``mlflow`` extra): training runs, registered versions and the
    production alias mirrored there. Nothing imports mlflow while ``tracking_uri`` is unset."""

    tracking_uri: str | None = None  # e.g. http://mlflow:5000 or sqlite:///path/mlflow.db
    registered_model_prefix: str = "steward-"  # MLflow registered model name: prefix + collection


SECTIONS: dict[str, type] = {
    "drift": DriftSettings,
    "alert": AlertSettings,
    "gate": GateSettings,
    "evaluation": EvaluationSettings,
    "labels": LabelSettings,
    "quality": QualitySettings,
    "index": IndexSettings,
    "maintenance": MaintenanceSettings,
    "shadow": ShadowSettings,
    "secrets": SecretsSettings,
    "mlflow": MlflowSettings,
}


@dataclass(frozen=True)
class Settings:
    home: Path
    database_url: str
    artifacts_uri: str
    data_uri: str
    device: str = "cpu"
    webhook_url: str | None = None
    api_token: str | None = None
    drift: DriftSettings = field(default_factory=DriftSettings)
    alert: AlertSettings = field(default_factory=AlertSettings)
    gate: GateSettings = field(default_factory=GateSettings)
    evaluation: EvaluationSettings = field(default_factory=EvaluationSettings)
    labels: LabelSettings = field(default_factory=LabelSettings)
    quality: QualitySettings = field(default_factory=QualitySettings)
    index: IndexSettings = field(default_factory=IndexSettings)
    maintenance: MaintenanceSettings = field(default_factory=MaintenanceSettings)
    shadow: ShadowSettings = field(default_factory=ShadowSettings)
    secrets: SecretsSettings = field(default_factory=SecretsSettings)
    mlflow: MlflowSettings = field(default_factory=MlflowSettings)

    @property
    def reports_dir(self) -> Path:
        """Local folder for human-readable reports (HTML); the artifact store keeps the copies."""
        return self.home / "reports"

    @property
    def vector_cache_dir(self) -> Path:
        """Local folder of the content-addressed encoding cache (storage/vector_cache.py): a speed-up
        only, safe to delete."""
        return self.home / "cache" / "vectors"

    def to_dict(self, *, secrets: bool = False) -> dict[str, Any]:
        """Plain nested dict (JSON-ready); secrets are left out unless asked for."""
        out = dataclasses.asdict(self)
        out["home"] = str(self.home)
        if not secrets:
            for key in SECRET_KEYS:
                out.pop(key, None)
        return out

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Settings:
        """Inverse of :meth:`to_dict` (validated as if read from a file)."""
        return _build({k: v for k, v in _flatten(data, "settings").items()})

    def replace(self, **overrides: Any) -> Settings:
        """A copy with dotted-key overrides applied, e.g. ``replace(**{"drift.alpha": 0.01})``."""
        values = _flatten(self.to_dict(secrets=True), "settings")
        values.update({_canonical(k, "override"): v for k, v in overrides.items()})
        return _build(values)


def with_secrets_from(settings: Settings, env: Mapping[str, str] | None = None) -> Settings:
    """``settings`` with secrets taken from ``env`` (default ``os.environ``) where it lacks them."""
    env = os.environ if env is None else env
    found = {key: env[_env_name(key)] for key in SECRET_KEYS
             if getattr(settings, key) is None and env.get(_env_name(key))}
    return dataclasses.replace(settings, **found) if found else settings


# --- the schema: dotted key -> type ---------------------------------------------------------------

def _annotation(owner: type, name: str) -> Any:
    return typing.get_type_hints(owner)[name]


def _schema() -> dict[str, Any]:
    keys: dict[str, Any] = {}
    for f in dataclasses.fields(Settings):
        if f.name in SECTIONS:
            for sub in dataclasses.fields(SECTIONS[f.name]):
                keys[f"{f.name}.{sub.name}"] = _annotation(SECTIONS[f.name], sub.name)
        else:
            keys[f.name] = _annotation(Settings, f.name)
    return keys


SCHEMA: dict[str, Any] = _schema()
# Flat spellings (``drift_alpha``) of the dotted keys, as environment variables and old configs use.
_FLAT: dict[str, str] = {key.replace(".", "_"): key for key in SCHEMA}


# The short names the deployment docs use; the flat name (STEWARD_ARTIFACTS_URI) wins when both are set.
_ENV_ALIASES = {"artifacts_uri": "STEWARD_ARTIFACTS", "data_uri": "STEWARD_DATA"}


def _env_name(key: str) -> str:
    return "STEWARD_" + key.replace(".", "_").upper()


def _canonical(key: str, where: str) -> str:
    if key in SCHEMA:
        return key
    if key in _FLAT:
        return _FLAT[key]
    raise ConfigError(f"{where} has unknown setting {key!r}; known settings are {', '.join(sorted(SCHEMA))}")


def _flatten(data: Mapping[str, Any], where: str) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for key, value in data.items():
        if key in SECTIONS and isinstance(value, Mapping):
            for sub, v in value.items():
                out[_canonical(f"{key}.{sub}", where)] = v
        else:
            out[_canonical(key, where)] = value
    return out


def _coerce(key: str, raw: Any) -> Any:
    """Turn ``raw`` (a string from the environment, or a toml/JSON value) into the key's type."""
    annotation = SCHEMA[key]
    args = typing.get_args(annotation)
    optional = isinstance(annotation, types.UnionType) and type(None) in args
    base = next((a for a in args if a is not type(None)), annotation) if optional else annotation
    if raw is None or (isinstance(raw, str) and raw.strip().lower() in ("", "none", "null")):
        if optional:
            return None
        if base is str and raw == "":
            return raw
        raise ConfigError(f"setting {key} needs a value; it cannot be empty")
    try:
        if base is bool and isinstance(raw, str):
            return raw.strip().lower() in ("1", "true", "yes", "on")
        if base is int and isinstance(raw, float) and not raw.is_integer():
            raise ValueError("not a whole number")
        return base(raw)
    except (TypeError, ValueError) as e:
        raise ConfigError(f"setting {key}={raw!r} is not a valid {base.__name__}") from e


def _build(values: Mapping[str, Any]) -> Settings:
    values = {k: _coerce(k, v) for k, v in values.items()}
    sections = {name: cls(**{k.split(".", 1)[1]: v for k, v in values.items() if k.startswith(f"{name}.")})
                for name, cls in SECTIONS.items()}
    home = Path(values.get("home") or ".steward").expanduser().absolute()
    top = {k: v for k, v in values.items() if "." not in k and k not in ("home",)}
    top.setdefault("database_url", None)
    top.setdefault("artifacts_uri", None)
    top.setdefault("data_uri", None)
    top["database_url"] = top["database_url"] or f"sqlite:///{home / 'registry.db'}"
    top["artifacts_uri"] = top["artifacts_uri"] or str(home / "artifacts")
    top["data_uri"] = top["data_uri"] or str(home / "data")
    return Settings(home=home, **top, **sections)


def _read_toml(path: Path) -> dict[str, Any]:
    try:
        with path.open("rb") as fh:
            data = tomllib.load(fh)
    except tomllib.TOMLDecodeError as e:
        raise ConfigError(f"config file {path} is not valid TOML: {e}; fix or remove it") from e
    table = data.get("steward", data)
    return _flatten(table, f"config file {path}")


def config_file(env: Mapping[str, str] | None = None, config_path: str | os.PathLike[str] | None = None) -> Path | None:
    """The toml file settings would be read from (None when there is none)."""
    env = os.environ if env is None else env
    if config_path is not None:
        path = Path(config_path)
        if not path.is_file():
            raise ConfigError(f"config file {path} does not exist")
        return path
    path = Path(env.get("STEWARD_CONFIG") or "steward.toml")
    if env.get("STEWARD_CONFIG") and not path.is_file():
        raise ConfigError(f"config file {path} (from STEWARD_CONFIG) does not exist")
    return path if path.is_file() else None


def load_settings(
    env: Mapping[str, str] | None = None, config_path: str | os.PathLike[str] | None = None,
    overrides: Mapping[str, Any] | None = None,
) -> Settings:
    """Build :class:`Settings` from ``overrides``, ``env`` (default ``os.environ``) and the toml file."""
    env = os.environ if env is None else env
    path = config_file(env, config_path)
    values: dict[str, Any] = _read_toml(path) if path is not None else {}
    for key in SCHEMA:
        var = _env_name(key)
        if var in env:
            values[key] = env[var]
        elif key in _ENV_ALIASES and _ENV_ALIASES[key] in env:
            values[key] = env[_ENV_ALIASES[key]]
    for key, value in (overrides or {}).items():
        values[_canonical(key, "command line")] = value
    return _build(values)


def parse_assignments(pairs: list[str] | None) -> dict[str, str]:
    """``["drift.alpha=0.01", ...]`` (from ``--set``) as a dict, refusing malformed entries."""
    out: dict[str, str] = {}
    for pair in pairs or []:
        key, sep, value = pair.partition("=")
        if not sep or not key.strip():
            raise ConfigError(f"--set {pair!r} is not KEY=VALUE (e.g. --set drift.alpha=0.01)")
        out[_canonical(key.strip(), "--set")] = value.strip()
    return out
