import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from embedding.inference import ROLE_HEAD_ARRAYS, Embedder, load_embedder
from embedding.model import HEAD_KINDS, HeadSpec, build_head, embed_array, head_arrays
from embedding.numpy_head import NumpyHead, arrays_to_head_bytes

ROOT = Path(__file__).resolve().parents[2]


def _trained_like_head(kind: str, dropout: float = 0.0, out_dim: int = 4, skip: str = "raw"):
    """A head of ``kind`` with every weight perturbed (the residual's zero-initialised last layer too)."""
    rng = np.random.default_rng(0)
    head = build_head(HeadSpec(10, (16, 8), out_dim, dropout, kind, skip=skip), seed=0)
    x = rng.normal(size=(60, 10)).astype(np.float32) * 3 + 1
    head.fit_standardizer(x)
    head.fit_skip(x, np.repeat(["a", "b", "c"], 20), 0.5)
    with torch.no_grad():
        for p in head.parameters():
            p.add_(torch.as_tensor(rng.normal(scale=0.3, size=tuple(p.shape)), dtype=torch.float32))
    return head.eval()


@pytest.mark.parametrize(("kind", "skip"), [*((k, "raw") for k in HEAD_KINDS), ("blend", "whitened")])
@pytest.mark.parametrize("dropout", [0.0, 0.2])
def test_numpy_and_torch_agree_for_every_head_kind(kind, skip, dropout):
    head = _trained_like_head(kind, dropout, skip=skip)
    x = np.random.default_rng(1).normal(size=(33, 10)).astype(np.float32) * 2
    np_head = NumpyHead.from_bytes(arrays_to_head_bytes(head.spec.to_dict(), head_arrays(head)))
    np.testing.assert_allclose(np_head(x, batch_size=7), embed_array(head, x), atol=1e-5)
    assert np_head(x[:0]).shape == (0, head.spec.embedding_dim) == embed_array(head, x[:0]).shape


def test_untrained_residual_head_is_its_skip_projection():
    x = np.random.default_rng(2).normal(size=(80, 10)).astype(np.float32)
    same = build_head(HeadSpec(10, (16,), 10, kind="residual"), 0)
    same.fit_standardizer(x)
    xs = (x - x.mean(0)) / same.input_std.numpy()
    expect = xs / np.linalg.norm(xs, axis=1, keepdims=True)
    np.testing.assert_allclose(embed_array(same, x), expect, atol=1e-5)  # identity skip: the input itself
    small = build_head(HeadSpec(10, (16,), 3, kind="residual"), 0)
    small.fit_standardizer(x)
    skip = small.skip.numpy()
    np.testing.assert_allclose(skip.T @ skip, np.eye(3), atol=1e-5)  # orthonormal principal directions


def test_blend_cosine_is_the_weighted_sum_of_raw_and_head_cosines():
    head = _trained_like_head("blend")
    mlp = _trained_like_head("mlp")  # same seed and perturbation: the same MLP as the blend's
    x = np.random.default_rng(5).normal(size=(9, 10)).astype(np.float32)
    e, h = embed_array(head, x), embed_array(mlp, x)
    raw = x / np.linalg.norm(x, axis=1, keepdims=True)
    assert e.shape == (9, 14) and head.spec.embedding_dim == 14
    w = head.spec.skip_weight
    np.testing.assert_allclose(e @ e.T, w * raw @ raw.T + (1 - w) * h @ h.T, atol=1e-5)


def test_numpy_path_imports_no_torch(tmp_path):
    head = _trained_like_head("blend")
    path = tmp_path / "head.npz"
    path.write_bytes(arrays_to_head_bytes(head.spec.to_dict(), head_arrays(head)))
    x = np.random.default_rng(3).normal(size=(5, 10)).astype(np.float32)
    np.save(tmp_path / "x.npy", x)
    code = (
        "import sys, json, numpy as np\n"
        "from embedding.inference import Embedder\n"
        "from embedding.numpy_head import NumpyHead\n"
        f"h = NumpyHead.from_bytes(open({str(path)!r}, 'rb').read())\n"
        f"out = Embedder(h, model_version=1).embed_features(np.load({str(tmp_path / 'x.npy')!r}))\n"
        "print(json.dumps({'torch': 'torch' in sys.modules, 'out': out.tolist()}))\n"
    )
    res = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, check=True)
    got = json.loads(res.stdout)
    assert got["torch"] is False
    np.testing.assert_allclose(np.array(got["out"]), embed_array(head, x), atol=1e-5)


def test_load_embedder_uses_arrays_and_falls_back_to_torch_for_old_versions(workspace):
    from storage.serialization import state_dict_to_bytes

    head = _trained_like_head("residual")
    put = workspace.artifacts.put_bytes
    weights = put(state_dict_to_bytes(head.state_dict()))
    arrays = put(arrays_to_head_bytes(head.spec.to_dict(), head_arrays(head)))
    cfg = {"architecture": head.spec.to_dict(), "input_kind": "features"}
    workspace.registry.catalog.ensure_collection("c", kind="features", dim=10)
    models = workspace.registry.models
    new = models.register_model("c", config=cfg, metrics={}, artifacts={"weights": weights, ROLE_HEAD_ARRAYS: arrays})
    old_cfg = {"architecture": {k: v for k, v in head.spec.to_dict().items() if k != "kind"}}
    old_head = _trained_like_head("mlp")
    old = models.register_model("c", config=old_cfg, metrics={},
                                artifacts={"weights": put(state_dict_to_bytes(old_head.state_dict()))})
    x = np.random.default_rng(4).normal(size=(6, 10)).astype(np.float32)
    e_new = load_embedder(workspace, "c", new.version)
    e_old = load_embedder(workspace, "c", old.version)
    assert not e_new.uses_torch and e_old.uses_torch
    np.testing.assert_allclose(e_new.embed_features(x), embed_array(head, x), atol=1e-5)
    np.testing.assert_allclose(e_old.embed_features(x), embed_array(old_head, x), atol=1e-6)
    assert isinstance(Embedder(head, model_version=None).model, torch.nn.Module)


def test_load_embedder_on_the_numpy_path_imports_no_torch(workspace, settings):
    """What drift checks and search do: open the workspace, load the version, embed (subprocess)."""
    from storage.serialization import state_dict_to_bytes

    head = _trained_like_head("mlp")
    put = workspace.artifacts.put_bytes
    workspace.registry.catalog.ensure_collection("c", kind="features", dim=10)
    mv = workspace.registry.models.register_model(
        "c", config={"architecture": head.spec.to_dict(), "input_kind": "features"}, metrics={},
        artifacts={"weights": put(state_dict_to_bytes(head.state_dict())),
                   ROLE_HEAD_ARRAYS: put(arrays_to_head_bytes(head.spec.to_dict(), head_arrays(head)))})
    code = (
        "import sys, json, numpy as np\n"
        "from tests.factories import make_settings\n"
        "from storage.workspace import open_workspace\n"
        "from embedding.inference import load_embedder\n"
        f"ws = open_workspace(make_settings(__import__('pathlib').Path({str(settings.home)!r})))\n"
        f"e = load_embedder(ws, 'c', {mv.version})\n"
        "out = e.embed_features(np.ones((3, 10), np.float32))\n"
        "print(json.dumps({'torch': 'torch' in sys.modules, 'out': out.tolist()}))\n"
    )
    res = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, check=True)
    got = json.loads(res.stdout.strip().splitlines()[-1])
    assert got["torch"] is False
    np.testing.assert_allclose(np.array(got["out"]), embed_array(head, np.ones((3, 10), np.float32)), atol=1e-5)
