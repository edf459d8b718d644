"""Every Python block of the documentation (docs/**/*.md and the README) runs as written, page
by page, each page in a fresh folder. The Python API page has its own test with assertions
(tests/test_readme_api.py); a block that only includes a file (`--8<--`) shows a file that is
itself a test. A sketch with names left for the reader to fill in is fenced as ```py, not
```python, and is not run."""

import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
OWN_TEST = {ROOT / "docs" / "guide" / "python-api.md"}
PAGES = sorted(p for p in [ROOT / "README.md", *(ROOT / "docs").rglob("*.md")]
               if p not in OWN_TEST)


def python_blocks(page: Path) -> list[str]:
    """The page's ```python blocks, includes left out."""
    blocks = re.findall(r"^```python\n(.*?)^```", page.read_text(), re.S | re.M)
    return [b for b in blocks if not b.lstrip().startswith("--8<--")]


@pytest.mark.parametrize("page", PAGES, ids=lambda p: str(p.relative_to(ROOT)))
def test_page_python_blocks_run(page, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    namespace: dict = {"__name__": "__docs__"}
    for code in python_blocks(page):
        exec(compile(code, str(page), "exec"), namespace)  # noqa: S102 (our own docs)


def test_the_python_api_page_has_its_blocks():
    assert len(python_blocks(ROOT / "docs" / "guide" / "python-api.md")) >= 2
