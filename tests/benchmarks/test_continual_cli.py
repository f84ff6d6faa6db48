"""The CLI benchmark's pure plumbing: the held-out split per step, the summary, steward vs full, the
section. (The benchmark itself runs steward subprocesses for minutes, so it has no smoke test.)"""

from __future__ import annotations

import numpy as np

from benchmarks.continual import Step
from benchmarks.continual_cli import (
    compare,
    heldout_ids,
    parse_stages,
    render,
    seen_split,
    summarise_seed,
)


def _steps() -> list[Step]:
    rng = np.random.default_rng(0)
    out = []
    for t, classes in enumerate((["a", "b"], ["c"], ["d"])):
        y = np.repeat(classes, 3)
        out.append(Step(rng.normal(size=(len(y), 4)), y, rng.normal(size=(len(y), 4)) + t, y))
    return out


def test_seen_split_keeps_earlier_classes_as_old_and_later_ones_unseen():
    steps = _steps()
    ids = heldout_ids(steps)
    split = seen_split(steps, ids, 1)
    assert set(split["y"]) == {"a", "b", "c"} and split["old"] == {"a", "b"}
    assert set(split["unseen_y"]) == {"d"} and len(split["unseen_ids"]) == len(split["unseen_x"]) == 3
    assert len(set(np.concatenate(ids))) == sum(len(s.y_test) for s in steps)  # ids never collide
    last = seen_split(steps, ids, 2)
    assert last["unseen_ids"] is None and seen_split(steps, ids, 0)["old"] is None


def _row(strategy: str, step: int, map_all: float, update_s: float, pipeline_s: float, accepted: bool | None = True,
         forgetting: float | None = None) -> dict:
    return {"seed": 0, "step": step, "strategy": strategy, "map_at_r_all": map_all, "p_at_1_all": map_all,
            "map_at_r_old": map_all, "map_at_r_new": map_all, "forgetting": forgetting, "vs_raw_all": map_all - 0.1,
            "vs_raw_unseen": None, "update_s": update_s, "pipeline_s": pipeline_s, "gate_accepted": accepted,
            "gate_reasons": ["MAP@R on old classes changed -0.2"] if accepted is False else [],
            "outcome": "x", "candidate_version": step + 1, "production_version": step + 1,
            "trained": {"seconds": update_s / 2, "failed_checks": ["old: dropped 0.2"] if accepted is False else []}}


def _rows() -> dict[str, list[dict]]:
    return {"raw": [{"seed": 0, "step": t, "strategy": "raw", "map_at_r_all": 0.1, "p_at_1_all": 0.5}
                    for t in range(3)],
            "steward": [_row("steward", 0, 0.8, 50, 50), _row("steward", 1, 0.6, 10, 10, accepted=False),
                        _row("steward", 2, 0.45, 20, 20, forgetting=0.2)],
            "full": [_row("full", 0, 0.8, 50, 60), _row("full", 1, 0.7, 40, 50),
                     _row("full", 2, 0.5, 40, 50, forgetting=0.1)]}


def test_summary_and_comparison_use_the_final_step_and_pair_updates_by_step():
    rows = _rows()
    summary = summarise_seed(rows)
    assert summary["steward"]["final_map_at_r_all"] == 0.45 and summary["steward"]["gate_rejections"] == 1
    assert summary["steward"]["mean_update_s"] == 15  # the first (bootstrap) step is not an update
    cmp = compare(summary, rows)
    assert np.isclose(cmp["map_vs_full"], 0.9)
    assert np.isclose(cmp["run_vs_retrain_full"], (10 / 40 + 20 / 40) / 2)
    assert np.isclose(cmp["run_vs_full_pipeline"], (10 / 50 + 20 / 50) / 2)
    assert np.isclose(cmp["forgetting_vs_full"], 2.0)


def test_section_names_the_rejection_and_its_failed_check():
    rows = _rows()
    summary = summarise_seed(rows)
    data = {"seeds": [0], "steps": 3, "classes": 4, "command": "python -m benchmarks.continual_cli",
            "load_average_before": (1.0, 1.0, 1.0), "load_average_after": (2.0, 2.0, 2.0), "wall_seconds": 60.0,
            "per_seed": {"0": {"summary": summary, "compare": compare(summary, rows)}},
            "rows": [r for rs in rows.values() for r in rs]}
    md = render(data)
    assert "seed 0 step 1 steward v2: old: dropped 0.2" in md
    assert "90.0% of full's" in md and "37.5% of a `steward retrain --full`" in md


def test_stage_log_lines_become_seconds_per_kind_and_the_rest_is_the_remainder():
    lines = [
        "2026-11-27 16:05:01,931 INFO steward.progress: checking the data quality of batch 2 ...",
        "2026-11-27 16:05:04,581 INFO steward.progress: checking the data quality of batch 2: done in 2.6 s",
        "2026-11-27 16:05:07,426 INFO steward.progress: checking batch 2 for drift: done in 2.8 s",
        "2026-11-27 16:06:19,910 INFO steward.progress: training a candidate (incremental): done in 72.5 s",
        "2026-11-27 16:06:21,525 INFO steward.progress: building and tuning the index of model v2: done in 1.6 s",
        "2026-11-27 16:06:21,650 INFO steward.progress: promoting model v2: done in 0.1 s",
        "some other line: done in 9 s",  # not a log line of a stage
    ]
    stages = parse_stages("\n".join(lines))
    assert stages == {"quality": 2.6, "drift": 2.8, "train": 72.5, "index": 1.6, "promote": 0.1}
    rows = _rows()
    for r in rows["steward"]:
        r["stages_s"] = {"train": 4.0, "index": 1.0}
    got = summarise_seed(rows)["steward"]["mean_stages_s"]
    assert got == {"train": 4.0, "index": 1.0, "rest": 15 - 5.0}
