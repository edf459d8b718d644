"""Property-based fuzzing of the NAS-Bench-201 cell parser: any text gives a cell that
round-trips, or the project's own UsageError, never another exception."""

import pytest

hypothesis = pytest.importorskip("hypothesis")
from hypothesis import given  # noqa: E402
from hypothesis import strategies as st  # noqa: E402

from efsnas.errors import UsageError  # noqa: E402
from efsnas.spaces.nb201.cell import EDGES, OPS, format_cell, parse_cell  # noqa: E402

# text near the grammar, so the fuzzer reaches deep into the parser, plus any text at all
_TOKENS = st.sampled_from([*OPS, "|", "+", "~", "0", "1", "2", "3", "²", "٣", " ", "x"])
_NEAR = st.lists(_TOKENS, max_size=40).map("".join)


@given(st.one_of(_NEAR, st.text(max_size=80)))
def test_any_text_parses_and_round_trips_or_is_a_usage_error(text):
    try:
        cell = parse_cell(text)
    except UsageError as e:
        assert "\n" not in str(e)
        return
    assert parse_cell(format_cell(cell)) == cell


@given(st.tuples(*[st.integers(0, len(OPS) - 1)] * len(EDGES)))
def test_every_cell_round_trips(cell):
    assert parse_cell(format_cell(cell)) == cell


def test_a_non_ascii_digit_is_a_usage_error():
    text = "|nor_conv_3x3~0|+|nor_conv_3x3~0|none~1|+|none~0|none~1|none~²|"
    with pytest.raises(UsageError, match="not of the form op~input"):
        parse_cell(text)
