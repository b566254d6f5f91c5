"""Progress bars on stderr (tqdm); silent when stderr is not a terminal, so logs and pipes stay clean."""

from __future__ import annotations

import sys


class _SilentBar:
    """A bar where stderr is not a terminal (what tqdm's ``disable=None`` does), without importing tqdm: its
    import (importlib.metadata, email) costs a one-model command ~20 ms of start-up for a bar nobody sees."""

    def update(self, n: int = 1) -> None:
        pass

    def reset(self, total: int | None = None) -> None:
        pass

    def set_postfix_str(self, s: str = "", refresh: bool = True) -> None:
        pass

    def close(self) -> None:
        pass

    def __enter__(self) -> _SilentBar:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def progress_bar(total: int | None, desc: str, unit: str = "it"):
    if not sys.stderr.isatty():
        return _SilentBar()
    from tqdm import tqdm  # the terminal bar: a CLI never runs in a notebook (tqdm.auto would import asyncio)

    return tqdm(total=total, desc=desc, unit=unit, leave=False, dynamic_ncols=True)
