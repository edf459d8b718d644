"""The README's Python API block runs as written (so the documentation stays true)."""

import re
from pathlib import Path

README = Path(__file__).resolve().parents[1] / "README.md"


def test_readme_python_block_runs(tmp_path, monkeypatch, capsys):
    text = README.read_text()
    section = text[text.index("## Python API"):]
    code = re.search(r"```python\n(.*?)```", section, re.S).group(1)
    monkeypatch.chdir(tmp_path)  # its run folder lands here
    namespace: dict = {}
    exec(compile(code, "README.md", "exec"), namespace)  # noqa: S102 (our own README)
    out = capsys.readouterr().out.splitlines()
    assert out[0].split()[0] == "2"  # the count the comment promises
    space, result = namespace["space"], namespace["result"]
    assert space.is_valid(result.top[0].subnet)
    assert (tmp_path / "runs" / "api" / "checkpoint.pt").exists()
    assert namespace["net"](namespace["data"].heldout.fixed_batches(8)[0][0]).shape[1] == 10
