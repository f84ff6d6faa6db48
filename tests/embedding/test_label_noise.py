import numpy as np
import pytest

from core.errors import ValidationError
from embedding.config import TrainConfig
from embedding.label_noise import SuspectReport, find_suspects, flip_labels, suspect_weights
from embedding.model import embed_array
from embedding.trainer import train

from .conftest import make_blobs_nonlinear


def _clusters(seed=0, n_classes=4, per_class=40):
    rng = np.random.default_rng(seed)
    centres = rng.normal(scale=5.0, size=(n_classes, 8))
    x = np.concatenate([c + rng.normal(size=(per_class, 8)) for c in centres]).astype(np.float32)
    y = np.repeat([f"c{i}" for i in range(n_classes)], per_class)
    return x, y, np.array([f"it{i}" for i in range(len(y))])


def test_flipped_labels_are_flagged_with_their_true_class_as_majority():
    x, y, ids = _clusters()
    noisy, flipped = flip_labels(y, 0.1, np.random.default_rng(1))
    assert flipped.sum() == 16 and (noisy[flipped] != y[flipped]).all() and (noisy[~flipped] == y[~flipped]).all()
    report = find_suspects(x, noisy, ids, k=10)
    found = np.isin(ids, report.item_ids())
    assert (found == flipped).all()  # well-separated clusters: every flip and nothing else
    for s in report.suspects:
        i = int(s.item_id[2:])
        assert s.label == noisy[i] and s.majority_label == y[i] and s.agreement < 0.5
    assert report.checked == len(y) and report.reference == len(y)
    assert report.rate == pytest.approx(0.1)
    assert SuspectReport.from_dict(report.to_dict()) == report


def test_only_checked_items_are_flagged_and_self_is_not_a_neighbour():
    x, y, ids = _clusters()
    noisy = y.copy()
    noisy[0] = "c3"  # a c0 item labelled c3
    check = np.zeros(len(y), bool)
    check[100:] = True  # item 0 is not checked: only a reference
    assert find_suspects(x, noisy, ids, check=check).suspects == ()
    # Duplicate rows: an item must not count its own (identical) copy among its neighbours' labels.
    xd = np.concatenate([x, x[:1]])
    yd, idd = np.append(noisy, "c3"), np.append(ids, "dup")
    rep = find_suspects(xd, yd, idd, k=5)
    flagged = {s.item_id: s for s in rep.suspects}
    assert set(flagged) == {"it0", "dup"} and flagged["it0"].agreement == pytest.approx(0.2)


def test_bad_arguments_name_the_value():
    x, y, ids = _clusters()
    with pytest.raises(ValidationError, match="k must be"):
        find_suspects(x, y, ids, k=0)
    with pytest.raises(ValidationError, match="do not line up"):
        find_suspects(x, y[:-1], ids)


def test_suspect_weights():
    rep = find_suspects(*_clusters()[:2], _clusters()[2], k=3)
    w = suspect_weights(["it0", "x"], rep, 0.2)
    assert w.tolist() == [1.0, 1.0]


def test_zero_weight_items_never_reach_the_loss_and_unit_weights_change_nothing():
    x, y = make_blobs_nonlinear(n_classes=4, per_class=40, dim=12, seed=5)
    cfg = TrainConfig(hidden_dims=(32,), out_dim=16, epochs=3, incremental_epochs=3, batch_size=64, val_fraction=0.0)
    first = train(x, y, cfg, progress=False)
    same = train(x, y, cfg, sample_weight=np.ones(len(y)), progress=False)
    assert same.history == first.history
    # Rows of NaN would poison the loss if they were ever sampled into a batch.
    poisoned = x.copy()
    poisoned[:12] = np.nan
    weights = np.ones(len(y), np.float32)
    weights[:12] = 0.0
    res = train(poisoned, y, cfg, init_model=first.model, init_classes=first.classes, sample_weight=weights,
                progress=False)
    assert all(np.isfinite(h["loss"]) for h in res.history) and res.steps > 0
    assert np.isfinite(embed_array(res.model, x)).all()
    with pytest.raises(ValidationError, match="sample weights"):
        train(x, y, cfg, sample_weight=np.ones(3), progress=False)


def test_suspect_weight_is_a_weight():
    from core.errors import ConfigError

    assert TrainConfig().suspect_weight == 1.0
    with pytest.raises(ConfigError, match="suspect_weight"):
        TrainConfig(suspect_weight=1.5)
