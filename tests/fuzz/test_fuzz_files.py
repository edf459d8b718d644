"""Property-based fuzzing of what people write into files: ground-truth JSON (the reader of
`correlate` and `compare --ground-truth`) and config YAML (the config loader and
validate_config). Either a valid object that round-trips (read -> write -> read gives the same)
or the project's own UsageError on one line, never another exception."""

import json
import math
import tempfile
from pathlib import Path

import pytest

hypothesis = pytest.importorskip("hypothesis")
from hypothesis import given  # noqa: E402
from hypothesis import strategies as st  # noqa: E402

from efsnas.app.config import dump_config, load_config, validate_config  # noqa: E402
from efsnas.errors import UsageError  # noqa: E402
from efsnas.evaluate.ranking import load_ground_truth  # noqa: E402

CELL = "|nor_conv_3x3~0|+|nor_conv_3x3~0|avg_pool_3x3~1|+|skip_connect~0|nor_conv_3x3~1|none~2|"
_SCALAR = st.one_of(st.none(), st.booleans(), st.integers(), st.integers(10 ** 300, 10 ** 400),
                    st.floats(), st.text(max_size=10))
_JSON = st.recursive(_SCALAR, lambda kids: st.one_of(
    st.lists(kids, max_size=4), st.dictionaries(st.one_of(st.just(CELL), st.text(max_size=8)),
                                                kids, max_size=4)), max_leaves=12)


def _one_line(e: Exception) -> None:
    assert str(e) and "\n" not in str(e), str(e)


def _same(a: dict, b: dict) -> bool:
    return a.keys() == b.keys() and all(
        (math.isnan(a[k]) and math.isnan(b[k])) or a[k] == b[k] for k in a)


def _read(text: str | bytes) -> dict | None:
    with tempfile.TemporaryDirectory() as d:
        path = Path(d) / "gt.json"
        path.write_bytes(text if isinstance(text, bytes) else text.encode("utf-8", "surrogatepass"))
        try:
            truth = load_ground_truth(path)
        except UsageError as e:
            _one_line(e)
            return None
        assert truth and all(isinstance(v, float) for v in truth.values())
        path.write_text(json.dumps(truth))  # written back and read again: the same mapping
        assert _same(load_ground_truth(path), truth)
        return truth


@given(_JSON)
def test_ground_truth_json_values(value):
    _read(json.dumps(value))


@given(st.one_of(st.dictionaries(st.text(max_size=8), _SCALAR, max_size=4).map(json.dumps)
                 .map(lambda s: s[: len(s) // 2]),  # cut short
                 st.text(max_size=80), st.binary(max_size=80)))
def test_ground_truth_any_text_or_bytes(text):
    _read(text)


# config YAML: section and key names near the schema, values near the types
_SECTIONS = st.sampled_from(["space", "split", "data", "train", "eval", "search", "retrain",
                             "verify", "finalists", "out", "nonsense"])
_FIELDS = st.sampled_from(["name", "C", "N", "options", "groups", "epochs", "seed", "lr",
                           "batch_size", "max_flops", "structure", "width_divisor", "enabled",
                           "k", "heldout", "root", "device", "momentum", "x"])
_YAML_SCALAR = st.one_of(st.none(), st.booleans(), st.integers(-3, 300), st.integers(),
                         st.floats(), st.sampled_from(["nb201", "mobilenet", "tiny", "0,1/2/3",
                                                       "rest", "cpu", "separate", "off", "1e-3"]),
                         st.text(max_size=8))
_CONFIG = st.dictionaries(_SECTIONS, st.one_of(
    _YAML_SCALAR, st.lists(_YAML_SCALAR, max_size=2),
    st.dictionaries(_FIELDS, st.one_of(_YAML_SCALAR, st.dictionaries(_FIELDS, _YAML_SCALAR,
                                                                     max_size=2)), max_size=4)),
    max_size=4)


def _config_round_trips(cfg) -> None:
    with tempfile.TemporaryDirectory() as d:
        path = Path(d) / "config.yaml"
        path.write_text(dump_config(cfg))
        assert load_config(path=str(path)) == cfg


@given(_CONFIG)
def test_config_mappings_validate_and_round_trip_or_are_a_usage_error(data):
    try:
        cfg = validate_config(data)
    except UsageError as e:
        _one_line(e)
        return
    _config_round_trips(cfg)


_YAML_TEXT = st.sampled_from([
    "train: {epochs: 3", "train:\n  epochs: [1\n", "!!python/object/apply:os.system ['true']",
    "train: !!python/name:os.system", "a: &a [*a]", "train: {seed: 2020-13-45}", "- 1\n- 2",
    "---\na: 1\n---\nb: 2", "train: {epochs: .nan}", "train: {lr: .inf}", "\t", "%TAG ! x\n",
    "space: {name: nb201, C: 99999999999999999999999}", "split: {groups: '0,1/2/3'}",
    "train: {epochs: !!float x}", "{" * 3000, "train: {seed: " + "9" * 5000 + "}", "",
    "\x00", "\ufeffspace: {name: nb201}", "out: [1, 2]", "train: 3", "a" * 1000 + ":"])


@given(st.one_of(_YAML_TEXT, st.text(max_size=80),
                 st.tuples(_YAML_TEXT, _YAML_TEXT).map("\n".join)))
def test_config_yaml_text_loads_and_round_trips_or_is_a_usage_error(text):
    with tempfile.TemporaryDirectory() as d:
        path = Path(d) / "config.yaml"
        path.write_text(text, encoding="utf-8", errors="surrogatepass")
        try:
            cfg = load_config(path=str(path))
        except UsageError as e:
            _one_line(e)
            return
    _config_round_trips(cfg)


def test_a_key_with_a_newline_is_one_line():
    with pytest.raises(UsageError) as e:
        validate_config({"train": {"a\nb": 1}})
    _one_line(e.value)
