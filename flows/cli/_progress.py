"""Progress bars on stderr (tqdm); silent when stderr is not a terminal, so logs and pipes stay clean."""

from __future__ import annotations

from tqdm import tqdm  # the terminal bar: a CLI never runs in a notebook (tqdm.auto would import asyncio)


def progress_bar(total: int | None, desc: str, unit: str = "it"):
    return tqdm(total=total, desc=desc, unit=unit, disable=None, leave=False, dynamic_ncols=True)
