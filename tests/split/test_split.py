import pytest

from efsnas import create_criterion, create_space
from efsnas.errors import UsageError
from efsnas.split.criteria import parse_groups


@pytest.fixture(scope="module")
def space():
    return create_space("nb201")


def test_default_nonlinearity_split(space):
    split = create_criterion("nonlinearity").split(space)
    assert [s.name for s in split.subspaces] == ["count=0,1", "count=2", "count=3"]
    assert [len(m) for m in split.members()] == [1983 - 341 + 7122, 5520, 1000]
    assert split.width_divisor == 3
    split.validate()
    cell = space.parse("|nor_conv_3x3~0|+|none~0|nor_conv_3x3~1|+|none~0|none~1|nor_conv_3x3~2|")
    assert split.route(cell) == 2


@pytest.mark.parametrize("groups,msg", [
    ("0,1/1/2,3", "count 1 is in groups"),
    ("0,1/2", "counts [3]"),
    ("0,1/2/7", "cannot occur"),
    ("0,1/x/3", "bad grouping"),
    ("rest/rest", "at most once"),
])
def test_bad_groupings_are_refused(space, groups, msg):
    with pytest.raises(UsageError, match=msg.replace("[", r"\[").replace("]", r"\]")):
        create_criterion("nonlinearity", groups=groups).split(space)


def test_any_valid_grouping_is_accepted(space):
    split = create_criterion("nonlinearity", groups="0/1/2/3", width_divisor=4).split(space)
    assert [len(m) for m in split.members()] == [1983 - 341, 7122, 5520, 1000]
    split = create_criterion("nonlinearity", groups="3/rest").split(space)
    assert [len(m) for m in split.members()] == [1000, 15625 - 341 - 1000]
    assert parse_groups("0,1/2/3") == ((0, 1), (2,), (3,))


def test_fsnas_and_oneshot(space):
    fs = create_criterion("fsnas", position=0).split(space)
    assert len(fs) == 5 and fs.width_divisor == 1
    sizes = [len(m) for m in fs.members()]
    assert sum(sizes) == 15625 - 341
    fs.validate()
    one = create_criterion("oneshot").split(space)
    assert len(one) == 1 and len(one.members()[0]) == 15625 - 341
    with pytest.raises(UsageError, match="position 9"):
        create_criterion("fsnas", position=9).split(space)
