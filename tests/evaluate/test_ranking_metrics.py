import json
import math
import random
import sys

import pytest
from scipy.stats import kendalltau, spearmanr

from efsnas.errors import UsageError
from efsnas.evaluate.plots import scatter_plot
from efsnas.evaluate.ranking import correlate, load_ground_truth


def test_agrees_with_scipy_on_the_real_ground_truth(nb201_accuracy):
    rng = random.Random(0)
    predicted = {c: a + rng.gauss(0.0, 3.0) for c, a in nb201_accuracy.items()}
    stats = correlate(predicted, nb201_accuracy)
    cells = sorted(nb201_accuracy)
    x = [predicted[c] for c in cells]
    y = [nb201_accuracy[c] for c in cells]
    assert stats["counts"]["shared"] == stats["counts"]["compared"] == 15625
    assert stats["kendall_tau"]["all"]["tau"] == pytest.approx(kendalltau(x, y)[0], abs=1e-12)
    assert stats["spearman_rho"]["rho"] == pytest.approx(spearmanr(x, y)[0], abs=1e-12)
    # the best 156 cells by ground truth, computed independently
    top = sorted(cells, key=lambda c: (-nb201_accuracy[c], c))[:156]
    ref = kendalltau([predicted[c] for c in top], [nb201_accuracy[c] for c in top])[0]
    assert stats["kendall_tau"]["top_1%"]["n"] == 156
    assert stats["kendall_tau"]["top_1%"]["tau"] == pytest.approx(ref, abs=1e-12)
    assert stats["kendall_tau"]["top_50%"]["n"] == stats["kendall_tau"]["bottom_50%"]["n"] == 7812
    ranked = sorted(cells, key=lambda c: (-nb201_accuracy[c], c))
    for name, part in (("top_50%", ranked[:7812]), ("bottom_50%", ranked[-7812:])):
        ref = kendalltau([predicted[c] for c in part], [nb201_accuracy[c] for c in part])[0]
        assert stats["kendall_tau"][name]["tau"] == pytest.approx(ref, abs=1e-12), name
    best = stats["best_predicted"]
    assert best["cell"] == max(cells, key=lambda c: predicted[c])
    assert best["true_rank"] == 1 + sum(a > best["true_accuracy"] for a in y)
    assert best["of"] == 15625 and best["true_best_accuracy"] == pytest.approx(94.37, abs=0.01)


def test_perfect_prediction(nb201_accuracy):
    stats = correlate({c: 2 * a for c, a in nb201_accuracy.items()}, nb201_accuracy)
    assert stats["kendall_tau"]["all"]["tau"] == pytest.approx(1.0)
    assert stats["best_predicted"]["true_rank"] == 1


def test_subsets_on_a_case_with_a_known_answer():
    # 200 cells, truth = index; the best two (top 1%) are predicted in reverse order, the rest of
    # the top half in order, the bottom half in reverse order.
    truth = {f"c{i:03d}": float(i) for i in range(200)}
    predicted = {f"c{i:03d}": (1000.0 + i if i >= 100 else -float(i)) for i in range(200)}
    predicted["c198"], predicted["c199"] = 1199.0, 1198.0
    stats = correlate(predicted, truth)
    tau = stats["kendall_tau"]
    assert tau["top_1%"]["n"] == 2 and tau["top_1%"]["tau"] == pytest.approx(-1.0)
    assert tau["top_50%"]["n"] == 100
    assert tau["top_50%"]["tau"] == pytest.approx((4950 - 2) / 4950)  # one discordant pair
    assert tau["bottom_50%"]["n"] == 100 and tau["bottom_50%"]["tau"] == pytest.approx(-1.0)
    best = stats["best_predicted"]
    assert (best["cell"], best["true_rank"], best["true_accuracy"]) == ("c198", 2, 198.0)


def test_mismatched_cell_sets_are_reported():
    truth = {f"c{i}": float(i) for i in range(10)}
    predicted = {f"c{i}": float(i) for i in range(3, 10)} | {"x1": 5.0, "x2": 1.0}
    stats = correlate(predicted, truth)
    assert stats["counts"] == {"shared": 7, "compared": 7, "non_finite": 0,
                               "only_in_predictions": 2, "only_in_truth": 3}
    assert stats["examples"]["only_in_predictions"] == ["x1", "x2"]
    assert stats["examples"]["only_in_truth"] == ["c0", "c1", "c2"]
    assert stats["kendall_tau"]["all"] == {"tau": 1.0, "p_value": pytest.approx(2 / 5040),
                                           "n": 7, "reason": None}
    assert stats["best_predicted"]["true_rank"] == 1  # rank in the whole ground truth


def test_degenerate_inputs_give_none_with_a_reason():
    truth = {f"c{i}": float(i) for i in range(10)}
    const = correlate({c: 1.0 for c in truth}, truth)
    assert const["kendall_tau"]["all"]["tau"] is None
    assert "constant" in const["kendall_tau"]["all"]["reason"]
    assert const["spearman_rho"]["rho"] is None
    assert const["best_predicted"]["cell"] == "c0"  # ties broken by cell string
    flat = correlate({c: float(i) for i, c in enumerate(truth)}, {c: 50.0 for c in truth})
    assert "ground truth is constant" in flat["kendall_tau"]["all"]["reason"]
    nan = correlate({c: (math.nan if c in ("c1", "c5") else v) for c, v in truth.items()}, truth)
    assert nan["counts"]["non_finite"] == 2 and nan["counts"]["compared"] == 8
    assert nan["examples"]["non_finite"] == ["c1", "c5"]
    assert nan["kendall_tau"]["all"]["tau"] == pytest.approx(1.0)
    small = correlate({"a": 1.0}, {"a": 2.0, "b": 3.0})
    assert small["kendall_tau"]["all"]["tau"] is None
    assert "needs at least 2" in small["kendall_tau"]["all"]["reason"]
    assert small["kendall_tau"]["top_1%"]["n"] == 0
    none = correlate({"a": 1.0}, {"b": 2.0})
    assert none["best_predicted"] is None and none["counts"]["shared"] == 0
    json.dumps(none)


def test_per_subspace_tau():
    rng = random.Random(1)
    truth = {f"c{i:02d}": rng.random() for i in range(60)}
    predicted = {c: v + rng.gauss(0, 0.2) for c, v in truth.items()}

    def parity(c):
        return "even" if int(c[1:]) % 2 == 0 else "odd"

    stats = correlate(predicted, truth, subspace_of=parity)
    assert sorted(stats["per_subspace"]) == ["even", "odd"]
    for name, res in stats["per_subspace"].items():
        cells = sorted(c for c in truth if parity(c) == name)
        assert res["n"] == 30
        ref = kendalltau([predicted[c] for c in cells], [truth[c] for c in cells])[0]
        assert res["tau"] == pytest.approx(ref)


def test_cross_subspace_tau_counts_only_pairs_across_groups():
    from efsnas.evaluate.ranking import cross_group_tau

    rng = random.Random(2)
    n = 40
    x = [rng.choice([0.0, 1.0, 2.0, rng.random()]) for _ in range(n)]  # with ties
    y = [v + rng.gauss(0, 0.5) for v in x]
    g = [rng.choice("abc") for _ in range(n)]
    s = pairs = tx = ty = 0
    for i in range(n):
        for j in range(i + 1, n):
            if g[i] != g[j]:
                dx, dy = x[i] - x[j], y[i] - y[j]
                pairs += 1
                tx += dx == 0
                ty += dy == 0
                s += (dx > 0) - (dx < 0) if dy > 0 else ((dx < 0) - (dx > 0) if dy < 0 else 0)
    got = cross_group_tau(x, y, g, chunk=7)  # chunks that do not divide n
    assert got["pairs"] == pairs
    assert got["tau"] == pytest.approx(s / math.sqrt((pairs - tx) * (pairs - ty)))


def test_load_ground_truth(tmp_path):
    good = tmp_path / "gt.json"
    good.write_text(json.dumps({"a": 90, "b": 91.5}))
    assert load_ground_truth(str(good)) == {"a": 90.0, "b": 91.5}
    cases = {"list.json": ("[1, 2]", "JSON list"), "empty.json": ("{}", "empty object"),
             "str.json": ('{"a": "91"}', "expected a number"),
             "bool.json": ('{"a": true}', "expected a number"),
             "broken.json": ('{"a": 1', "not valid JSON")}
    for name, (text, msg) in cases.items():
        (tmp_path / name).write_text(text)
        with pytest.raises(UsageError, match=msg):
            load_ground_truth(str(tmp_path / name))
    with pytest.raises(UsageError, match="does not exist"):
        load_ground_truth(str(tmp_path / "missing.json"))


def test_official_file_without_its_package(tmp_path, monkeypatch):
    for pkg in ("nas_201_api", "nats_bench"):  # as if not installed, installed or not
        monkeypatch.setitem(sys.modules, pkg, None)
    fake = tmp_path / "NAS-Bench-201-v1_1-096897.pth"
    fake.write_bytes(b"\x80\x02")
    with pytest.raises(UsageError, match=r'needs the nas-bench-201 package: pip install '
                                         r'"efsnas\[benchmarks\]".*or pass a JSON'):
        load_ground_truth(str(fake))
    folder = tmp_path / "NATS-tss-v1_0-3ffb9-simple"
    folder.mkdir()
    (folder / "meta.pickle.pbz2").write_bytes(b"")
    with pytest.raises(UsageError, match="needs the nats_bench package"):
        load_ground_truth(str(folder))


def test_scatter_plot_writes_a_png(tmp_path):
    truth = {f"c{i:02d}": float(i) for i in range(40)}
    predicted = {c: v * 0.5 + (i % 3) for i, (c, v) in enumerate(truth.items())}
    out = tmp_path / "plots" / "scatter.png"
    stats = scatter_plot(predicted, truth, out, subspace_of=lambda c: f"k{int(c[1:]) % 3}",
                         title="toy")
    assert out.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert stats["kendall_tau"]["all"]["n"] == 40
    scatter_plot({"a": 1.0}, {"a": 1.0}, tmp_path / "one.png")  # degenerate still draws
    assert (tmp_path / "one.png").stat().st_size > 0
