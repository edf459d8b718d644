import json

import pytest
from scipy.stats import kendalltau

from efsnas import create_space
from efsnas.cli.main import main


@pytest.fixture(scope="module")
def cells():
    """Twelve connected NAS-Bench-201 cells: four with 1, 2 and 3 convolutions on a path."""
    space = create_space("nb201")
    picked = {1: [], 2: [], 3: []}
    for s in space.enumerate():
        n = space.nonlinearity_count(s)
        if space.is_valid(s) and n in picked and len(picked[n]) < 4:
            picked[n].append(space.format(s))
    return [c for n in (1, 2, 3) for c in picked[n]]


@pytest.fixture
def files(tmp_path, cells):
    truth = {c: 80.0 + i for i, c in enumerate(cells)}
    predicted = {c: float(i) for i, c in enumerate(cells)}
    predicted[cells[0]], predicted[cells[1]] = 1.0, 0.0  # one discordant pair
    p, t = tmp_path / "scores.json", tmp_path / "truth.json"
    p.write_text(json.dumps({"scores": predicted, "loss": {}}))  # the evaluator's shape
    t.write_text(json.dumps(truth))
    return p, t


def one_line_error(capsys, argv):
    assert main(argv) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("efsnas correlate: error:") and "\n" not in err
    return err


def test_json_output(files, capsys, cells):
    p, t = files
    assert main(["correlate", str(p), str(t), "--json"]) == 0
    stats = json.loads(capsys.readouterr().out)
    assert stats["counts"]["shared"] == 12
    assert stats["kendall_tau"]["all"]["tau"] == pytest.approx((66 - 2) / 66)
    assert stats["kendall_tau"]["top_50%"]["tau"] == pytest.approx(1.0)
    assert stats["best_predicted"] == {
        "cell": cells[-1], "predicted": 11.0, "true_accuracy": 91.0, "true_rank": 1, "of": 12,
        "true_rank_among_compared": 1, "true_best_accuracy": 91.0}
    per = stats["per_subspace"]
    assert {k: v["n"] for k, v in per.items()} == {"count=0,1": 4, "count=2": 4, "count=3": 4}
    assert per["count=0,1"]["tau"] == pytest.approx(4 / 6) and per["count=3"]["tau"] == 1.0
    # the one discordant pair lies within count=0,1: all 48 cross-subspace pairs agree
    assert stats["cross_subspace"] == {"tau": 1.0, "pairs": 48, "n": 12, "reason": None}
    cal = stats["calibration"]
    assert cal["count=2"] == {"n": 4, "predicted_mean": 5.5, "true_mean": 85.5, "offset": -80.0}


def test_disconnected_cells_at_chance_join_one_extra_row(files, capsys, tmp_path):
    p, t = files
    truth = json.loads(t.read_text())
    disconnected = "|none~0|+|none~0|none~1|+|none~0|none~1|none~2|"
    truth[disconnected] = 10.0
    t2 = tmp_path / "truth-all.json"
    t2.write_text(json.dumps(truth))
    assert main(["correlate", str(p), str(t2), "--json"]) == 0
    stats = json.loads(capsys.readouterr().out)
    assert stats["counts"]["only_in_truth"] == 1 and stats["kendall_tau"]["all"]["n"] == 12
    extra = stats["kendall_tau"]["all_with_unscorable"]
    # scored 10.0, tied with cell 10's prediction: 13 cells, 78 pairs, one tie on the
    # prediction side, one discordant pair from before, the new cell concordant elsewhere
    assert extra["n"] == 13
    x = json.loads(p.read_text())["scores"]
    cells = sorted(x)
    ref = kendalltau([x[c] for c in cells] + [10.0], [truth[c] for c in cells] + [10.0])[0]
    assert extra["tau"] == pytest.approx(ref)


def test_table_and_plot(files, capsys, tmp_path):
    p, t = files
    plot = tmp_path / "out" / "scatter.png"
    assert main(["correlate", str(p), str(t), "--plot", str(plot),
                 "--criterion", "fsnas"]) == 0
    out = capsys.readouterr().out
    assert "Kendall tau (all)" in out and "0.9697" in out and "fsnas split" in out
    assert plot.read_bytes()[:4] == b"\x89PNG"


def test_plain_mapping_and_mismatch(tmp_path, cells, capsys):
    p, t = tmp_path / "p.json", tmp_path / "t.json"
    p.write_text(json.dumps({c: float(i) for i, c in enumerate(cells[:10])}))
    t.write_text(json.dumps({c: float(i) for i, c in enumerate(cells[2:])}))
    assert main(["correlate", str(p), str(t)]) == 0
    out = capsys.readouterr().out
    assert "8 shared, 2 only in predictions, 2 only in ground truth" in out
    assert cells[0] in out


def test_bad_input_exits_2_with_one_line(tmp_path, files, capsys):
    p, t = files
    assert "does not exist" in one_line_error(capsys, ["correlate", str(tmp_path / "no.json"),
                                                       str(t)])
    assert "does not exist" in one_line_error(capsys, ["correlate", str(p),
                                                       str(tmp_path / "no.json")])
    bad = tmp_path / "bad.json"
    bad.write_text("{oops")
    assert "not valid JSON" in one_line_error(capsys, ["correlate", str(bad), str(t)])
    assert "not valid JSON" in one_line_error(capsys, ["correlate", str(p), str(bad)])
    bad.write_text("[1, 2, 3]")
    assert "expected a non-empty JSON object" in one_line_error(
        capsys, ["correlate", str(bad), str(t)])
    bad.write_text(json.dumps({"scores": {"|nor_conv_3x3~0|+|none~0|none~1|+|none~0|none~1|"
                                          "none~2|": "high"}}))
    assert "expected a number" in one_line_error(capsys, ["correlate", str(bad), str(t)])
    bad.write_text(json.dumps({"not a cell": 1.0}))
    bad_truth = tmp_path / "bt.json"
    bad_truth.write_text(json.dumps({"not a cell": 2.0, "also not": 3.0}))
    assert "malformed cell" in one_line_error(capsys, ["correlate", str(bad), str(bad_truth)])
    bad_truth.write_text(json.dumps({"x": 1.0}))
    assert "no cell in common" in one_line_error(capsys, ["correlate", str(p), str(bad_truth)])


def test_plot_never_replaces_an_input_or_an_existing_file(files, capsys, tmp_path):
    p, t = files
    truth = t.read_text()
    assert main(["correlate", str(p), str(t), "--plot", str(t)]) == 2
    assert t.read_text() == truth
    old = tmp_path / "old.png"
    old.write_text("keep")
    assert main(["correlate", str(p), str(t), "--plot", str(old)]) == 2
    assert old.read_text() == "keep"
    assert main(["correlate", str(p), str(t), "--plot", str(old), "--force"]) == 0
    pdf = tmp_path / "x.pdf"
    assert main(["correlate", str(p), str(t), "--plot", str(pdf)]) == 0
    assert pdf.read_bytes()[:4] == b"%PDF"
