"""Scores and ground-truth JSON built to break the reader end in one usage line, exit 2."""

import json

import pytest

from efsnas.cli.main import main

CELL = "|nor_conv_3x3~0|+|nor_conv_3x3~0|avg_pool_3x3~1|+|skip_connect~0|nor_conv_3x3~1|none~2|"


@pytest.mark.parametrize("bad", ["huge_int", "deep"])
@pytest.mark.parametrize("which", ["scores", "truth"])
def test_correlate_refuses_hostile_json(bad, which, tmp_path, capsys):
    good = json.dumps({CELL: 1.0})
    text = (json.dumps({CELL: 10 ** 400}) if bad == "huge_int"
            else "[" * 10_000 + "]" * 10_000)
    scores, truth = tmp_path / "scores.json", tmp_path / "truth.json"
    scores.write_text(text if which == "scores" else good)
    truth.write_text(text if which == "truth" else good)
    assert main(["correlate", str(scores), str(truth)]) == 2
    err = capsys.readouterr().err.strip()
    assert err and "\n" not in err and "Traceback" not in err


def test_correlate_plot_onto_an_unknown_suffix(tmp_path, capsys):
    for name in ("scores.json", "truth.json"):
        (tmp_path / name).write_text(json.dumps({CELL: 1.0}))
    plot = tmp_path / "plot.xyz"
    assert main(["correlate", str(tmp_path / "scores.json"), str(tmp_path / "truth.json"),
                 "--plot", str(plot)]) == 2
    err = capsys.readouterr().err.strip()
    assert "unknown image format 'xyz'" in err and "\n" not in err
    assert not plot.exists()
