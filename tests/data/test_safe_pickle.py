import builtins
import io
import os
import pickle
import subprocess

import numpy as np
import pytest

from efsnas.data.safe_pickle import get_key, loads, safe_load
from efsnas.errors import DataError


class _Hostile:
    """Unpickling this calls `call(*args)`: what a doctored dataset file would do."""

    def __init__(self, call, args):
        self.call, self.args = call, args

    def __reduce__(self):
        return self.call, self.args


@pytest.mark.parametrize("protocol", [2, 4, 5])
def test_os_system_pickle_is_refused_and_never_runs(tmp_path, protocol):
    marker = tmp_path / "pwned"
    path = tmp_path / "data_batch_1"
    payload = {b"data": np.zeros((1, 4), np.uint8), b"labels": [0],
               b"x": _Hostile(os.system, (f"touch {marker}",))}
    path.write_bytes(pickle.dumps(payload, protocol=protocol))
    with pytest.raises(DataError, match=r"refusing to load (posix|nt)\.system from .*data_batch_1"):
        safe_load(path)
    assert not marker.exists()


@pytest.mark.parametrize("call, args", [
    (builtins.eval, ("1 + 1",)),
    (builtins.exec, ("import os",)),
    (builtins.getattr, ("text", "upper")),
    (subprocess.call, (["true"],)),
    (np.load, ("/nonexistent",)),
    (io.open, ("/nonexistent",)),
])
def test_any_callable_other_than_array_rebuilding_is_refused(call, args):
    blob = pickle.dumps([1, _Hostile(call, args)], protocol=2)
    with pytest.raises(DataError, match="may hold only arrays, lists, dicts, numbers and strings"):
        loads(blob)


@pytest.mark.parametrize("protocol", [2, 3, 4, 5])
def test_plain_data_round_trips(protocol):
    obj = {b"data": np.arange(12, dtype=np.uint8).reshape(3, 4), "labels": [1, 2, 3],
           "mean": np.float32(0.5), "f": np.linspace(0, 1, 5), "nested": {"s": "x", "t": (1, 2.5)},
           "set": {1, 2}, "raw": b"\x00\xff"}
    out = loads(pickle.dumps(obj, protocol=protocol))
    assert out[b"data"].dtype == np.uint8
    np.testing.assert_array_equal(out[b"data"], obj[b"data"])
    np.testing.assert_allclose(out["f"], obj["f"])
    assert out["labels"] == [1, 2, 3] and out["nested"] == obj["nested"]
    assert out["mean"] == np.float32(0.5) and out["set"] == {1, 2} and out["raw"] == b"\x00\xff"


def test_old_numpy_core_module_name_is_accepted():
    # files written by numpy < 2 (all published CIFAR pickles) name numpy.core.multiarray
    blob = pickle.dumps({"data": np.arange(4, dtype=np.uint8)}, protocol=2)
    old = blob.replace(b"numpy._core.multiarray", b"numpy.core.multiarray")
    assert b"numpy.core.multiarray" in old
    np.testing.assert_array_equal(loads(old)["data"], np.arange(4))


def _short_str(b: bytes) -> bytes:
    return b"U" + bytes([len(b)]) + b  # SHORT_BINSTRING: a Python 2 str


def test_python2_pickle_with_str_array_data_loads():
    # what cPickle wrote for the original CIFAR files: numpy.core names, the array's bytes as a
    # Python 2 str (decoded as latin1), str keys
    raw = bytes([0, 1, 128, 255])
    arr = (b"cnumpy.core.multiarray\n_reconstruct\ncnumpy\nndarray\nK\x00\x85"
           + _short_str(b"b") + b"\x87R(K\x01K\x02K\x02\x86cnumpy\ndtype\n" + _short_str(b"u1")
           + b"K\x00K\x01\x87R(K\x03" + _short_str(b"|")
           + b"NNNJ\xff\xff\xff\xffJ\xff\xff\xff\xffK\x00tb\x89" + _short_str(raw) + b"tb")
    blob = (b"\x80\x02}(" + _short_str(b"data") + arr + _short_str(b"labels")
            + b"]K\x07au.")
    d = loads(blob)
    assert d["labels"] == [7] and d["data"].dtype == np.uint8
    assert d["data"].tolist() == [[0, 1], [128, 255]]


def test_truncated_or_garbage_file_gives_data_error(tmp_path):
    blob = pickle.dumps({"data": np.zeros((10, 10), np.uint8)}, protocol=2)
    (tmp_path / "cut").write_bytes(blob[: len(blob) // 2])
    with pytest.raises(DataError, match="cut is not a readable dataset pickle"):
        safe_load(tmp_path / "cut")
    with pytest.raises(DataError, match="cannot read"):
        safe_load(tmp_path / "absent")


def test_get_key_accepts_str_and_bytes_keys():
    assert get_key({b"labels": 1}, "labels", where="f") == 1
    assert get_key({"labels": 2}, "labels", where="f") == 2
    with pytest.raises(DataError, match="f has no 'labels' entry"):
        get_key({"fine_labels": 3}, "labels", where="f")
    with pytest.raises(DataError, match="should hold a dict"):
        get_key([1], "labels", where="f")
