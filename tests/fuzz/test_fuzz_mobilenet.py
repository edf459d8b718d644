"""Property-based fuzzing of the MobileNet subnet parser (`k3e6-k5e3-skip-...`): any text gives
a subnet that round-trips, or the project's own UsageError on one line, never another
exception."""

import pytest

hypothesis = pytest.importorskip("hypothesis")
from hypothesis import given  # noqa: E402
from hypothesis import strategies as st  # noqa: E402

from efsnas.errors import UsageError  # noqa: E402
from efsnas.spaces.mobilenet.encoding import (  # noqa: E402
    NUM_CHOICES,
    NUM_LAYERS,
    STAGE_FIRST,
    TOKENS,
    format_subnet,
    is_valid,
    parse_subnet,
)

# text near the grammar (tokens, separators, near-misses, odd digits and spaces) and any text
_PIECES = st.sampled_from([*TOKENS, "-", "-", "-", " ", "\t", "k", "e", "3", "6", "٣", "²",
                           "K3E3", "k9e9", "skip ", "\u00a0", "\n", ""])
_NEAR = st.lists(_PIECES, max_size=60).map("".join)
# 21 tokens with one of them damaged, so the parser gets past the token count
_ONE_BAD = st.tuples(st.lists(st.sampled_from(TOKENS), min_size=NUM_LAYERS, max_size=NUM_LAYERS),
                     st.integers(0, NUM_LAYERS - 1), st.text(max_size=6)).map(
    lambda t: "-".join(t[0][:t[1]] + [t[2]] + t[0][t[1] + 1:]))


def _check(text):
    try:
        subnet = parse_subnet(text)
    except UsageError as e:
        assert "\n" not in str(e) and str(e)
        return None
    assert len(subnet) == NUM_LAYERS and all(0 <= c < NUM_CHOICES for c in subnet)
    assert parse_subnet(format_subnet(subnet)) == subnet
    return subnet


@given(st.one_of(_NEAR, _ONE_BAD, st.text(max_size=200)))
def test_any_text_parses_and_round_trips_or_is_a_usage_error(text):
    _check(text)


@given(st.one_of(st.none(), st.integers(), st.binary(max_size=20), st.lists(st.text(), max_size=3),
                 st.floats()))
def test_a_non_string_is_a_usage_error(value):
    with pytest.raises(UsageError, match="must be a string"):
        parse_subnet(value)


@given(st.tuples(*[st.integers(0, NUM_CHOICES - 1)] * NUM_LAYERS))
def test_every_subnet_round_trips_and_validity_is_the_first_layers(subnet):
    assert parse_subnet(format_subnet(subnet)) == subnet
    assert is_valid(subnet) == all(subnet[i] != TOKENS.index("skip") for i in STAGE_FIRST)


def test_spaces_around_tokens_are_the_same_subnet():
    text = " - ".join(["k3e6"] * NUM_LAYERS)
    assert parse_subnet(text) == (TOKENS.index("k3e6"),) * NUM_LAYERS
