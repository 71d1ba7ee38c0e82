"""Learning-rate schedule and config overrides."""

from __future__ import annotations

import pytest

from centerpoint_suite.config import TrainConfig, apply_overrides, experiment_from_dict, load_config, to_dict
from centerpoint_suite.errors import UserError
from centerpoint_suite.trainer import lr_at


def test_step_schedule_and_warmup():
    exp = load_config("boxes2d_synthetic")
    from dataclasses import replace

    exp = replace(exp, train=TrainConfig(epochs=10, lr=1.0, lr_steps=(5, 8), lr_gamma=0.1, warmup_iters=4))
    assert lr_at(exp, 0.0, 0) == pytest.approx(0.25)
    assert lr_at(exp, 0.0, 10) == pytest.approx(1.0)
    assert lr_at(exp, 0.49, 10) == pytest.approx(1.0)
    assert lr_at(exp, 0.5, 10) == pytest.approx(0.1)
    assert lr_at(exp, 0.85, 10) == pytest.approx(0.01)


def test_overrides_are_typed_and_round_trip():
    exp = apply_overrides(
        load_config("boxes2d_synthetic"),
        ["train.batch_size=3", "data.input_hw=(96,128)", "task.radius_formula=exact", "model.head_conv=none"],
    )
    assert exp.train.batch_size == 3 and exp.data.input_hw == (96, 128)
    assert exp.task.radius_formula == "exact" and exp.model.head_conv is None
    assert experiment_from_dict(to_dict(exp)) == exp


@pytest.mark.parametrize(
    "item, words",
    [("train.nope=1", ["nope", "lr"]), ("train=1", ["section"]), ("train.epochs", ["key=value"])],
)
def test_bad_overrides_name_the_problem(item, words):
    with pytest.raises(UserError) as e:
        apply_overrides(load_config("boxes2d_synthetic"), [item])
    for w in words:
        assert w in str(e.value)


def test_linear_schedule_reaches_zero_at_the_end_of_the_run():
    from dataclasses import replace

    exp = load_config("boxes2d_synthetic")
    exp = replace(exp, train=TrainConfig(epochs=10, lr=2.0, lr_schedule="linear", warmup_iters=4))
    assert lr_at(exp, 0.0, 0) == pytest.approx(0.5)  # warm-up still applies
    assert lr_at(exp, 0.0, 10) == pytest.approx(2.0)
    assert lr_at(exp, 0.25, 10) == pytest.approx(1.5)
    assert lr_at(exp, 0.9, 10) == pytest.approx(0.2)
    assert lr_at(exp, 1.0, 10) == 0.0 and lr_at(exp, 1.2, 10) == 0.0


@pytest.mark.parametrize(
    "item, words",
    [
        ("train.lr_schedule=cosine", "train.lr_schedule='cosine': unknown; use 'step' or 'linear'"),
        ("train.ema_decay=1.0", "train.ema_decay=1.0: must be in [0, 1)"),
        ("train.ema_decay=-0.5", "train.ema_decay=-0.5: must be in [0, 1)"),
        ("data.cache_gb=-1", "data.cache_gb=-1.0: must be >= 0"),
    ],
)
def test_bad_training_settings_are_named(item, words):
    with pytest.raises(UserError) as e:
        apply_overrides(load_config("boxes2d_synthetic"), [item])
    assert words in str(e.value)
