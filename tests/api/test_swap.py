"""Hammer /search from several threads while production is promoted and rolled back.

Every response must succeed and come from one consistent pair: the embedder and the index of the
same model version (checked through self-matches) and a pair that exists in the registry.
"""

from __future__ import annotations

import threading
import time

import httpx

from tests.api.fakes import COLLECTION, TOKEN, FakeLoader, gallery, self_match_ok

IDS, FEATS = gallery()


def test_no_errors_and_no_mixed_versions_while_swapping(api_settings, api_workspace, pairs, live_server):
    from steward.api.app import create_app

    loader = FakeLoader(delay=0.15)  # slow loads: swaps happen while requests are in flight
    app = create_app(api_settings, workspace=api_workspace, loader=loader, poll_seconds=0.05, cache_size=1)
    base = live_server(app)
    stop = threading.Event()
    seen: list[tuple[int, int]] = []
    problems: list[str] = []
    lock = threading.Lock()

    def hammer(worker: int) -> None:
        with httpx.Client(base_url=base, timeout=30) as http:
            i = worker
            while not stop.is_set():
                rows = [i % len(IDS), (i * 7 + 3) % len(IDS)]
                i += 1
                body = (
                    {"vectors": FEATS[rows].tolist(), "k": 5}
                    if i % 3
                    else {"item_ids": [IDS[r] for r in rows], "k": 5}
                )
                r = http.post("/search", json=body)
                with lock:
                    if r.status_code != 200:
                        problems.append(f"HTTP {r.status_code}: {r.text[:200]}")
                        continue
                    data = r.json()
                    key = (data["model_version"], data["index_version"])
                    seen.append(key)
                    if pairs.get(key[0]) != key[1]:
                        problems.append(f"response names a pair that does not exist: {key}")
                    if not self_match_ok(data, [IDS[r] for r in rows]):
                        problems.append(f"mixed versions in a response from {key}: {data['results'][0]}")

    threads = [threading.Thread(target=hammer, args=(w,)) for w in range(4)]
    for t in threads:
        t.start()
    auth = {"Authorization": f"Bearer {TOKEN}"}
    registry = api_workspace.registry
    try:
        with httpx.Client(base_url=base, timeout=30) as admin:
            time.sleep(0.3)
            assert admin.post("/promote", json={"model_version": 2}, headers=auth).status_code == 200
            time.sleep(0.3)
            assert admin.post("/rollback", json={}, headers=auth).status_code == 200
            time.sleep(0.3)
            # from "another process": the watcher has to notice and load in the background
            registry.models.switch_alias(COLLECTION, 3, pairs[3], actor="cli", reason="nightly")
            time.sleep(0.8)
            registry.models.rollback(COLLECTION, actor="cli", reason="undo")
            time.sleep(0.8)
            assert admin.post("/promote", json={"model_version": 2}, headers=auth).status_code == 200
            time.sleep(0.3)
    finally:
        stop.set()
        for t in threads:
            t.join(30)

    assert not problems, problems[:5]
    assert len(seen) > 50
    assert {k[0] for k in seen} == {1, 2, 3}, "every promoted version should have served"
    assert app.state.serving.current(COLLECTION).model_version == 2
