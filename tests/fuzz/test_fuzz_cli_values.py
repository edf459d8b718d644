"""Property-based fuzzing of the values people type after a flag: `--set KEY=VALUE`,
`--shard I/N`, `--variant NAME:BASE;KEY=VALUE;...` and `--groups` grouping strings. Either a
valid object that round-trips (parse -> format -> parse gives the same) or the project's own
error on one line (UsageError; argparse's ArgumentTypeError for a flag's type), never another
exception."""

import argparse
import json

import pytest

hypothesis = pytest.importorskip("hypothesis")
from hypothesis import given  # noqa: E402
from hypothesis import strategies as st  # noqa: E402

from efsnas.app.compare import parse_variant, variants  # noqa: E402
from efsnas.app.config import parse_override  # noqa: E402
from efsnas.cli.common import parse_shard  # noqa: E402
from efsnas.errors import UsageError  # noqa: E402
from efsnas.split.criteria import NonlinearityCountSplit, parse_groups  # noqa: E402

# YAML values that are easy to get wrong: unclosed, tagged, dates that are no dates, huge,
# nested, NaN, code
YAML_VALUES = ["3", "-1", "0x1f", "1_000", "1e400", ".nan", ".inf", "-.inf", "[1", "{a: 1",
               "[1, 2]", "{}", "''", "'", '"', "!!python/object/apply:os.system ['true']",
               "!!binary abc", "!!float x", "!!int x", "!!timestamp x", "2020-13-45",
               "2020-02-30", "2001-12-14t21:59:43.10-05:00", "&a [*a]", "*a", "9" * 23,
               "9" * 5000, "[" * 300 + "]" * 300, "off", "yes", "~", "null", "- a", "a: b: c",
               "%YAML 1.1", "---", "...", "\t", "\x00", "\ufeff", "é", "|\n a", ">"]
_KEYS = st.sampled_from(["train.epochs", "train.seed", "train.lr", "space.C", "space.name",
                         "split.groups", "data.name", "out", "", ".", "a..b", " train.epochs ",
                         "train.epochs.x", "=", "train"])
_OVERRIDE = st.one_of(
    st.tuples(_KEYS, st.sampled_from(["=", "", "=="]),
              st.one_of(st.sampled_from(YAML_VALUES), st.text(max_size=20))).map("".join),
    st.text(max_size=60))


def _one_line(e: Exception) -> None:
    assert str(e) and "\n" not in str(e), str(e)


@given(_OVERRIDE)
def test_set_is_a_nested_mapping_or_a_usage_error(text):
    try:
        out = parse_override(text)
    except UsageError as e:
        _one_line(e)
        return
    key = text.partition("=")[0]
    cur = out
    for part in key.strip().split("."):  # one mapping per dotted part, the value at the end
        assert isinstance(cur, dict) and list(cur) == [part]
        cur = cur[part]


_NAME = st.from_regex(r"[a-z][a-z_]{0,8}", fullmatch=True)
_PLAIN = st.one_of(st.integers(-10 ** 6, 10 ** 6), st.booleans(),
                   st.from_regex(r"[a-z][a-z0-9_]{0,8}", fullmatch=True).filter(
                       lambda s: s not in ("null", "true", "false", "nan", "inf")))


@given(st.lists(_NAME, min_size=1, max_size=3), _PLAIN)
def test_set_round_trips_a_plain_value(parts, value):
    key = ".".join(parts)
    out = parse_override(f"{key}={json.dumps(value)}")
    for part in parts:
        out = out[part]
    assert out == value


@given(st.one_of(
    st.tuples(st.one_of(st.integers(-3, 10 ** 7), st.sampled_from(["", "x", "٣", "²", " 1"])),
              st.sampled_from(["/", "//", " / ", "\\", ""]),
              st.one_of(st.integers(-3, 10 ** 7), st.sampled_from(["", "0", "٣", "1e3"]))
              ).map(lambda t: f"{t[0]}{t[1]}{t[2]}"),
    st.text(max_size=30)))
def test_shard_is_i_of_n_or_an_argument_error(text):
    try:
        i, n = parse_shard(text)
    except argparse.ArgumentTypeError as e:
        _one_line(e)
        return
    assert 0 <= i < n and parse_shard(f"{i}/{n}") == (i, n)


def test_shard_through_the_parser_is_exit_2(capsys):
    from efsnas.cli.main import main

    with pytest.raises(SystemExit) as e:
        main(["compare", "--shard", "3/3"])
    assert e.value.code == 2
    assert "write I/N with 0 <= I < N" in capsys.readouterr().err


_BASES = st.sampled_from([*variants(), "nonsense", ""])
_VARIANT = st.one_of(
    st.tuples(st.sampled_from(["sep", " a b ", "", ":", "x;y"]), st.sampled_from([":", "", "::"]),
              _BASES, st.lists(st.tuples(_KEYS, st.just("="), st.sampled_from(YAML_VALUES))
                               .map("".join), max_size=3)).map(
        lambda t: t[0] + t[1] + t[2] + "".join(";" + s for s in t[3])),
    st.text(max_size=60))


def _format_variant(name: str, base: str, overrides) -> str:
    return ";".join([f"{name}:{base}", *overrides])


@given(_VARIANT)
def test_variant_round_trips_or_is_a_usage_error(text):
    rows = variants()
    try:
        name, v = parse_variant(text)
    except UsageError as e:
        _one_line(e)
        return
    base = [p.strip() for p in text.partition(":")[2].split(";") if p.strip()][0]
    assert (v.criterion, v.sampler) == (rows[base].criterion, rows[base].sampler)
    assert name and name == name.strip()
    assert parse_variant(_format_variant(name, base, v.overrides)) == (name, v)


def _format_groups(groups) -> str:
    return "/".join("rest" if tuple(g) == ("rest",) else ",".join(map(str, g)) for g in groups)


_COUNT = st.one_of(st.integers(-2, 45).map(str), st.sampled_from(["rest", "", " ", "x", "٣", "²",
                                                                  "1_0", "9" * 5000, "0x1"]))
_GROUPS = st.one_of(
    st.lists(st.lists(_COUNT, max_size=4).map(",".join), max_size=6).map("/".join),
    st.text(max_size=40))


@given(_GROUPS)
def test_groups_round_trip_or_are_a_usage_error(text):
    try:
        groups = parse_groups(text)
    except UsageError as e:
        _one_line(e)
        return
    assert parse_groups(_format_groups(groups)) == groups


@pytest.fixture(scope="module")
def spaces():
    from efsnas import create_space

    return [create_space("nb201"), create_space("mobilenet")]


@given(_GROUPS)
def test_groups_resolve_against_a_space_or_are_a_usage_error(spaces, text):
    for space in spaces:
        try:
            groups = NonlinearityCountSplit(groups=text).resolve_groups(space)
        except UsageError as e:
            _one_line(e)
            continue
        counts = [c for g in groups for c in g]  # every possible count exactly once
        assert sorted(counts) == sorted(space.possible_counts)


@pytest.mark.parametrize("text", ["sep:", "sep:;", "sep: ; "])
def test_a_variant_without_a_base_is_a_usage_error(text):  # was a ValueError (fuzzing)
    with pytest.raises(UsageError, match="write NAME:BASE;KEY=VALUE"):
        parse_variant(text)


@pytest.mark.parametrize("value", ["2020-13-45", "[" * 5000, "!!float x", "!!int x",
                                   "!!timestamp x", "9" * 5000])
def test_yaml_values_that_broke_the_loader_are_usage_errors(value):
    # were ValueError / RecursionError out of PyYAML's constructors and composer
    with pytest.raises(UsageError, match="not valid YAML") as e:
        parse_override(f"train.seed={value}")
    _one_line(e.value)


def test_a_seed_torch_cannot_take_is_refused():  # 23 digits ended in a traceback in training
    from efsnas.app.config import load_config

    with pytest.raises(UsageError, match="train.seed: Input should be less than"):
        load_config(preset="tiny", overrides=["train.seed=" + "9" * 23])
