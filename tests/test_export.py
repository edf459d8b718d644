"""Export: TorchScript, ONNX and state_dict files compute what the stand-alone network computes."""

import sys

import pytest
import torch

from efsnas import create_space
from efsnas.app.config import dump_config, load_config
from efsnas.cli.main import main
from efsnas.errors import UsageError
from efsnas.export import (
    export_network,
    load_weights,
    retrained_path,
)
from efsnas.layers import AvgPool3x3, BatchNorm2d, to_plain

# recent torch (2.13) marks torch.jit deprecated; TorchScript is what the export offers
pytestmark = pytest.mark.filterwarnings("ignore:`torch.jit:DeprecationWarning")

NB201_CELLS = [
    "|nor_conv_3x3~0|+|nor_conv_1x1~0|avg_pool_3x3~1|+|skip_connect~0|nor_conv_3x3~1|nor_conv_1x1~2|",
    # a dead edge (2<-0 feeds node 2, which reaches the output only through none)
    "|nor_conv_3x3~0|+|nor_conv_1x1~0|none~1|+|skip_connect~0|avg_pool_3x3~1|none~2|",
]
MOBILENET = "k3e3-skip-k5e6-k7e3-k3e6-k5e3-skip-skip-k7e6-k3e3-skip-k3e3-k5e6-k5e6-skip-k7e3-" \
            "k3e6-skip-k3e6-skip-k5e3"


@pytest.fixture(scope="module")
def nb201():
    return create_space("nb201", C=4, N=1, in_channels=1, num_classes=10, input_size=8)


@pytest.fixture(scope="module")
def mobilenet():
    return create_space("mobilenet", width_mult=0.25, input_size=32, num_classes=5)


def _trained_like(space, subnet):
    """A network whose BN running statistics are not the defaults, in eval mode."""
    torch.manual_seed(0)
    net = space.build_network(space.parse(subnet))
    with torch.no_grad():
        for _ in range(2):
            net(torch.randn(4, space.in_channels, space.input_size, space.input_size) * 2 + 1)
    return net.eval()


def _x(space, batch=3):
    g = torch.Generator().manual_seed(1)
    return torch.randn(batch, space.in_channels, space.input_size, space.input_size, generator=g)


@pytest.mark.parametrize("cell", NB201_CELLS)
def test_torchscript_nb201_gives_the_same_outputs(nb201, cell, tmp_path):
    net = _trained_like(nb201, cell)
    export_network(nb201, net, tmp_path / "net.pt", format="torchscript")
    loaded = torch.jit.load(tmp_path / "net.pt")
    x = _x(nb201)  # another batch size than the export's example
    torch.testing.assert_close(loaded(x), net(x), atol=1e-5, rtol=0)
    assert not net.training  # the caller's network is left as it was


def test_torchscript_mobilenet_gives_the_same_outputs(mobilenet, tmp_path):
    net = _trained_like(mobilenet, MOBILENET)
    export_network(mobilenet, net, tmp_path / "net.pt", format="torchscript")
    loaded = torch.jit.load(tmp_path / "net.pt")
    x = _x(mobilenet, batch=2)
    torch.testing.assert_close(loaded(x), net(x), atol=1e-5, rtol=0)


@pytest.mark.parametrize("which", ["nb201", "mobilenet"])
def test_state_dict_round_trip(which, request, tmp_path):
    space = request.getfixturevalue(which)
    cell = NB201_CELLS[1] if which == "nb201" else MOBILENET
    net = _trained_like(space, cell)
    export_network(space, net, tmp_path / "w.pt", format="state_dict")
    fresh = space.build_network(space.parse(cell)).eval()
    load_weights(fresh, tmp_path / "w.pt")
    x = _x(space, batch=2)
    torch.testing.assert_close(fresh(x), net(x), atol=0, rtol=0)
    other = space.build_network(space.parse(NB201_CELLS[0] if which == "nb201" else "-".join(
        ["k7e6"] * 21)))
    with pytest.raises(UsageError, match="cannot load weights"):
        load_weights(other, tmp_path / "w.pt")


def test_onnx_gives_the_same_outputs(nb201, tmp_path):
    onnx = pytest.importorskip("onnx")
    from onnx.reference import ReferenceEvaluator

    net = _trained_like(nb201, NB201_CELLS[0])
    export_network(nb201, net, tmp_path / "net.onnx", format="onnx")
    x = _x(nb201)
    out = ReferenceEvaluator(onnx.load(tmp_path / "net.onnx")).run(None, {"input": x.numpy()})[0]
    torch.testing.assert_close(torch.from_numpy(out), net(x).detach(), atol=1e-5, rtol=0)


def test_to_plain_matches_the_fast_paths():
    """The fast paths (batch-statistics BN, pooling at >= 16x16 on channels_last) run here."""
    torch.manual_seed(0)
    m = torch.nn.Sequential(torch.nn.Conv2d(3, 5, 3, padding=1),
                            BatchNorm2d(5, affine=False, track_running_stats=False), AvgPool3x3())
    x = torch.randn(2, 3, 16, 16).contiguous(memory_format=torch.channels_last)
    plain = to_plain(m)
    assert not any(isinstance(c, (BatchNorm2d, AvgPool3x3)) for c in plain.modules())
    assert any(isinstance(c, (BatchNorm2d, AvgPool3x3)) for c in m.modules())  # m untouched
    torch.testing.assert_close(torch.jit.script(plain)(x), m(x), atol=1e-5, rtol=1e-5)


# ---- the command ---------------------------------------------------------------------------


@pytest.fixture()
def run_dir(tmp_path):
    """A run folder as `efsnas run --preset tiny` writes its config (no training needed)."""
    run = tmp_path / "run"
    run.mkdir()
    cfg = load_config(preset="tiny", overrides=[f"out={run}", "retrain.epochs=1",
                                                "retrain.batch_size=64"])
    (run / "config.yaml").write_text(dump_config(cfg))
    return run


@pytest.fixture(scope="module")
def tiny_space():
    # what pipeline.build_space makes of the tiny preset on digits
    return create_space("nb201", C=8, N=1, in_channels=1, num_classes=10, input_size=8)


def test_export_command_loads_retrained_weights(run_dir, tiny_space, tmp_path, capsys):
    cell = NB201_CELLS[0]
    assert main(["retrain", cell, "--run", str(run_dir)]) == 0
    saved = retrained_path(run_dir, tiny_space, tiny_space.parse(cell), seed=0)
    assert saved.is_file() and str(saved) in capsys.readouterr().out
    out = tmp_path / "w.pt"
    assert main(["export", cell, str(run_dir), "--format", "state_dict", "--out", str(out)]) == 0
    assert "random" not in capsys.readouterr().err
    a, b = torch.load(saved, weights_only=True), torch.load(out, weights_only=True)
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)
    ts = tmp_path / "net.pt"
    assert main(["export", cell, str(run_dir), "--out", str(ts), "--seed", "0"]) == 0
    net = tiny_space.build_network(tiny_space.parse(cell)).eval()
    load_weights(net, saved)
    x = _x(tiny_space)
    torch.testing.assert_close(torch.jit.load(ts)(x), net(x), atol=1e-5, rtol=0)


def test_export_command_without_weights_says_so(run_dir, tmp_path, capsys):
    out = tmp_path / "net.pt"
    assert main(["export", NB201_CELLS[1], str(run_dir), "--out", str(out)]) == 0
    assert "randomly initialised" in capsys.readouterr().err
    torch.jit.load(out)
    assert main(["export", NB201_CELLS[1], str(run_dir), "--out", str(out), "--force"]) == 0


def test_weights_are_named_by_index_or_by_text(tiny_space, mobilenet, tmp_path):
    cell = tiny_space.parse(NB201_CELLS[0])
    assert retrained_path(tmp_path, tiny_space, cell, seed=3).name == \
        f"{tiny_space.index(cell)}-seed3.pt"
    s = mobilenet.parse(MOBILENET)
    assert retrained_path(tmp_path, mobilenet, s, seed=0).name == f"{MOBILENET}-seed0.pt"


@pytest.mark.parametrize("argv,needle", [
    (["export", "|conv~0|+|none~0|none~1|+|none~0|none~1|none~2|", "RUN", "--out", "NEW"],
     "unknown operation"),
    (["export", NB201_CELLS[0], "MISSING", "--out", "NEW"], "not a run folder"),
    (["export", NB201_CELLS[0], "RUN", "--out", "OLD"], "--force"),
    (["export", NB201_CELLS[0], "RUN", "--out", "NEW", "--seed", "7"], "seed 7"),
    (["export", "|none~0|+|none~0|none~1|+|none~0|none~1|none~2|", "RUN", "--out", "NEW"],
     "not a valid"),
])
def test_bad_input_gives_one_line_and_exit_2(argv, needle, run_dir, tmp_path, capsys):
    (tmp_path / "old.pt").write_text("keep me")
    subst = {"RUN": str(run_dir), "NEW": str(tmp_path / "new.pt"), "OLD": str(tmp_path / "old.pt"),
             "MISSING": str(tmp_path / "missing")}
    assert main([subst.get(a, a) for a in argv]) == 2
    err = capsys.readouterr().err
    assert needle.lower() in err.lower(), err
    assert err.count("\n") == 1 and "Traceback" not in err
    assert (tmp_path / "old.pt").read_text() == "keep me" and not (tmp_path / "new.pt").exists()


def test_onnx_without_the_package_is_a_one_line_error(run_dir, tmp_path, monkeypatch, capsys):
    monkeypatch.setitem(sys.modules, "onnx", None)  # makes `import onnx` fail
    assert main(["export", NB201_CELLS[0], str(run_dir), "--format", "onnx",
                 "--out", str(tmp_path / "n.onnx")]) == 2
    err = capsys.readouterr().err
    assert "pip install onnx" in err and err.count("\n") == 1
