"""Progress bars on stderr for long reads, shown only to a person watching a terminal.

The library reports progress as ``progress(bytes_done, bytes_total)``; :class:`Bar` turns
that into a tqdm bar once the work is large enough to be worth one (``-q`` or a stderr that
is not a terminal turn it off). tqdm is imported only when a bar is actually drawn.
"""

from __future__ import annotations

import os
import sys
from typing import Any

#: Reads smaller than this finish too soon for a bar to help.
THRESHOLD_BYTES = 100 * 1000 * 1000


class Bar:
    """A ``progress(done, total)`` callback drawing one tqdm bar per run of work.

    Closing it erases the bar from the terminal; commands close it before printing their
    output, which shares the terminal when stdout and stderr both go to it.
    """

    def __init__(self, label: str, enabled: bool) -> None:
        self.label = label
        self.enabled = enabled
        self._bar: Any = None

    def __call__(self, done: int, total: int) -> None:
        if not self.enabled or total < THRESHOLD_BYTES:
            return
        bar = self._bar
        if bar is not None and (bar.total != total or done < bar.n):  # a new run (next prefix)
            self.close()
            bar = None
        if bar is None:
            try:
                from tqdm import tqdm
            except ImportError:  # no tqdm: no bar
                self.enabled = False
                return
            try:
                size = os.get_terminal_size(sys.stderr.fileno())
                sized = size.columns > 0 and size.lines > 0
            except (AttributeError, OSError, ValueError):
                sized = False
            bar = self._bar = tqdm(
                total=total,
                desc=self.label,
                unit="B",
                unit_scale=True,
                unit_divisor=1024,
                file=sys.stderr,
                leave=False,
                # tqdm draws nothing on a terminal that reports a 0x0 size (fresh ptys).
                dynamic_ncols=sized,
                ncols=None if sized else 80,
                nrows=None if sized else 24,
            )
        bar.update(done - bar.n)

    def close(self) -> None:
        if self._bar is not None:
            self._bar.close()
            self._bar = None

    def __enter__(self) -> Bar:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def progress_bar(label: str, quiet: bool) -> Bar:
    """A bar for ``label``, drawn only when not ``quiet`` and stderr is a terminal."""
    try:
        interactive = sys.stderr.isatty()
    except (AttributeError, ValueError):  # replaced or closed stderr
        interactive = False
    return Bar(label, enabled=not quiet and interactive)
