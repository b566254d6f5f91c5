"""The lake: Parquet segments under an atomically replaced manifest, read through DuckDB views (docs/lake.md).

- ``schema.py``      every table's columns and keys, declared once
- ``manifest.py``    the manifest's types (``Segment``, ``Snapshot``), the lake's file names, ``LakeError``
- ``files.py``       durable writes (fsync of each new file before its rename, of its folder after)
- ``store.py``       the writer and compaction locks, commits (``Lake.commit_model``, ``Lake.replace_derived``)
- ``views.py``       the views over a snapshot: in-process (sandboxed) and as ``LAKE/views.sql``
- ``compaction.py``  small segments folded into large ones, orphans of killed writers removed
- ``layout1.py``     the layout-1 lake (one file per model), read in place and migrated
- ``transfer.py``    import, merge, ``wwhub lake migrate``, info
- ``esd.py``         what of a layer's eigenvalues is kept (full, or the fitted tail and a quantile sketch)
"""

from .manifest import MANIFEST, VIEWS_SQL, LakeError
from .schema import IMPORTABLE_TABLES, KEYS, MODEL_TABLES, SCHEMAS, TABLES
from .store import DEFAULT_LAKE, Lake, lake_path
from .views import QUERIES_DIR, connect

__all__ = [
    "DEFAULT_LAKE",
    "IMPORTABLE_TABLES",
    "KEYS",
    "MANIFEST",
    "MODEL_TABLES",
    "QUERIES_DIR",
    "SCHEMAS",
    "TABLES",
    "VIEWS_SQL",
    "Lake",
    "LakeError",
    "connect",
    "lake_path",
]
