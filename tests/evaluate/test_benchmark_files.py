"""Official NAS-Bench-201 / NATS-Bench files, written small in their own formats with the
packages' own classes, read back through load_ground_truth and `efsnas correlate`."""

import argparse
import json
import os

import numpy as np
import pytest
from scipy.stats import kendalltau

from efsnas.cli.common import ground_truth_from_args
from efsnas.cli.main import build_parser, main
from efsnas.errors import UsageError
from efsnas.evaluate.ranking import load_ground_truth

EXTRA = 'the benchmark readers are an optional extra: pip install "efsnas[benchmarks]"'

CELLS = [  # a disconnected cell first, as the benchmarks hold them too
    "|none~0|+|none~0|none~1|+|none~0|none~1|none~2|",
    "|nor_conv_3x3~0|+|nor_conv_3x3~0|avg_pool_3x3~1|+|skip_connect~0|nor_conv_3x3~1|skip_connect~2|",
    "|nor_conv_1x1~0|+|none~0|skip_connect~1|+|none~0|none~1|skip_connect~2|",
    "|skip_connect~0|+|nor_conv_1x1~0|nor_conv_3x3~1|+|avg_pool_3x3~0|none~1|nor_conv_3x3~2|",
    "|avg_pool_3x3~0|+|skip_connect~0|none~1|+|nor_conv_3x3~0|nor_conv_1x1~1|none~2|",
]
# each benchmark dataset: the evaluation sets it holds, its accuracy level, its order of CELLS
SETS = {"cifar10-valid": ("x-valid", "ori-test"), "cifar10": ("ori-test",),
        "cifar100": ("x-valid", "x-test", "ori-test"),
        "ImageNet16-120": ("x-valid", "x-test", "ori-test")}
BASE = {"cifar10-valid": 80.0, "cifar10": 90.0, "cifar100": 60.0, "ImageNet16-120": 30.0}
OFFSET = {"train": 9.0, "x-valid": 0.25, "x-test": 0.5, "ori-test": 0.75}
RANK = {"cifar10-valid": [0, 1, 2, 3, 4], "cifar10": [0, 4, 3, 2, 1],
        "cifar100": [0, 2, 4, 1, 3], "ImageNet16-120": [0, 3, 1, 4, 2]}
SEEDS = {777: -0.5, 888: +0.5}  # two trials per record: the reader must give their mean
HP12 = ("cifar10-valid",)  # like NAS-Bench-201 v1.0, whose 12-epoch records hold only this
# (dataset, metric) -> the benchmark's (dataset, evaluation set): the documented reading
COLUMNS = {("cifar10", "test"): ("cifar10", "ori-test"),
           ("cifar10", "valid"): ("cifar10-valid", "x-valid"),
           ("cifar100", "test"): ("cifar100", "x-test"),
           ("cifar100", "valid"): ("cifar100", "x-valid"),
           ("ImageNet16-120", "test"): ("ImageNet16-120", "x-test"),
           ("ImageNet16-120", "valid"): ("ImageNet16-120", "x-valid")}
EPOCHS = 3


def accuracy(hp: str, dataset: str, setname: str, k: int) -> float:
    """Mean over seeds after the last epoch; quarters, so every mean is exact."""
    return BASE[dataset] + OFFSET[setname] + 2 * RANK[dataset][k] - (40 if hp == "12" else 0)


def expected(dataset: str, metric: str, hp: str = "200") -> dict[str, float]:
    bench, setname = COLUMNS[(dataset, metric)]
    return {c: accuracy(hp, bench, setname, k) for k, c in enumerate(CELLS)}


def arch_results(api, k: int, hp: str):
    """One architecture's record for one schedule, built with the package's own classes."""
    ar = api.ArchResults(k, CELLS[k])
    for dataset in HP12 if hp == "12" else SETS:
        for seed, delta in SEEDS.items():
            def curve(setname, dataset=dataset, delta=delta):  # earlier epochs 10 points lower
                last = accuracy(hp, dataset, setname, k) + delta
                return {e: last - 10 * (EPOCHS - 1 - e) for e in range(EPOCHS)}

            rc = api.ResultsCount(dataset, None, curve("train"), dict.fromkeys(range(EPOCHS), 1.0),
                                  0.1, np.float64(1.5),  # a numpy scalar, as in numpy-era files
                                  {"channel": 16, "num_cells": 5, "arch_str": CELLS[k],
                                   "class_num": 10}, seed, EPOCHS, [0.002])
            rc.update_train_info(curve("train"), None, dict.fromkeys(range(EPOCHS), 1.0),
                                 dict.fromkeys(range(EPOCHS), 1.0))
            accs = {f"{s}@{e}": a for s in SETS[dataset] for e, a in curve(s).items()}
            rc.update_eval(accs, dict.fromkeys(accs, 0.5), dict.fromkeys(accs, 0.1))
            ar.update(dataset, seed, rc)
    return ar.state_dict()


@pytest.fixture(scope="module")
def nb201_pth(tmp_path_factory):
    """A NAS-Bench-201 v1.x .pth: torch-saved meta_archs / arch2infos ('less' = 12 epochs,
    'full' = 200) / evaluated_indexes."""
    import torch

    api = pytest.importorskip("nas_201_api", reason=EXTRA)
    path = tmp_path_factory.mktemp("nb201") / "NAS-Bench-201-v1_1-tiny.pth"
    torch.save({"meta_archs": CELLS, "total_archs": len(CELLS),
                "evaluated_indexes": set(range(len(CELLS))),
                "arch2infos": {k: {"less": arch_results(api, k, "12"),
                                   "full": arch_results(api, k, "200")}
                               for k in range(len(CELLS))}}, path)
    return path


def _nats_records(nats, k: int) -> dict:
    return {"12": arch_results(nats, k, "12"), "200": arch_results(nats, k, "200")}


@pytest.fixture(scope="module")
def nats_folder(tmp_path_factory):
    """A NATS-Bench topology folder (the -simple form): meta.pickle.pbz2 and one
    <index:06d>.pickle.pbz2 per architecture, each a dict hp -> ArchResults state."""
    nats = pytest.importorskip("nats_bench", reason=EXTRA)
    folder = tmp_path_factory.mktemp("nats") / "NATS-tss-v1_0-3ffb9-simple"
    folder.mkdir()
    nats.pickle_save({"meta_archs": CELLS}, folder / "meta.pickle")  # adds .pbz2
    for k in range(len(CELLS)):
        nats.pickle_save(_nats_records(nats, k), folder / f"{k:06d}.pickle")
    return folder


@pytest.fixture(scope="module")
def nats_archive(tmp_path_factory):
    """The single-file NATS-Bench topology archive, NATS-tss-v1_0-3ffb9.pickle.pbz2."""
    nats = pytest.importorskip("nats_bench", reason=EXTRA)
    path = tmp_path_factory.mktemp("nats1") / "NATS-tss-v1_0-3ffb9.pickle"
    nats.pickle_save({"meta_archs": CELLS, "evaluated_indexes": set(range(len(CELLS))),
                      "arch2infos": {k: _nats_records(nats, k) for k in range(len(CELLS))}},
                     path)
    return path.with_name(path.name + ".pbz2")


@pytest.fixture(params=["nb201_pth", "nats_folder", "nats_archive"])
def official(request):
    return request.getfixturevalue(request.param)


@pytest.mark.parametrize("dataset,metric", list(COLUMNS))
def test_every_dataset_and_metric(official, dataset, metric):
    assert load_ground_truth(str(official), dataset=dataset, metric=metric) == \
        expected(dataset, metric)


def test_defaults_and_the_12_epoch_schedule(official):
    before = dict(os.environ)
    assert load_ground_truth(official) == expected("cifar10", "test")  # 200 epochs
    assert dict(os.environ) == before  # torch.load's switch is put back
    assert load_ground_truth(official, dataset="cifar10", metric="valid", hp="12") == \
        expected("cifar10", "valid", hp="12")
    with pytest.raises(UsageError, match=r"no cifar100 results at hp=12 for architecture 0 "):
        load_ground_truth(official, dataset="cifar100", hp="12")


def test_unknown_names_are_refused_with_the_valid_ones(nb201_pth, tmp_path):
    for kw, msg in (({"dataset": "cifar1000"}, "choose from cifar10, cifar100, ImageNet16-120"),
                    ({"metric": "train"}, "choose from test, valid"),
                    ({"hp": "90"}, "choose from 12, 200")):
        with pytest.raises(UsageError, match=msg):
            load_ground_truth(nb201_pth, **kw)
    gt = tmp_path / "gt.json"
    gt.write_text(json.dumps({CELLS[1]: 93.0}))
    assert load_ground_truth(gt) == {CELLS[1]: 93.0}
    with pytest.raises(UsageError, match="dataset=cifar100 selects a column .* JSON mapping"):
        load_ground_truth(gt, dataset="cifar100")


def test_files_the_packages_cannot_read(tmp_path):
    pytest.importorskip("nas_201_api", reason=EXTRA)
    pytest.importorskip("nats_bench", reason=EXTRA)
    bad = tmp_path / "NAS-Bench-201-v1_1-broken.pth"
    bad.write_bytes(b"not a torch file")
    with pytest.raises(UsageError, match="could not read .* with nas_201_api .*NAS-Bench-201"):
        load_ground_truth(bad)
    bad = tmp_path / "NATS-tss-v1_0-broken.pickle.pbz2"
    bad.write_bytes(b"not bz2")
    with pytest.raises(UsageError, match="could not read .* with nats_bench .*NATS-Bench"):
        load_ground_truth(bad)
    folder = tmp_path / "NAS-Bench-201-v1_1-archive"
    folder.mkdir()
    with pytest.raises(UsageError, match="without meta.pickle.pbz2.*pass its .pth file"):
        load_ground_truth(folder)
    sss = tmp_path / "NATS-sss-v1_0-50262.pickle.pbz2"
    sss.write_bytes(b"")
    with pytest.raises(UsageError, match=r"size \(sss\) file"):
        load_ground_truth(sss)


def test_correlate_reads_the_chosen_column(official, tmp_path, capsys):
    # predictions in cifar100-valid order: tau 1 there, not on cifar10 test
    pred = {c: RANK["cifar100"][k] + 1.5 for k, c in enumerate(CELLS) if k}  # no disconnected
    p = tmp_path / "scores.json"
    p.write_text(json.dumps({"scores": pred}))
    argv = ["correlate", str(p), str(official), "--json"]
    assert main([*argv, "--dataset", "cifar100", "--metric", "valid"]) == 0
    stats = json.loads(capsys.readouterr().out)
    truth = expected("cifar100", "valid")
    assert stats["counts"]["shared"] == 4 and stats["counts"]["only_in_truth"] == 1
    assert stats["kendall_tau"]["all"]["tau"] == pytest.approx(1.0)
    assert stats["best_predicted"]["cell"] == CELLS[2]
    assert stats["best_predicted"]["true_accuracy"] == truth[CELLS[2]] == 68.25
    # the disconnected cell scored at chance on 100 classes (1.0), below every prediction
    assert stats["kendall_tau"]["all_with_unscorable"] == {
        "tau": pytest.approx(1.0), "p_value": pytest.approx(kendalltau(range(5), range(5))[1]),
        "n": 5,
        "reason": None}
    assert main(argv) == 0  # the default column, cifar10 test, ranks them otherwise
    stats = json.loads(capsys.readouterr().out)
    x = [pred[c] for c in CELLS[1:]]
    y = [expected("cifar10", "test")[c] for c in CELLS[1:]]
    assert stats["kendall_tau"]["all"]["tau"] == pytest.approx(kendalltau(x, y)[0]) != 1.0


def test_flags_on_every_command_that_reads_a_ground_truth(tmp_path, capsys):
    parser = build_parser()
    for argv in (["correlate", "P", "GT"], ["run", "--ground-truth", "GT"],
                 ["search", "RUN", "--ground-truth", "GT"], ["compare", "--ground-truth", "GT"]):
        args = parser.parse_args([*argv, "--dataset", "ImageNet16-120", "--metric", "valid"])
        assert (args.ground_truth, args.dataset, args.metric) == ("GT", "ImageNet16-120", "valid")
    with pytest.raises(UsageError, match="give --ground-truth FILE too"):
        ground_truth_from_args(argparse.Namespace(ground_truth=None, dataset="cifar100",
                                                  metric=None))
    gt = tmp_path / "gt.json"
    gt.write_text(json.dumps({CELLS[1]: 93.0}))
    assert main(["correlate", str(gt), str(gt), "--metric", "valid"]) == 2
    err = capsys.readouterr().err.strip()
    assert "metric=valid selects a column" in err and "\n" not in err


class _Payload:
    """Creates `marker` if unpickled: what a stranger's benchmark file could carry."""

    def __init__(self, marker):
        self.marker = str(marker)

    def __reduce__(self):
        return (os.system, (f"touch {self.marker}",))


@pytest.mark.parametrize("form", ["pth", "archive", "folder_meta"])
@pytest.mark.parametrize("command", ["correlate", "compare"])
def test_hostile_benchmark_files_run_nothing(form, command, tmp_path, capsys):
    import torch

    nats = pytest.importorskip("nats_bench", reason=EXTRA)
    pytest.importorskip("nas_201_api", reason=EXTRA)
    marker = tmp_path / "marker"
    payload = {"meta_archs": CELLS, "x": _Payload(marker)}
    if form == "pth":
        path = tmp_path / "NAS-Bench-201-v1_1-evil.pth"
        torch.save(payload, path)
    elif form == "archive":
        nats.pickle_save(payload, tmp_path / "NATS-tss-v1_0-3ffb9-simple.pickle")
        path = tmp_path / "NATS-tss-v1_0-3ffb9-simple.pickle.pbz2"
    else:
        path = tmp_path / "NATS-tss-v1_0-3ffb9-simple"
        path.mkdir()
        nats.pickle_save(payload, path / "meta.pickle")
    scores = tmp_path / "scores.json"
    scores.write_text(json.dumps({"scores": {CELLS[1]: 1.0}}))
    before = sorted(p.name for p in tmp_path.rglob("*"))
    argv = (["correlate", str(scores), str(path)] if command == "correlate" else
            ["compare", "--ground-truth", str(path), "--out", str(tmp_path / "cmp")])
    assert main(argv) == 2
    err = capsys.readouterr().err.strip()
    assert "\n" not in err and "Traceback" not in err
    assert "refusing to load" in err and "system" in err and path.name in err
    assert not marker.exists()
    assert sorted(p.name for p in tmp_path.rglob("*")) == before  # nothing written
