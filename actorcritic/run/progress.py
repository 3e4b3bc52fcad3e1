"""Console progress: a bar on a terminal, a plain line per interval otherwise, or nothing."""

from __future__ import annotations

import sys
import time


class Progress:
    def __init__(self, total: int, quiet: bool = False, interval: float = 10.0,
                 start: int = 0, stream=None):
        self.total = total
        self.quiet = quiet
        self.interval = interval
        self.stream = stream or sys.stdout
        self.bar = None
        self._last_line = 0.0
        if not quiet and self.stream.isatty():
            from tqdm import tqdm

            self.bar = tqdm(total=total, initial=start, unit="step", unit_scale=True,
                            dynamic_ncols=True, file=self.stream)

    def update(self, env_steps: int, sps: float, mean_return: float | None,
               extra: str = "") -> None:
        if self.quiet:
            return
        ret = "n/a" if mean_return is None else f"{mean_return:.1f}"
        if self.bar is not None:
            self.bar.n = min(env_steps, self.total)
            self.bar.set_postfix_str(f"sps={sps:,.0f} ret100={ret}{extra}", refresh=False)
            self.bar.refresh()
            return
        now = time.monotonic()
        if now - self._last_line >= self.interval:
            self._last_line = now
            left = max(self.total - env_steps, 0) / sps if sps > 0 else float("nan")
            print(f"steps {env_steps}/{self.total} | sps {sps:,.0f} | mean_return_100 {ret}"
                  f"{extra} | eta {left:,.0f}s", file=self.stream, flush=True)

    def message(self, text: str) -> None:
        if self.quiet:
            return
        if self.bar is not None:
            self.bar.write(text, file=self.stream)
        else:
            print(text, file=self.stream, flush=True)

    def close(self) -> None:
        if self.bar is not None:
            self.bar.close()
            self.bar = None
