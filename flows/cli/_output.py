"""Write rows (dicts with the same keys) as a table, CSV, JSON or Parquet, to stdout or a file; and check output
paths before any work is done, so a typo costs one line, not a finished analysis."""

from __future__ import annotations

import csv
import datetime as dt
import io
import json
import os
import sys
from decimal import Decimal
from pathlib import Path

from ..lake.plain_values import plain_value as _plain
from ..lake.sql import first_line
from ._errors import CliError

FORMATS = ("table", "csv", "json", "parquet")


def check_output_file(out: str | None, option: str = "--out") -> Path | None:
    """``--out FILE``: its folder must exist and it must not itself be a folder. None when not given."""
    if out is None:
        return None
    path = Path(out)
    if path.is_dir():
        raise CliError(f"{option} {out}: is a folder; give a file name in it, e.g. {path / 'out.txt'}")
    _check_parent(path, out, option)
    return path


def check_output_folder(out: str, option: str = "--out") -> Path:
    """``--out FOLDER``: an existing folder, or a new one in an existing folder. Checked, not created: the writer
    creates it, so a command that fails before writing leaves nothing behind."""
    path = Path(out)
    if path.exists() and not path.is_dir():
        raise CliError(f"{option} {out}: is a file, expected a folder")
    if not path.exists():
        _check_parent(path, out, option)
    return path


def _check_parent(path: Path, out: str, option: str) -> None:
    parent = path.parent
    if not parent.exists():
        raise CliError(f"{option} {out}: folder {parent} does not exist (create it first, or fix the path)")
    if not parent.is_dir():
        raise CliError(f"{option} {out}: {parent} is a file, not a folder")


def unwritable_parquet(schema) -> CliError | None:
    """The error for the columns of an Arrow ``schema`` that Parquet cannot store (INTERVAL, UNION, or a LIST,
    STRUCT or MAP holding one), naming each with its type; None when every column can be written."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    refused = []
    for field in schema:
        try:
            pq.ParquetWriter(pa.BufferOutputStream(), pa.schema([field])).close()
        except pa.ArrowNotImplementedError:
            kind = next((k for k in ("INTERVAL", "UNION") if k.lower() in str(field.type)), "type")
            refused.append(f"{field.name} ({kind}: Arrow {field.type})")
    if not refused:
        return None
    return CliError(
        f"--format parquet: Parquet cannot store column(s) {', '.join(refused)}; cast them in the query, "
        "e.g. CAST(column AS VARCHAR), or use --format csv or json"
    )


def parquet_write_error(err: OSError, out: str) -> CliError:
    """A failed write of ``out`` in one line. pyarrow's errors name no file (and its message names the temporary
    file), so the path is ours and the reason is the errno's."""
    reason = os.strerror(err.errno) if err.errno else first_line(err)
    return CliError(f"--out {out}: cannot write it ({reason})")


def _cell(value) -> str:
    # Text, times and DECIMAL read best as DuckDB prints them (a DECIMAL with all its digits); the rest as in JSON.
    if isinstance(value, str | dt.date | dt.time | Decimal):
        return str(value)
    value = _plain(value)
    if value is None:
        return ""
    if isinstance(value, float):
        return f"{value:.4g}" if abs(value) < 1e5 else f"{value:.3e}"
    return json.dumps(value) if isinstance(value, list | dict) else str(value)


def render_table(rows: list[dict], columns: list[str] | None = None) -> str:
    if not rows:
        return "(no rows)\n"
    columns = columns or list(rows[0])
    cells = [[_cell(row.get(c)) for c in columns] for row in rows]
    widths = [max(len(c), *(len(line[i]) for line in cells)) for i, c in enumerate(columns)]
    out = io.StringIO()
    out.write("  ".join(c.ljust(w) for c, w in zip(columns, widths, strict=True)).rstrip() + "\n")
    out.write("  ".join("-" * w for w in widths) + "\n")
    for line in cells:
        out.write("  ".join(v.ljust(w) for v, w in zip(line, widths, strict=True)).rstrip() + "\n")
    return out.getvalue()


def render_csv(rows: list[dict], columns: list[str] | None = None) -> str:
    """CSV with a header line; ``columns`` give the header when there are no rows (nothing at all without them)."""
    out = io.StringIO()
    fieldnames = list(rows[0]) if rows else columns
    if fieldnames:
        writer = csv.DictWriter(out, fieldnames=fieldnames, lineterminator="\n")
        writer.writeheader()
        for row in rows:
            writer.writerow({k: _csv_value(v) for k, v in row.items()})
    return out.getvalue()


def _csv_value(value):
    """A CSV field: as in JSON (null empty, a LIST or STRUCT its JSON text), but a DECIMAL keeps all its digits (CSV
    has no number type to fit)."""
    if isinstance(value, Decimal):
        return value
    value = _plain(value)
    if isinstance(value, list | dict):
        return json.dumps(value)
    return "" if value is None else value


def render_json(rows: list[dict]) -> str:
    return json.dumps([{k: _plain(v) for k, v in row.items()} for row in rows], indent=1) + "\n"


def write_rows(
    rows: list[dict],
    fmt: str,
    out: str | None,
    table_columns: list[str] | None = None,
    csv_columns: list[str] | None = None,
) -> None:
    """Write ``rows`` in ``fmt``; Parquet needs ``out``. Text goes to stdout when ``out`` is None. ``csv_columns``:
    the CSV header of no rows."""
    if fmt not in FORMATS:
        raise CliError(f"--format {fmt!r}: expected one of {', '.join(FORMATS)}")
    if fmt == "parquet":
        if not out:
            raise CliError("--format parquet needs --out FILE")
        import pyarrow as pa
        import pyarrow.parquet as pq

        try:
            pq.write_table(pa.Table.from_pylist([{k: _plain(v) for k, v in r.items()} for r in rows]), out)
        except OSError as err:
            raise parquet_write_error(err, out) from None
        return
    text = {
        "table": lambda: render_table(rows, table_columns),
        "csv": lambda: render_csv(rows, csv_columns),
        "json": lambda: render_json(rows),
    }[fmt]()
    if out:
        Path(out).write_text(text)
    else:
        sys.stdout.write(text)
