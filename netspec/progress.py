"""Progress of long work on stderr, drawn by tqdm: only on a terminal, only once the work has
lasted a moment, never with ``--quiet``, and gone when the work ends (no line left behind)."""

from __future__ import annotations

import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import TextIO

# Work that ends sooner than this never shows a bar.
SHOW_AFTER_SECONDS = 1.0

Advance = Callable[[int], object]


class Progress:
    """Where and whether to draw progress: ``stream`` (stderr by default) when it is a terminal
    and ``quiet`` is false."""

    def __init__(self, stream: TextIO | None = None, *, quiet: bool = False) -> None:
        self.stream = stream if stream is not None else sys.stderr
        self.enabled = not quiet and self.stream.isatty()

    @contextmanager
    def steps(self, label: str, total: int, unit: str = "it") -> Iterator[Advance]:
        """A bar of ``total`` steps labelled ``label``; call the yielded function with the
        number of steps just done. ``unit="B"`` counts bytes (scaled to KB, MB, …)."""
        if not self.enabled:
            yield _ignore
            return
        from tqdm import tqdm

        with tqdm(
            total=total,
            desc=label,
            file=self.stream,
            delay=SHOW_AFTER_SECONDS,
            leave=False,
            unit=unit,
            unit_scale=unit == "B",
            dynamic_ncols=True,
        ) as bar:
            yield bar.update


QUIET = Progress(quiet=True)


def _ignore(steps: int) -> None:
    """What a bar that is not drawn does with progress."""
