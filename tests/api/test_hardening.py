"""HTTP hardening: security headers, sandboxed reports, readiness, redacted actors, integer bounds,
and the body limit on chunked uploads against a real uvicorn server."""

from __future__ import annotations

import os
import select
import socket
import time

import numpy as np

from tests.api.fakes import COLLECTION, DIM_IN, FakeLoader

XSS = "</script><script>alert(1)</script>"


def _report(api_workspace, html: bytes) -> int:
    sha = api_workspace.artifacts.put_bytes(html)
    return api_workspace.registry.monitoring.record_drift_report(
        COLLECTION, batch_seq=None, model_version=1, drifted=False, alpha=0.05, summary={},
        report_artifact=sha).id


def test_every_page_carries_security_headers(client):
    for path in ("/", "/status", "/health", "/ready", "/docs", "/redoc", "/static/dashboard.js"):
        r = client.get(path)
        assert r.status_code == 200, path
        h = r.headers
        assert h["x-content-type-options"] == "nosniff" and h["x-frame-options"] == "DENY", path
        assert h["referrer-policy"] == "no-referrer", path
        assert "frame-ancestors 'none'" in h["content-security-policy"], path
    assert "script-src 'self';" in client.get("/").headers["content-security-policy"]  # no inline script
    assert client.post("/search", json={"vectors": [[0.0] * 3]}).headers["x-frame-options"] == "DENY"


def test_reports_are_served_sandboxed_without_the_token_form(client, api_workspace):
    rid = _report(api_workspace, f"<html><body><p>label {XSS}</p></body></html>".encode())
    r = client.get(f"/reports/drift/{rid}")
    assert r.status_code == 200
    csp = r.headers["content-security-policy"]
    assert csp.startswith("sandbox") and "allow-same-origin" not in csp and "allow-modals" not in csp
    assert 'name="token"' not in r.text


def test_ready_is_false_while_production_is_not_what_is_served(api_settings, api_workspace, pairs):
    from fastapi.testclient import TestClient

    from steward.api.app import create_app

    app = create_app(api_settings, workspace=api_workspace, loader=FakeLoader(broken={3}), poll_seconds=0.05,
                     retry_seconds=3600)
    with TestClient(app) as c:
        assert c.get("/ready").json() == {"ready": True, "not_ready": {}, "last_poll_error": None}
        # Another process moves production to a pair whose artifacts were altered: it cannot load.
        api_workspace.registry.models.switch_alias(COLLECTION, 3, pairs[3], actor="ci", reason="altered")
        deadline = time.monotonic() + 10
        while c.get("/ready").status_code == 200 and time.monotonic() < deadline:
            time.sleep(0.05)
        r = c.get("/ready")
        assert r.status_code == 503 and not r.json()["ready"]
        assert "production is model 3" in r.json()["not_ready"][COLLECTION]
        assert "serving model 1" in r.json()["not_ready"][COLLECTION]
        assert c.get("/health").status_code == 200  # alive: still answering with the earlier pair


def test_unauthenticated_pages_redact_host_and_pid_of_actors(client, api_workspace, pairs):
    from storage.registry.database import default_actor

    actor = default_actor()  # user@host:PID, what a CLI process records
    api_workspace.registry.models.switch_alias(COLLECTION, 2, pairs[2], reason="by the CLI")
    host_pid = actor.split("@", 1)[1]
    deadline = time.monotonic() + 10
    while "model v2" not in client.get("/").text and time.monotonic() < deadline:
        time.sleep(0.05)
    for path in ("/", "/versions", "/status"):
        text = client.get(path).text
        assert path == "/status" or "by the CLI" in text, path
        assert host_pid not in text, path
    assert actor.split("@")[0] + "@\u2026" in client.get("/").text
    assert api_workspace.production.history(COLLECTION)[-1].actor == actor  # the registry keeps it whole


def test_api_answers_4xx_for_huge_versions(client, auth) -> None:
    r = client.post("/promote", json={"model_version": 10**21}, headers=auth)
    assert r.status_code == 422 and "model_version" in r.json()["detail"]
    assert client.get(f"/models/{10**21}").status_code == 422
    assert 400 <= client.get("/models/99999999999").status_code < 500


def _rss_bytes() -> int:
    with open(f"/proc/{os.getpid()}/statm") as fh:
        return int(fh.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")


def _chunked_post(base: str, path: str, total: int, chunk: int = 1 << 16) -> tuple[int, int]:
    """POST ``total`` bytes with Transfer-Encoding: chunked; returns (status, bytes sent)."""
    host, port = base.removeprefix("http://").split(":")
    sock = socket.create_connection((host, int(port)), timeout=30)
    sock.sendall(f"POST {path} HTTP/1.1\r\nHost: {host}\r\nContent-Type: application/json\r\n"
                 "Transfer-Encoding: chunked\r\n\r\n".encode())
    piece = f"{chunk:x}\r\n".encode() + b"[" * chunk + b"\r\n"
    sent, answer = 0, b""
    try:
        while sent < total:
            if select.select([sock], [], [], 0)[0]:
                break  # the server answered before the body ended
            sock.sendall(piece)
            sent += chunk
        else:
            sock.sendall(b"0\r\n\r\n")
    except (BrokenPipeError, ConnectionResetError):
        pass
    try:
        while b"\r\n" not in answer:
            part = sock.recv(4096)
            if not part:
                break
            answer += part
    except ConnectionResetError:
        pass
    sock.close()
    return int(answer.split()[1]) if answer.startswith(b"HTTP/1.1") else 0, sent


def test_a_chunked_100mb_body_is_refused_early_without_memory_growth(api_settings, api_workspace, pairs,
                                                                      live_server):
    from steward.api.app import MAX_BODY_BYTES, create_app

    base = live_server(create_app(api_settings, workspace=api_workspace, loader=FakeLoader(), poll_seconds=0.2))
    before = _rss_bytes()
    status, sent = _chunked_post(base, "/search", 100 * 2**20)
    grew = _rss_bytes() - before
    assert status == 413
    assert sent < 100 * 2**20  # refused while the body was still arriving
    assert grew < 3 * MAX_BODY_BYTES, f"server grew by {grew / 2**20:.0f} MiB"
    # a small chunked body still works
    import httpx

    body = (b'{"vectors": %s}' % str(np.ones((1, DIM_IN)).tolist()).encode())
    r = httpx.post(base + "/search", content=iter([body]), headers={"Content-Type": "application/json"})
    assert r.status_code == 200, r.text
