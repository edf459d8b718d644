"""Run identities recorded by earlier versions still match when only settings added since, at
their empty defaults, differ."""

import pytest

from efsnas.train.checkpoint import CheckpointError, check_identity, same_identity

NOW = {"space": {"name": "nb201", "C": 8, "options": {}},
       "retrain": {"epochs": 10, "lr_batch": None}, "train": {"seed": 0}}


def test_settings_added_later_at_their_defaults_match():
    before = {"space": {"name": "nb201", "C": 8}, "retrain": {"epochs": 10}, "train": {"seed": 0}}
    assert same_identity(before, NOW)
    check_identity({"identity": '{"space": {"name": "nb201", "C": 8}, "retrain": '
                                '{"epochs": 10}, "train": {"seed": 0}}'}, NOW, "x.pt")


@pytest.mark.parametrize("recorded", [
    {"space": {"name": "nb201", "C": 16}, "retrain": {"epochs": 10}, "train": {"seed": 0}},
    {"space": {"name": "nb201", "C": 8}, "retrain": {"epochs": 10}, "train": {"seed": 1}},
    {"space": {"name": "nb201", "C": 8, "options": {"N": 1}}, "retrain": {"epochs": 10},
     "train": {"seed": 0}},
    {"space": {"name": "nb201", "C": 8}, "retrain": {"epochs": 10}, "train": {"seed": 0},
     "split": {"criterion": "oneshot"}},  # a setting the current run no longer has
])
def test_any_other_difference_does_not(recorded):
    assert not same_identity(recorded, NOW)


def test_a_setting_added_with_a_value_is_a_difference():
    now = {**NOW, "retrain": {"epochs": 10, "lr_batch": 256}}
    before = {"space": {"name": "nb201", "C": 8}, "retrain": {"epochs": 10}, "train": {"seed": 0}}
    assert not same_identity(before, now)
    with pytest.raises(CheckpointError, match="another configuration"):
        check_identity({"identity": '{"retrain": {"epochs": 10}}'}, now, "x.pt")
