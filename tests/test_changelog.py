"""The version in pyproject.toml and efsnas.__version__ is the CHANGELOG's latest release."""

import re
from pathlib import Path

import efsnas

ROOT = Path(__file__).resolve().parents[1]


def test_version_follows_the_changelog():
    releases = re.findall(r"^## \[(\d+\.\d+\.\d+)\] - \d{4}-\d{2}-\d{2}$",
                          (ROOT / "CHANGELOG.md").read_text(), re.M)
    assert releases, "no release in CHANGELOG.md"
    version = re.search(r'^version = "([^"]+)"$', (ROOT / "pyproject.toml").read_text(), re.M)
    assert version.group(1) == releases[0] == efsnas.__version__
