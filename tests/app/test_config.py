"""The run configuration: each space's own options, older config files, layering."""

import pytest

from efsnas.app.config import load_config, validate_config
from efsnas.errors import UsageError


def test_space_options_may_sit_in_the_section_and_are_kept_as_options():
    cfg = validate_config({"space": {"name": "nb201", "C": 8, "N": 1}})
    assert cfg.space.options == {"C": 8, "N": 1}
    assert "C" not in cfg.space.model_dump()  # one place for them in the resolved config
    same = validate_config({"space": {"name": "nb201", "options": {"C": 8, "N": 1}}})
    assert same == cfg


def test_an_older_config_file_still_loads_and_keeps_its_identity():
    # the layout before spaces declared their options: every space carried C, N and width_mult
    old = {"name": "mobilenet", "C": 16, "N": 5, "width_mult": 0.5, "input_size": 64,
           "options": {"width_division": "exact"}}
    cfg = validate_config({"space": old, "split": {"structure": "separate"}})
    assert cfg.space.options == {"width_mult": 0.5, "width_division": "exact"}
    # checkpoints record the older layout, so runs trained before still resume
    assert cfg.space.identity() == {"name": "mobilenet", "C": 16, "N": 5, "width_mult": 0.5,
                                    "input_size": 64, "options": {"width_division": "exact"}}
    nb = validate_config({"space": {"name": "nb201", "options": {"C": 8, "N": 1}}})
    assert nb.space.identity() == {"name": "nb201", "C": 8, "N": 1, "width_mult": 1.0,
                                   "input_size": None, "options": {}}


@pytest.mark.parametrize("space,message", [
    ({"name": "mobilenet", "C": 8}, "the mobilenet space has no option 'C'"),
    ({"name": "nb201", "options": {"width_mult": 0.5}}, "the nb201 space has no option"),
    ({"name": "nb201", "C": "wide"}, "option C of the nb201 space must be an integer"),
    ({"name": "nb201", "N": True}, "option N of the nb201 space must be an integer"),
])
def test_options_are_checked_against_what_the_space_declares(space, message):
    with pytest.raises(UsageError, match=message):
        validate_config({"space": space})


def test_naming_another_space_starts_its_section_afresh():
    # the tiny preset's C and N belong to nb201; switching to mobilenet drops them
    cfg = load_config(preset="tiny", overrides=["space.name=mobilenet", "space.width_mult=0.25",
                                                "space.input_size=32"])
    assert cfg.space.name == "mobilenet"
    assert cfg.space.options == {"width_mult": 0.25}
    # the order of the flags does not matter
    again = load_config(preset="tiny", overrides=["space.width_mult=0.25",
                                                  "space.input_size=32", "space.name=mobilenet"])
    assert again.space == cfg.space
    kept = load_config(preset="tiny", overrides=["space.C=12"])  # same space: merged
    assert kept.space.options == {"C": 12, "N": 1}


def test_a_structure_the_criterion_cannot_use_is_refused():
    with pytest.raises(UsageError, match="shared_prefix does not fit the oneshot criterion"):
        validate_config({"split": {"criterion": "oneshot", "structure": "shared_prefix"}})
    ok = validate_config({"split": {"criterion": "nonlinearity", "structure": "shared_prefix"}})
    assert ok.split.structure == "shared_prefix"


def test_identity_ignores_execution_settings_and_other_criteria_fields():
    a = validate_config({"split": {"criterion": "nonlinearity"}})
    b = validate_config({"split": {"criterion": "nonlinearity", "gm_groups": 3,
                                   "fsnas_position": 2},
                         "train": {"cpu_allocator": "system", "device": "cpu"}})
    assert a.training_identity() == b.training_identity()
    c = validate_config({"split": {"criterion": "gmnas", "gm_groups": 3}})
    assert c.training_identity()["split"]["gm_groups"] == 3
    assert "fsnas_position" not in c.training_identity()["split"]
