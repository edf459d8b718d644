"""Progress in a file: plain lines at the given interval, never carriage-return redraws."""

import io

from efsnas.progress import Progress


def test_progress_in_a_file_writes_a_line_every_n_steps():
    out = io.StringIO()  # not a TTY
    bar = Progress(10, desc="epoch 1/2", every_steps=4, every_seconds=1e9, stream=out)
    for i in range(10):
        bar.update(1, loss=f"{1.0 / (i + 1):.3f}")
    bar.close()
    lines = out.getvalue().splitlines()
    assert "\r" not in out.getvalue() and len(lines) == 2
    assert lines[0].startswith("epoch 1/2: 4/10 loss 0.250") and "ETA" in lines[0]
    assert lines[1].startswith("epoch 1/2: 8/10")


def test_disabled_progress_writes_nothing():
    out = io.StringIO()
    bar = Progress(5, desc="x", enabled=False, every_steps=1, stream=out)
    for _ in range(5):
        bar.update(1)
    assert out.getvalue() == ""
