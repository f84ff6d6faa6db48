import numpy as np
import pyarrow as pa
import pytest
import torch

from core.errors import ValidationError
from embedding.config import TrainConfig
from embedding.inference import Embedder
from embedding.model import HeadSpec, build_head, embed_array


def test_head_output_is_unit_norm_and_spec_round_trips():
    spec = HeadSpec.from_config(10, TrainConfig(hidden_dims=(16, 8), out_dim=4))
    assert HeadSpec.from_dict(spec.to_dict()) == spec
    head = build_head(spec, seed=0)
    head.fit_standardizer(np.random.default_rng(0).normal(size=(50, 10)).astype(np.float32))
    emb = embed_array(head, np.random.default_rng(1).normal(size=(7, 10)).astype(np.float32), batch_size=3)
    assert emb.shape == (7, 4) and emb.dtype == np.float32
    np.testing.assert_allclose(np.linalg.norm(emb, axis=1), 1.0, rtol=1e-5)
    assert torch.equal(build_head(spec, 0).net[0].weight, build_head(spec, 0).net[0].weight)


def test_standardizer_floor_keeps_unused_features_bounded():
    x = np.zeros((20, 3), np.float32)
    x[:, 0] = np.arange(20)
    head = build_head(HeadSpec(3, (4,), 2), 0)
    head.fit_standardizer(x)
    # Feature 2 never varied in the first data; a later value of 10 must not explode (10 / 1e-3).
    z = (torch.tensor([[0.0, 0.0, 10.0]]) - head.input_mean) / head.input_std
    assert float(z.abs().max()) < 100


def test_embedder_checks_shapes_and_reads_tables():
    head = build_head(HeadSpec(3, (4,), 2), 0)
    e = Embedder(head, model_version=7)
    table = pa.table({"item_id": ["a", "b"], "features": pa.FixedSizeListArray.from_arrays(
        pa.array(np.arange(6, dtype=np.float32)), 3)})
    assert e.embed_table(table).shape == (2, 2) and e.output_dim == 2 and e.model_version == 7
    with pytest.raises(ValidationError, match="expects"):
        e.embed_features(np.zeros((2, 5), np.float32))
    with pytest.raises(ValidationError, match="no 'features' column"):
        e.embed_table(pa.table({"item_id": ["a"]}))


@pytest.mark.slow
def test_text_encoder_loads_offline_and_feeds_the_head():
    from embedding.model import TEXT_ENCODER_DIM, get_text_encoder

    enc = get_text_encoder()
    v = enc.encode(["a red bicycle", "a crimson bike", "tax law in France"])
    assert v.shape == (3, TEXT_ENCODER_DIM)
    assert v[0] @ v[1] > v[0] @ v[2]  # the encoder carries meaning
    e = Embedder(build_head(HeadSpec(TEXT_ENCODER_DIM, (8,), 4), 0), model_version=1, input_kind="text")
    out = e.embed_table(pa.table({"item_id": ["x", "y"], "text": ["hello", None]}))
    assert out.shape == (2, 4)
