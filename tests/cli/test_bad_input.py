"""Bad input and ordinary faults, each in its own process as a user would meet them: exit code
2, one short line on stderr, no traceback, and no existing file changed."""

import gzip
import hashlib
import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from efsnas.cli.main import main

CELL = "|nor_conv_3x3~0|+|skip_connect~0|nor_conv_1x1~1|+|skip_connect~0|none~1|avg_pool_3x3~2|"


@pytest.fixture(scope="module")
def ws(tmp_path_factory):
    """A workspace: a trained tiny run, predictions and a ground truth for it, and odd files."""
    root = tmp_path_factory.mktemp("bad")
    run = root / "run"
    assert main(["run", "--preset", "tiny", "--out", str(run), "--set", "verify.enabled=false"]) \
        == 0
    (root / "pred.json").write_text(json.dumps({CELL: 50.0, "|none~0|+|none~0|none~1|+|"
                                                "skip_connect~0|none~1|none~2|": 40.0}))
    (root / "gt.json").write_text(json.dumps({CELL: 90.0, "|none~0|+|none~0|none~1|+|"
                                              "skip_connect~0|none~1|none~2|": 80.0}))
    (root / "binary.json").write_bytes(b"\xff\xfe\x00binary")
    (root / "keep.json").write_text('{"keep": 1}')
    (root / "adir").mkdir()
    # a copy of the run trained with another seed's config: its checkpoint is foreign
    seed = root / "other-seed"
    shutil.copytree(run, seed)
    cfg = (seed / "config.yaml").read_text().replace("seed: 0", "seed: 5", 1)
    (seed / "config.yaml").write_text(cfg)
    # ... and with another width: another shape of every weight
    wide = root / "other-width"
    shutil.copytree(run, wide)
    (wide / "config.yaml").write_text((wide / "config.yaml").read_text().replace("C: 8", "C: 12"))
    # a run folder whose config.yaml was cut short by a kill
    cut = root / "cut"
    shutil.copytree(run, cut)
    text = (cut / "config.yaml").read_text()
    (cut / "config.yaml").write_text(text[: text.index("train:") + 12])
    # Fashion-MNIST files whose .gz is damaged
    fm = root / "fmnist"
    fm.mkdir()
    for name in ("train-images-idx3-ubyte", "train-labels-idx1-ubyte", "t10k-images-idx3-ubyte",
                 "t10k-labels-idx1-ubyte"):
        (fm / f"{name}.gz").write_bytes(gzip.compress(b"\x00" * 64)[:20])
    return root


CASES = [  # (id, argv with placeholders, text the message must hold)
    ("no-cuda", ["run", "--preset", "tiny", "--device", "cuda", "--out", "{root}/x"],
     "CUDA is not available"),
    ("space-option", ["space", "mobilenet", "--C", "8"], "no option 'C'"),
    ("space-option-form", ["space", "mobilenet", "--option", "width_mult"], "bad --option"),
    ("unclosed-yaml", ["run", "--preset", "tiny", "--set", "train.epochs=[1",
                       "--out", "{root}/x"], "not valid YAML"),
    ("sample-negative", ["evaluate", "{root}/run", "--sample", "-1"], "at least 1"),
    ("sample-zero", ["evaluate", "{root}/run", "--sample", "0"], "at least 1"),
    ("seeds-zero", ["retrain", "{root}/run", "--seeds", "0"], "at least 1"),
    ("plot-over-input", ["correlate", "{root}/pred.json", "{root}/gt.json", "--plot",
                         "{root}/gt.json"], "one of the inputs"),
    ("plot-over-file", ["correlate", "{root}/pred.json", "{root}/gt.json", "--plot",
                        "{root}/keep.json"], "--force"),
    ("scores-over-config", ["evaluate", "{root}/run", "--sample", "2", "--out",
                            "{root}/run/config.yaml"], "not an efsnas scores file"),
    ("scores-into-dir", ["evaluate", "{root}/run", "--sample", "2", "--out", "{root}/adir"],
     "adir"),
    ("search-name-result", ["search", "{root}/run", "--name", "result"], "--name"),
    ("search-name-path", ["search", "{root}/run", "--name", "../../x"], "--name"),
    ("groups-out-existing", ["space", "nb201", "--groups-out", "{root}/keep.json"], "--force"),
    ("ground-truth-shrunk", ["groundtruth", "build", "{root}/keep.json", "--preset", "tiny"],
     "--force"),
    ("ground-truth-flops", ["groundtruth", "build", "{root}/new.json", "--preset", "tiny",
                            "--max-flops", "-1"], "--max-flops must be a positive"),
    ("binary-config", ["run", "--config", "{root}/binary.json", "--out", "{root}/x"],
     "not UTF-8"),
    ("binary-ground-truth", ["correlate", "{root}/pred.json", "{root}/binary.json"],
     "not a text JSON"),
    ("cut-config", ["evaluate", "{root}/cut", "--sample", "2"], "config"),
    ("foreign-seed", ["evaluate", "{root}/other-seed", "--sample", "2"], "train.seed"),
    ("foreign-width", ["search", "{root}/other-width"], "another configuration"),
    ("damaged-gz", ["run", "--preset", "tiny", "--data", "fashion-mnist", "--data-root",
                    "{root}/fmnist", "--out", "{root}/x"], "cannot read IDX"),
    ("out-is-a-file", ["train", "--preset", "tiny", "--out", "{root}/keep.json"], "keep.json"),
    ("long-input", ["space", "nb201", "--draw", "|" + "x" * 5000 + "|", "--out",
                    "{root}/c.png"], "expected 3 node groups"),
]


def _snapshot(root: Path) -> dict:
    return {str(p.relative_to(root)): hashlib.sha1(p.read_bytes()).hexdigest()
            for p in sorted(root.rglob("*")) if p.is_file() and p.name != ".lock"}


@pytest.mark.parametrize("argv,needle", [c[1:] for c in CASES], ids=[c[0] for c in CASES])
def test_bad_input_exits_2_with_one_short_line_and_changes_nothing(ws, argv, needle):
    before = _snapshot(ws)
    argv = [a.format(root=ws) for a in argv]
    home = ws.parent / "home"  # caches (matplotlib's) go outside the workspace
    r = subprocess.run([sys.executable, "-m", "efsnas", *argv], capture_output=True, text=True,
                       timeout=120, env={"OMP_NUM_THREADS": "1", "PATH": "/usr/bin:/bin",
                                         "HOME": str(home), "MPLCONFIGDIR": str(home / "mpl")})
    err = r.stderr.strip()
    assert r.returncode == 2, (r.returncode, err[-2000:])
    assert "Traceback" not in r.stderr and err.count("\n") == 0, err[-2000:]
    assert len(err) < 800 and needle.lower() in err.lower(), err
    assert _snapshot(ws) == before
