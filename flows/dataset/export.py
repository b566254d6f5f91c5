"""``wwhub lake export DIR``: the lake as a Hugging Face dataset folder (docs/report.md "The lake as a dataset").

One config per table, each a folder of Parquet files under ``data/`` (``train-00000-of-00003.parquet`` ...), and a
dataset card ``README.md`` whose front matter lists the configs. Rows are read through queries/export_*.sql (and the
``scans``, ``leaderboard`` and ``correlations`` views) and streamed to Parquet a batch at a time, so a table larger
than memory passes through; a file is closed once it reaches ``max_file_bytes`` (it can pass the bound by one batch
of ``ExportOptions.batch_rows`` rows).
"""

from __future__ import annotations

import datetime as dt
import os
import shutil
import tempfile
from pathlib import Path

from .. import __version__
from ..lake import Lake, lake_path
from ..lake.sql import stream_query
from .card import dataset_card
from .tables import CONFIGS, SPLIT, Config, DatasetExport, ExportOptions, TableExport


def _write_parquet(reader, folder: Path, max_file_bytes: int) -> tuple[int, list[Path]]:
    """Write a record-batch reader as Parquet files of about ``max_file_bytes`` each; (rows, files) with the files
    named as the Hub names shards. No rows, no file: `datasets` cannot load a config whose split is empty."""
    import pyarrow.parquet as pq

    if folder.exists():
        shutil.rmtree(folder)  # a retried read starts over
    folder.mkdir(parents=True)
    parts: list[Path] = []
    rows = 0
    writer = sink = None
    for batch in reader:
        if writer is None:
            parts.append(folder / f"part-{len(parts):05d}.parquet")
            sink = open(parts[-1], "wb")  # noqa: SIM115 - closed below, after the writer
            writer = pq.ParquetWriter(sink, reader.schema, compression="zstd")
        writer.write_batch(batch)
        rows += batch.num_rows
        if sink.tell() >= max_file_bytes:
            writer.close()
            sink.close()
            writer = None
    if writer is not None:
        writer.close()
        sink.close()
    if not parts:
        folder.rmdir()
    named = []
    for i, part in enumerate(parts):
        target = folder / f"{SPLIT}-{i:05d}-of-{len(parts):05d}.parquet"
        part.rename(target)
        named.append(target)
    return rows, named


def _export_table(root: Path, config: Config, staging: Path, options: ExportOptions) -> TableExport:
    folder = staging / "data" / config.name
    variables = {"latest_only": options.latest_only, "metric": options.metric}

    def consume(reader):
        rows, files = _write_parquet(reader, folder, options.max_file_bytes)
        return rows, files, [(f.name, str(f.type)) for f in reader.schema]

    rows, files, columns = stream_query(root, config.query, consume, variables, options.batch_rows)
    return TableExport(
        config=config,
        rows=rows,
        files=[str(f.relative_to(staging)) for f in files],
        columns=columns,
        bytes=sum(f.stat().st_size for f in files),
    )


def _install(staging: Path, out: Path) -> None:
    """Replace the previous export's README.md and data/ in ``out``; anything else there (a clone's .git) stays."""
    out.mkdir(parents=True, exist_ok=True)
    for name in ("data", "README.md"):
        target = out / name
        if target.is_dir() and not target.is_symlink():
            shutil.rmtree(target)
        elif target.exists() or target.is_symlink():
            target.unlink()
        os.replace(staging / name, target)


def export_dataset(lake: str | Path | None, out: str | Path, options: ExportOptions | None = None) -> DatasetExport:
    """Export every config of ``CONFIGS`` from ``lake`` into ``out`` with its dataset card."""

    options = options or ExportOptions()
    root = lake_path(lake)
    out = Path(out)
    result = DatasetExport(out, options, manifest_version=Lake.open(root).snapshot().version)
    result.exported_at = dt.datetime.now(dt.UTC).strftime("%Y-%m-%d %H:%M UTC")
    out.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=".wwhub-export-", dir=out))
    try:
        for config in CONFIGS:
            result.tables.append(_export_table(root, config, staging, options))
        (staging / "README.md").write_text(dataset_card(result, staging, __version__))
        _install(staging, out)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    return result
