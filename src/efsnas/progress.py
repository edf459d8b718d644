"""Progress that suits where it goes: a tqdm bar in a terminal; in a file or a pipe, one plain
line every `every_steps` steps or `every_seconds` seconds (no carriage-return redraws)."""

from __future__ import annotations

import sys
import time


class Progress:
    """Progress of `total` steps: a tqdm bar on a terminal, else a plain line now and then (see the
    module docstring); `enabled=False` shows nothing."""

    def __init__(self, total: int, *, desc: str, initial: int = 0, enabled: bool = True,
                 every_steps: int = 200, every_seconds: float = 30.0, stream=None) -> None:
        self.total, self.desc, self.n = total, desc, initial
        self.stream = stream or sys.stderr
        self.enabled = enabled
        self.every_steps, self.every_seconds = every_steps, every_seconds
        self.postfix: dict[str, str] = {}
        self._bar = None
        self._t0 = self._last = time.time()
        self._start, self._last_n = initial, initial
        if enabled and self.stream.isatty():
            from tqdm.auto import tqdm

            self._bar = tqdm(total=total, initial=initial, desc=desc, leave=False,
                             dynamic_ncols=True, file=self.stream)

    def update(self, n: int = 1, **postfix) -> None:
        """Count `n` more steps, with `postfix` values shown beside the count."""
        self.n += n
        self.postfix.update({k: str(v) for k, v in postfix.items()})
        if not self.enabled:
            return
        if self._bar is not None:
            if postfix:
                self._bar.set_postfix(self.postfix, refresh=False)
            self._bar.update(n)
            return
        now = time.time()
        if self.n - self._last_n >= self.every_steps or now - self._last >= self.every_seconds:
            self._line(now)

    def _line(self, now: float) -> None:
        rate = (self.n - self._start) / max(now - self._t0, 1e-9)
        eta = (self.total - self.n) / rate if rate > 0 else float("nan")
        extra = "".join(f" {k} {v}" for k, v in self.postfix.items())
        print(f"{self.desc}: {self.n}/{self.total}{extra}, {rate:.1f}/s, ETA {eta:.0f}s",
              file=self.stream, flush=True)
        self._last, self._last_n = now, self.n

    def close(self) -> None:
        """Close the bar (nothing to do for plain lines)."""
        if self._bar is not None:
            self._bar.close()
