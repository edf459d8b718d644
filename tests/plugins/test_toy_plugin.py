"""A plug-in space, criterion and searcher, registered from outside the package, run through
`efsnas train`, `evaluate` and `search` without any change to the application layer."""

from __future__ import annotations

import json
import random

import pytest
import torch
from torch import nn

from efsnas import registry
from efsnas.api.search_space import EvolutionMixin, SearchSpace
from efsnas.api.split import Split, SplitCriterion, Subspace
from efsnas.api.supernet import Supernet
from efsnas.cli.main import main
from efsnas.errors import UsageError
from efsnas.search.random_search import RandomSearch

# --8<-- [start:space]
# Three positions on an MLP; each takes 0 (identity), 1 (linear + ReLU) or 2 (linear + tanh).
CHOICES = ("id", "relu", "tanh")


def _layer(choice: int, width: int) -> nn.Module:
    if choice == 0:
        return nn.Identity()
    return nn.Sequential(nn.Linear(width, width), nn.ReLU() if choice == 1 else nn.Tanh())


class ToyNetwork(nn.Module):
    def __init__(self, subnet, *, features: int, width: int, classes: int) -> None:
        super().__init__()
        self.subnet = tuple(subnet)
        self.stem = nn.Linear(features, width)
        self.layers = nn.ModuleList(_layer(c, width) for c in self.subnet)
        self.head = nn.Linear(width, classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = self.stem(x.flatten(1))
        for layer in self.layers:
            h = layer(h)
        return self.head(h)


class ToySupernet(Supernet):
    def __init__(self, *, features: int, width: int, classes: int) -> None:
        super().__init__()
        self.sizes = dict(features=features, width=width, classes=classes)
        self.stem = nn.Linear(features, width)
        self.layers = nn.ModuleList(
            nn.ModuleList(_layer(c, width) for c in range(len(CHOICES))) for _ in range(3))
        self.head = nn.Linear(width, classes)

    def forward(self, x, subnet):
        h = self.stem(x.flatten(1))
        for options, c in zip(self.layers, subnet):
            h = options[c](h)
        return self.head(h)

    def extract(self, subnet):
        net = ToyNetwork(subnet, **self.sizes)
        net.stem.load_state_dict(self.stem.state_dict())
        net.head.load_state_dict(self.head.state_dict())
        for mine, options, c in zip(net.layers, self.layers, subnet):
            mine.load_state_dict(options[c].state_dict())
        return net

    def describe(self):
        return {"space": "toy", **self.sizes}


class ToySpace(EvolutionMixin, SearchSpace):
    name = "toy"

    def __init__(self, *, width: int = 12, in_channels: int = 1, num_classes: int = 10,
                 input_size: int = 8) -> None:
        self.width, self.classes = width, num_classes
        self.features = in_channels * input_size * input_size

    @property
    def choices(self):
        return (3, 3, 3)

    def parse(self, text):
        try:
            return self.check(CHOICES.index(t) for t in text.split("-"))
        except ValueError:
            raise UsageError(f"bad toy subnet {text!r}: write e.g. relu-id-tanh") from None

    def format(self, subnet):
        return "-".join(CHOICES[c] for c in subnet)

    def is_valid(self, subnet):
        return True

    def nonlinearity_count(self, subnet):
        return sum(c != 0 for c in subnet)

    @property
    def possible_counts(self):
        return (0, 1, 2, 3)

    @property
    def default_groups(self):
        return ((0, 1), (2,), (3,))

    def flops(self, subnet):
        w = self.width
        return self.features * w + self.nonlinearity_count(subnet) * w * w + w * self.classes

    def params(self, subnet):
        return sum(p.numel() for p in self.build_network(subnet).parameters())

    def build_network(self, subnet, **kwargs):
        return ToyNetwork(subnet, features=self.features, width=self.width, classes=self.classes)

    def build_supernet(self, *, width_divisor=1, **kwargs):
        return ToySupernet(features=self.features, width=max(1, self.width // width_divisor),
                           classes=self.classes)

    def describe(self):
        return {"name": self.name, "width": self.width}
# --8<-- [end:space]


# --8<-- [start:criterion]
class FirstChoiceSplit(SplitCriterion):
    """One subspace per choice at the first position (a plug-in criterion)."""

    name = "toy-first"

    def split(self, space):
        subs = [Subspace(f"first={c}", lambda s, c=c: s[0] == c, {"first": c}) for c in range(3)]
        return Split(space, subs, criterion=self.name, width_divisor=1)
# --8<-- [end:criterion]


# --8<-- [start:searcher]
class ExhaustiveSearch(RandomSearch):
    """Every subnet once (the toy space has 27): a plug-in searcher with its own option."""

    name = "toy-all"

    def __init__(self, space, *, rounds: int = 1, **kwargs):
        super().__init__(space, budget=27 * rounds, batch_size=27, **kwargs)
# --8<-- [end:searcher]


# --8<-- [start:register]
@pytest.fixture
def toy_plugins(monkeypatch):
    """Registered for one test: the registry goes back to the built-ins afterwards."""
    registry.names("space")  # the built-ins first
    for kind, name, obj in (("space", "toy", ToySpace), ("criterion", "toy-first", FirstChoiceSplit),
                            ("searcher", "toy-all", ExhaustiveSearch)):
        monkeypatch.setitem(registry._REGISTRIES[kind], name, obj)
# --8<-- [end:register]


# --8<-- [start:run]
def test_a_plug_in_space_criterion_and_searcher_run_end_to_end(toy_plugins, tmp_path):
    out = tmp_path / "toy"
    common = ["--data", "digits", "--set", "data.max_train=256", "--set", "data.max_heldout=128"]
    assert main(["train", "--preset", "tiny", "--out", str(out), "--epochs", "2",
                 "--criterion", "toy-first", "--sampler", "sbs", "--set", "space.name=toy",
                 "--set", "space.width=10", *common]) == 0
    cfg = (out / "config.yaml").read_text()
    assert "name: toy" in cfg and "width: 10" in cfg  # the space's own option, kept as one
    summary = json.loads((out / "train.json").read_text())
    assert [s["width"] for s in summary["supernets"]] == [10, 10, 10]  # one per subspace
    assert main(["evaluate", str(out), "--all"]) == 0
    scores = json.loads((out / "scores.json").read_text())["scores"]
    assert len(scores) == 27 and all(t.count("-") == 2 for t in scores)
    assert main(["search", str(out), "--strategy", "toy-all"]) == 0
    result = json.loads((out / "search.json").read_text())
    assert result["strategy"] == "toy-all" and result["evaluated"] == 27
    # the searcher saw every subnet, so its best is the best score evaluate wrote
    assert result["best"]["supernet_estimate"] == pytest.approx(max(scores.values()))
    first = CHOICES.index(result["best"]["cell"].split("-")[0])
    assert result["best"]["subspace"] == f"first={first}"  # routed by the plug-in criterion
# --8<-- [end:run]


def test_a_plug_in_space_option_is_checked_by_the_space(toy_plugins, tmp_path, capsys):
    code = main(["train", "--preset", "tiny", "--out", str(tmp_path / "x"), "--data", "digits",
                 "--set", "space.name=toy", "--set", "space.C=8"])
    assert code == 2
    assert "the toy space has no option 'C'; its options: width" in capsys.readouterr().err


def test_toy_extract_equals_the_supernet():
    space = ToySpace(width=6)
    sup = space.build_supernet()
    x = torch.randn(4, 1, 8, 8)
    for s in (space.sample(random.Random(i)) for i in range(5)):
        torch.testing.assert_close(sup.extract(s)(x), sup(x, s))
