"""Pictures of subnets: files in the format the suffix says, dead edges drawn apart."""

import pytest
from matplotlib.colors import to_hex

from efsnas import create_space
from efsnas.api.search_space import SearchSpace
from efsnas.cli.main import main
from efsnas.draw import draw_subnet
from efsnas.errors import UsageError

# Edge 1 (2<-0) is dead: node 2 reaches the output only through a none edge.
DEAD_CELL = "|nor_conv_3x3~0|+|nor_conv_1x1~0|none~1|+|skip_connect~0|avg_pool_3x3~1|none~2|"
MOBILENET = "k3e3-skip-k5e6-k7e3-k3e6-k5e3-skip-skip-k7e6-k3e3-skip-k3e3-k5e6-k5e6-skip-k7e3-" \
            "k3e6-skip-k3e6-skip-k5e3"


@pytest.fixture(scope="module")
def nb201():
    return create_space("nb201")


def _edges(fig) -> dict:
    (ax,) = fig.axes
    return {int(line.get_gid().split("-")[1]): line for line in ax.get_lines()
            if (line.get_gid() or "").startswith("edge-")}


@pytest.mark.parametrize("suffix", ["png", "svg"])
def test_nb201_picture_is_written(nb201, suffix, tmp_path):
    path = tmp_path / f"cell.{suffix}"
    draw_subnet(nb201, DEAD_CELL, path)
    data = path.read_bytes()
    assert len(data) > 1000
    assert data.startswith(b"\x89PNG") if suffix == "png" else b"<svg" in data[:2000]


def test_dead_and_none_edges_are_drawn_apart_from_live_ones(nb201, tmp_path):
    edges = _edges(draw_subnet(nb201, nb201.parse(DEAD_CELL), tmp_path / "c.png"))
    assert sorted(edges) == list(range(6))
    live, dead, none = edges[0], edges[1], edges[2]
    assert live.get_linestyle() == "-" and dead.get_linestyle() == "--"
    assert none.get_linestyle() not in ("-", "--")
    assert to_hex(dead.get_color()) != to_hex(live.get_color())
    assert to_hex(edges[0].get_color()) != to_hex(edges[3].get_color())  # conv vs skip colours
    assert dead.get_linewidth() < live.get_linewidth()


def test_mobilenet_picture_marks_skips(tmp_path):
    space = create_space("mobilenet")
    fig = draw_subnet(space, MOBILENET, tmp_path / "m.pdf", title="")
    assert (tmp_path / "m.pdf").read_bytes().startswith(b"%PDF")
    boxes = {p.get_gid(): p for p in fig.axes[0].patches}
    assert len([g for g in boxes if g and g.startswith("layer-")]) == 21
    assert boxes["layer-1"].get_linestyle() == "--"  # skip
    assert boxes["layer-0"].get_linestyle() in ("-", "solid")


def test_a_space_without_drawing_says_so(nb201):
    with pytest.raises(UsageError, match="cannot draw"):
        SearchSpace.draw(nb201, (0,) * 6, None)


def test_unknown_picture_format(nb201, tmp_path):
    with pytest.raises(UsageError, match="picture format"):
        draw_subnet(nb201, DEAD_CELL, tmp_path / "c.txt")


@pytest.mark.parametrize("space,cell", [("nb201", DEAD_CELL), ("mobilenet", MOBILENET)])
def test_space_command_draws_and_keeps_existing_files(space, cell, tmp_path, capsys):
    out = tmp_path / "cell.svg"
    assert main(["space", space, "--draw", cell, "--out", str(out)]) == 0
    assert out.stat().st_size > 0 and str(out) in capsys.readouterr().out
    assert main(["space", space, "--draw", cell, "--out", str(out)]) == 2
    assert "--force" in capsys.readouterr().err
    assert main(["space", space, "--draw", cell, "--out", str(out), "--force"]) == 0


@pytest.mark.parametrize("argv,needle", [
    (["space", "nb201", "--draw", "|conv~0|+|none~0|none~1|+|none~0|none~1|none~2|", "--out",
      "NEW"], "unknown operation"),
    (["space", "mobilenet", "--draw", "k3e3-k9e9", "--out", "NEW"], "malformed"),
    (["space", "nb201", "--draw", DEAD_CELL], "--out"),
    (["space", "nb201", "--out", "NEW"], "--draw"),
])
def test_bad_draw_input_gives_one_line_and_exit_2(argv, needle, tmp_path, capsys):
    new = tmp_path / "new.png"
    assert main([str(new) if a == "NEW" else a for a in argv]) == 2
    err = capsys.readouterr().err
    assert needle.lower() in err.lower(), err
    assert err.count("\n") == 1 and "Traceback" not in err and not new.exists()
