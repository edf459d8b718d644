"""A hostile-file test for every reader of user-supplied files: a payload that would create a
marker file if executed, a truncated file, wrong types, an empty file and a file claiming a huge
size. Through the CLI: exit 2, one line on stderr; library readers: their own error
(DataError, a UsageError). Never a marker file, never a changed file."""

import gzip
import hashlib
import json
import os
import pickle
import shutil
import struct
import zlib
from pathlib import Path

import numpy as np
import pytest

from efsnas.cli.main import main
from efsnas.errors import UsageError

CELL = "|nor_conv_3x3~0|+|skip_connect~0|nor_conv_1x1~1|+|skip_connect~0|none~1|avg_pool_3x3~2|"
CELL2 = "|none~0|+|none~0|none~1|+|skip_connect~0|none~1|none~2|"
NO_CODE = "n/a: JSON carries no code"


class _Payload:
    """Creates `marker` if unpickled."""

    def __init__(self, marker):
        self.marker = str(marker)

    def __reduce__(self):
        return (os.system, (f"touch {self.marker}",))


def _yaml_payload(marker) -> str:
    return f"train: !!python/object/apply:os.system ['touch {marker}']\n"


def _snapshot(root: Path) -> dict:  # as tests/cli/test_bad_input.py
    return {str(p.relative_to(root)): hashlib.sha1(p.read_bytes()).hexdigest()
            for p in sorted(root.rglob("*")) if p.is_file() and p.name != ".lock"}


@pytest.fixture(scope="module")
def ws(tmp_path_factory):
    """A trained tiny run, predictions and a ground truth for it."""
    root = tmp_path_factory.mktemp("hostile")
    assert main(["run", "--preset", "tiny", "--out", str(root / "run"), "--set",
                 "verify.enabled=false"]) == 0
    (root / "pred.json").write_text(json.dumps({CELL: 50.0, CELL2: 40.0}))
    (root / "gt.json").write_text(json.dumps({CELL: 90.0, CELL2: 80.0}))
    return root


def _cli(ws, argv, capsys, *, ok=(2,)):
    before = _snapshot(ws)
    code = main([str(a) for a in argv])
    err = capsys.readouterr().err.strip()
    assert code in ok, err
    if code == 2:
        assert err.count("\n") == 0 and "Traceback" not in err and len(err) < 800, err
    assert not (ws / "marker").exists()
    after = _snapshot(ws)
    assert {k: v for k, v in after.items() if k in before} == before  # nothing changed
    for k in set(after) - set(before):  # new files only where the command writes its output
        assert k.startswith(("x", "run/")) and not k.startswith("run/result"), k
    return err


# ---- JSON: ground truth, scores, cell lists, result.json --------------------------------------
JSON_CASES = [  # (id, text, exit codes allowed)
    pytest.param(None, (2,), id="payload-" + NO_CODE, marks=pytest.mark.skip(reason=NO_CODE)),
    pytest.param(json.dumps({CELL: 90.0, CELL2: 80.0})[:25], (2,), id="truncated"),
    pytest.param(json.dumps([CELL, CELL2]), (2,), id="list-for-dict"),
    pytest.param(json.dumps({CELL: "90", CELL2: 80}), (2,), id="string-for-number"),
    pytest.param(json.dumps({CELL: [90], CELL2: {"a": 1}}), (2,), id="list-dict-for-number"),
    pytest.param(json.dumps({CELL: None, CELL2: True}), (2,), id="null-bool-for-number"),
    pytest.param(f'{{"{CELL}": NaN, "{CELL2}": Infinity}}', (0, 2), id="nan-inf-left-out"),
    pytest.param("", (2,), id="empty"),
    pytest.param(json.dumps({CELL: 10 ** 400, CELL2: 1.0}), (2,), id="huge-int"),
    pytest.param("[" * 100_000 + "]" * 100_000, (2,), id="huge-nesting"),
]


@pytest.mark.parametrize("text,ok", JSON_CASES)
@pytest.mark.parametrize("which", ["ground-truth", "scores"])
def test_correlate_json(ws, tmp_path, capsys, which, text, ok):
    bad = ws / f"x-{which}-{tmp_path.name}.json"
    bad.write_text(text)
    argv = ["correlate", ws / "pred.json", bad] if which == "ground-truth" else \
        ["correlate", bad, ws / "gt.json"]
    _cli(ws, argv, capsys, ok=ok)


CELLS_CASES = [
    pytest.param(None, id="payload-" + NO_CODE, marks=pytest.mark.skip(reason=NO_CODE)),
    pytest.param(json.dumps([CELL, CELL2])[:30], id="truncated"),
    pytest.param(json.dumps([1, 2]), id="numbers-for-cells"),
    pytest.param(json.dumps([[CELL]]), id="list-in-list"),
    pytest.param(json.dumps("|none~0|"), id="string-for-list"),
    pytest.param(json.dumps([CELL.replace("~0", "~٣", 1)]), id="non-ascii-digit"),
    pytest.param(json.dumps(["k3e6-" * 20 + "k3e6"]), id="mobilenet-cell-in-nb201"),
    pytest.param("NaN", id="nan"),
    pytest.param("", id="empty"),
    pytest.param("[" * 100_000 + "]" * 100_000, id="huge-nesting"),
]


@pytest.mark.parametrize("text", CELLS_CASES)
def test_evaluate_cells(ws, tmp_path, capsys, text):
    bad = ws / f"x-cells-{tmp_path.name}.json"
    bad.write_text(text)
    _cli(ws, ["evaluate", ws / "run", "--cells", bad, "--out", ws / f"x-{tmp_path.name}.out"],
         capsys)


def test_compare_cells(ws, tmp_path, capsys):
    bad = ws / "x-compare-cells.json"
    bad.write_text(json.dumps([1, CELL]))
    _cli(ws, ["compare", "--preset", "tiny", "--cells", bad, "--out", ws / "x-cmp", "--seeds",
              "1", "--criteria", "oneshot"], capsys)


# ---- run folders: config.yaml, checkpoint.pt, result.json ---------------------------------------
def _torch_save(obj) -> bytes:
    import io

    import torch

    buf = io.BytesIO()
    torch.save(obj, buf)
    return buf.getvalue()


def _checkpoint(marker, case: str) -> bytes:
    import torch

    good = torch.load(marker.parent / "run" / "checkpoint.pt", weights_only=True)
    if case == "payload":
        return _torch_save({**good, "x": _Payload(marker)})
    if case == "truncated":
        raw = _torch_save(good)
        return raw[: len(raw) // 2]
    if case == "list-for-dict":
        return _torch_save([good])
    if case == "supernets-list":
        return _torch_save({**good, "supernets": [1, 2]})
    if case == "identity-garbage":
        return _torch_save({**good, "identity": "{not json"})
    if case == "identity-number":
        return _torch_save({**good, "identity": 7})
    if case == "huge-identity":
        return _torch_save({**good, "identity": "9" * 5000})
    return b""


CHECKPOINT_CASES = ["payload", "truncated", "list-for-dict", "supernets-list", "identity-garbage",
                    "identity-number", "empty", "huge-identity"]
CONFIG_CASES = {
    "payload": None, "truncated": "train:\n  epochs: [1\n", "list-for-dict": "- 1\n- 2\n",
    "string-for-number": "train: {epochs: three}\n", "nan": "train: {lr: .nan}\n",
    "inf": "train: {epochs: .inf}\n", "empty": "", "huge": "train: {seed: " + "9" * 5000 + "}\n"}
RESULT_CASES = {
    "truncated": '{"best": {"cell": "|none', "list-for-dict": json.dumps([{"cell": CELL}]),
    "no-cell": json.dumps({"best": {"score": 1}}), "null-best": json.dumps({"best": None}),
    "number-for-cell": json.dumps({"best": {"cell": 3}}), "nan": "NaN", "empty": "",
    "huge": json.dumps({"best": {"cell": 10 ** 400}})}


def _copy_run(ws, tag: str) -> Path:
    run = ws / f"x-run-{tag}"
    shutil.rmtree(run, ignore_errors=True)
    shutil.copytree(ws / "run", run)
    return run


@pytest.mark.parametrize("case", CHECKPOINT_CASES)
def test_run_folder_checkpoint(ws, capsys, case):
    run = _copy_run(ws, "ckpt")
    (run / "checkpoint.pt").write_bytes(_checkpoint(ws / "marker", case))
    _cli(ws, ["evaluate", run, "--sample", "2", "--out", ws / "x-ckpt.json"], capsys)


@pytest.mark.parametrize("case", list(CONFIG_CASES))
@pytest.mark.parametrize("command", ["evaluate", "retrain", "search"])
def test_run_folder_config(ws, capsys, case, command):
    run = _copy_run(ws, "cfg")
    text = CONFIG_CASES[case] if case != "payload" else _yaml_payload(ws / "marker")
    (run / "config.yaml").write_text(text)
    out = ["--out", ws / "x-cfg-out"]
    extra = {"evaluate": ["--sample", "2", *out], "retrain": out,
             "search": ["--name", "hostile"]}[command]  # search writes into the run folder
    _cli(ws, [command, run, *extra], capsys)


@pytest.mark.parametrize("case", [pytest.param("payload", marks=pytest.mark.skip(reason=NO_CODE)),
                                  *RESULT_CASES])
def test_run_folder_result_for_retrain(ws, capsys, case):
    run = _copy_run(ws, "result")
    (run / "result.json").write_text(RESULT_CASES[case])
    _cli(ws, ["retrain", run, "--out", ws / "x-result-out"], capsys)


@pytest.mark.parametrize("case", list(CONFIG_CASES))
def test_config_file(ws, capsys, case):
    from efsnas.app.config import load_config

    path = ws / "x-config.yaml"
    path.write_text(CONFIG_CASES[case] if case != "payload" else _yaml_payload(ws / "marker"))
    if case == "empty":  # no settings: the defaults, a valid config
        assert load_config(path=str(path)).train.epochs > 0
        return
    _cli(ws, ["run", "--config", path, "--out", ws / "x-config-run"], capsys)


# ---- benchmark files: NB201 .pth, NATS archives (the payloads: tests/evaluate) --------------------
@pytest.mark.parametrize("case", ["truncated", "list-for-dict", "empty", "huge"])
@pytest.mark.parametrize("form", ["pth", "archive"])
def test_benchmark_files(ws, tmp_path, capsys, form, case):
    import bz2

    pytest.importorskip("nas_201_api")
    pytest.importorskip("nats_bench")
    obj = {"meta_archs": [CELL], "arch2infos": {0: {}}, "evaluated_indexes": {0}}
    if case == "list-for-dict":
        obj = [CELL]
    if case == "huge":
        obj = {"meta_archs": [CELL] * 2, "arch2infos": {0: {"full": {"x": 10 ** 400}}},
               "total_archs": 2 ** 40, "evaluated_indexes": set(range(2))}
    raw = _torch_save(obj) if form == "pth" else bz2.compress(pickle.dumps(obj, protocol=4))
    if case == "truncated":
        raw = raw[: len(raw) // 2]
    if case == "empty":
        raw = b""
    name = "NAS-Bench-201-v1_1-x.pth" if form == "pth" else "NATS-tss-v1_0-x.pickle.pbz2"
    path = ws / f"x-{tmp_path.name}-{name}"
    path.write_bytes(raw)
    _cli(ws, ["correlate", ws / "pred.json", path], capsys)


# ---- data sets: CIFAR / ImageNet16 pickles, IDX files, image folders ------------------------------
def _cifar_batch(n=2, over=None) -> dict:
    d = {b"data": np.zeros((n, 3072), np.uint8), b"labels": [0] * n}
    d.update(over or {})
    return d


CIFAR_CASES = {
    "payload": None,
    "truncated": pickle.dumps(_cifar_batch(), protocol=2)[:200],
    "list-for-dict": pickle.dumps([_cifar_batch()], protocol=2),
    "string-for-array": pickle.dumps(_cifar_batch(over={b"data": "pixels"}), protocol=2),
    "strings-for-labels": pickle.dumps(_cifar_batch(over={b"labels": ["0", "1"]}), protocol=2),
    "nan-pixels": pickle.dumps(_cifar_batch(over={b"data": np.full((2, 3072), np.nan)}), protocol=2),
    "inf-labels": pickle.dumps(_cifar_batch(over={b"labels": [np.inf, 0]}), protocol=2),
    "ragged-rows": pickle.dumps(_cifar_batch(over={b"data": [[0] * 3072, [0]]}), protocol=2),
    "no-images-int64": pickle.dumps(_cifar_batch(0, over={b"data": np.zeros((0, 3072), np.int64)}),
                                    protocol=2),
    "empty": b"",
    # BINBYTES8 claiming 2**62 bytes, and an array header claiming 2**31 images
    "huge-bytes": b"\x80\x04\x8e" + (2 ** 62).to_bytes(8, "little") + b"xx",
    "huge-array": pickle.dumps(_cifar_batch(), protocol=2).replace(
        b"K\x02M\x00\x0c\x86", b"J\xff\xff\xff\x7fM\x00\x0c\x86"),
}


@pytest.mark.parametrize("case", list(CIFAR_CASES))
@pytest.mark.parametrize("dataset", ["cifar10", "imagenet16"])
def test_dataset_pickles(tmp_path, case, dataset):
    from efsnas.data.formats import read_cifar10, read_imagenet16

    marker = tmp_path / "marker"
    names = ([f"data_batch_{i}" for i in range(1, 6)] + ["test_batch"] if dataset == "cifar10"
             else [f"train_data_batch_{i}" for i in range(1, 11)] + ["val_data"])
    good = _cifar_batch() if dataset == "cifar10" else {
        "data": np.zeros((2, 768), np.uint8), "labels": [1, 2]}
    for name in names:
        (tmp_path / name).write_bytes(pickle.dumps(good, protocol=2))
    bad = CIFAR_CASES[case]
    if case == "payload":
        bad = pickle.dumps({**good, "x": _Payload(marker)}, protocol=2)
    (tmp_path / names[0]).write_bytes(bad)
    before = _snapshot(tmp_path)
    reader = read_cifar10 if dataset == "cifar10" else read_imagenet16
    with pytest.raises(UsageError) as e:
        reader(tmp_path)
    assert "\n" not in str(e.value)
    assert not marker.exists() and _snapshot(tmp_path) == before


def _idx(dims, data: bytes, ndim=None, dtype=0x08) -> bytes:
    return bytes([0, 0, dtype, ndim or len(dims)]) + b"".join(struct.pack(">I", d) for d in dims) \
        + data


IDX_CASES = {
    "truncated": _idx([2, 28, 28], b"\x00" * 100),
    "float-type": _idx([2, 28, 28], b"\x00" * 2 * 28 * 28 * 4, dtype=0x0D),
    "wrong-ndim": _idx([2, 784], b"\x00" * 2 * 784),
    "empty": b"",
    "huge-count": _idx([2 ** 31, 28, 28], b"\x00" * 784),
    "huge-overflowing": _idx([2 ** 22, 2 ** 21, 2 ** 21], b""),  # the product wraps to 0 in int64
    "gzip-truncated": gzip.compress(_idx([2, 28, 28], b"\x00" * 1568))[:30],
}


@pytest.mark.parametrize("case", [pytest.param("payload", marks=pytest.mark.skip(
    reason="n/a: IDX files are raw bytes, nothing is unpickled")), *IDX_CASES])
def test_idx_files(tmp_path, case):
    from efsnas.data.formats import FASHION_MNIST_STATS, read_idx_dataset

    for part in ("train", "t10k"):
        (tmp_path / f"{part}-images-idx3-ubyte").write_bytes(_idx([2, 28, 28], b"\x00" * 1568))
        (tmp_path / f"{part}-labels-idx1-ubyte").write_bytes(_idx([2], b"\x00\x01"))
    target = tmp_path / "train-images-idx3-ubyte"
    if case == "gzip-truncated":
        target.unlink()
        target = tmp_path / "train-images-idx3-ubyte.gz"
    target.write_bytes(IDX_CASES[case])
    before = _snapshot(tmp_path)
    with pytest.raises(UsageError) as e:
        read_idx_dataset(tmp_path, title="Fashion-MNIST", stats=FASHION_MNIST_STATS)
    assert "\n" not in str(e.value) and _snapshot(tmp_path) == before


def _png(width: int, height: int, data: bytes | None = None) -> bytes:
    def chunk(kind, body):
        return struct.pack(">I", len(body)) + kind + body + struct.pack(
            ">I", zlib.crc32(kind + body) & 0xFFFFFFFF)

    raw = data if data is not None else zlib.compress(b"\x00" + b"\x00" * width * 3)
    return (b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", width, height, 8, 2, 0,
                                                              0, 0))
            + chunk(b"IDAT", raw) + chunk(b"IEND", b""))


IMAGE_CASES = {
    "payload": None,  # a pickle named .png
    "truncated": _png(4, 4, zlib.compress(b"\x00" * 13 * 4))[:60],
    "text-for-image": b"not an image",
    "empty": b"",
    "huge": _png(100_000, 100_000),
}


@pytest.mark.parametrize("case", list(IMAGE_CASES))
def test_image_folder(tmp_path, case):
    from efsnas.data.folder import load_image_folder

    marker = tmp_path / "marker"
    root = tmp_path / "images"
    (root / "cat").mkdir(parents=True)
    (root / "dog").mkdir()
    good = _png(4, 4, zlib.compress((b"\x00" + b"\x80" * 12) * 4))
    (root / "cat" / "a.png").write_bytes(good)
    bad = IMAGE_CASES[case] if case != "payload" else pickle.dumps(_Payload(marker))
    (root / "dog" / "b.png").write_bytes(bad)
    before = _snapshot(tmp_path)
    try:
        load_image_folder(root, image_size=4)
        assert case == "truncated"  # Pillow may decode what is there of a cut image
    except UsageError as e:
        assert "\n" not in str(e)
    assert not marker.exists() and _snapshot(tmp_path) == before
