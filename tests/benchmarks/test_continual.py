"""The continual benchmark's plumbing: ablation configs, shared first models, raw baselines."""

from __future__ import annotations

import numpy as np

from benchmarks.continual import (
    ABLATION_PREFIX,
    ABLATIONS,
    _first_model_key,
    _parse_overrides,
    run_stream,
    seed_targets,
    strategy_config,
    summarise,
    synthetic_stream,
)
from embedding.config import TrainConfig


def test_every_ablation_row_builds_a_valid_config_and_in_means_the_input_dim():
    base = TrainConfig()
    for name in ABLATIONS:
        cfg = strategy_config(ABLATION_PREFIX + name, base, in_dim=384)
        assert isinstance(cfg, TrainConfig) and cfg != base or name == "rehearsal_draw=none"
    assert strategy_config(ABLATION_PREFIX + "head=residual,out_dim=in", base, in_dim=384).out_dim == 384
    naive = strategy_config("naive", base)
    assert naive.buffer_items(384) == 0 and naive.distill_feature == 0


def test_first_model_shared_only_when_full_training_agrees():
    base = TrainConfig()
    assert _first_model_key(base) == _first_model_key(base.replace(incremental_lr=9e-3, buffer_mib=1.0))
    assert _first_model_key(base) != _first_model_key(base.replace(head="residual"))


def test_overrides_parse_to_the_field_types():
    got = _parse_overrides(TrainConfig(), ["buffer_budget=300", "rehearsal_draw=1.5", "distill_adaptive=true",
                                           "hidden_dims=128,64", "incremental_lr=4e-3"])
    assert got == {"buffer_budget": 300, "rehearsal_draw": 1.5, "distill_adaptive": True,
                   "hidden_dims": (128, 64), "incremental_lr": 4e-3}


def test_run_stream_scores_the_raw_features_and_unseen_classes_every_step():
    steps = synthetic_stream(3, seed=0, n_classes=6, per_class=24, dim=8)
    cfg = TrainConfig(hidden_dims=(16,), out_dim=8, epochs=2, incremental_epochs=1, batch_size=32, patience=1)
    rows = run_stream("tiny", steps, cfg, ("steward",), seed=0)
    assert [r["step"] for r in rows["raw"]] == [0, 1, 2]
    assert rows["steward"][0]["map_at_r_unseen"] is not None and rows["steward"][-1]["map_at_r_unseen"] is None
    for r, raw in zip(rows["steward"], rows["raw"], strict=True):
        assert np.isclose(r["vs_raw_all"], r["map_at_r_all"] - raw["map_at_r_all"])
    summary = summarise(rows)
    assert summary["steward"]["min_vs_raw_all"] == min(r["vs_raw_all"] for r in rows["steward"])
    assert "final_map_at_r_all" in summary["raw"]


def test_seed_targets_divide_steward_by_joint_and_naive_per_seed_on_cpu_seconds():
    def row(strategy, step, seed, m, f, cpu, wall, steps):
        return {"dataset": "d", "seed": seed, "strategy": strategy, "step": step, "map_at_r_all": m,
                "forgetting": f, "train_cpu_seconds": cpu, "train_seconds": wall, "train_steps": steps}

    rows = []
    for seed in (0, 1):
        rows += [row("steward", 0, seed, 1.0, None, 0, 0, 0), row("steward", 1, seed, 0.9, 0.1, 1.0, 9.0, 10)]
        rows += [row("joint", 0, seed, 1.0, None, 0, 0, 0), row("joint", 1, seed, 0.95, 0.05, 4.0, 10.0, 40)]
        rows += [row("naive", 0, seed, 1.0, None, 0, 0, 0), row("naive", 1, seed, 0.5, 0.4, 0.5, 0.5, 5)]
    out = seed_targets(rows)
    assert [(r["stream"], r["seed"]) for r in out] == [("d", 0), ("d", 1)]
    r = out[0]
    assert abs(r["map_vs_joint"] - 0.9 / 0.95) < 1e-9 and abs(r["forgetting_vs_naive"] - 0.25) < 1e-9
    assert r["time_vs_joint"] == 0.25 and r["wall_time_vs_joint"] == 0.9 and r["steps_vs_joint"] == 0.25
