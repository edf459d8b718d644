"""The Python API page's examples (docs/guide/python-api.md, linked from the README) run as
written, so the documentation stays true."""

import re
from pathlib import Path

PAGE = Path(__file__).resolve().parents[1] / "docs" / "guide" / "python-api.md"


def _blocks() -> list[str]:
    return re.findall(r"```python\n(.*?)```", PAGE.read_text(), re.S)


def test_python_api_block_runs(tmp_path, monkeypatch, capsys):
    code = _blocks()[0]
    monkeypatch.chdir(tmp_path)  # its run folder lands here
    namespace: dict = {}
    exec(compile(code, str(PAGE), "exec"), namespace)  # noqa: S102 (our own docs)
    out = capsys.readouterr().out.splitlines()
    assert out[0].split()[0] == "2"  # the count the comment promises
    space, result = namespace["space"], namespace["result"]
    assert space.is_valid(result.top[0].subnet)
    assert (tmp_path / "runs" / "api" / "checkpoint.pt").exists()
    assert namespace["net"](namespace["data"].heldout.fixed_batches(8)[0][0]).shape[1] == 10


def test_application_layer_block_runs(tmp_path, monkeypatch, capsys):
    code = _blocks()[1]
    monkeypatch.chdir(tmp_path)
    namespace: dict = {}
    exec(compile(code, str(PAGE), "exec"), namespace)  # noqa: S102 (our own docs)
    found, record = namespace["found"], namespace["record"]
    assert record["cell"] == found["best"]["cell"]
    assert (tmp_path / "runs" / "app" / "checkpoint.pt").exists()
    assert namespace["reopened"].space.format(namespace["reopened"].space.parse(
        found["best"]["cell"])) == found["best"]["cell"]
