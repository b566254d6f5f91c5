"""The lake: Parquet segments under an atomically replaced manifest, read through DuckDB views (docs/lake.md).

- ``schema.py``      every table's columns and keys, declared once
- ``store.py``       the manifest, the writer lock, commits (``Lake.commit_model``, ``Lake.replace_derived``)
- ``views.py``       the views over a snapshot: in-process (sandboxed) and as ``LAKE/views.sql``
- ``compaction.py``  small segments folded into large ones, orphans of killed writers removed
- ``transfer.py``    import, merge, migration from the layout-1 lake, info
- ``esd.py``         what of a layer's eigenvalues is kept (full, or the fitted tail and a quantile sketch)
"""

from .schema import KEYS, MODEL_TABLES, SCHEMAS, TABLES
from .store import DEFAULT_LAKE, MANIFEST, VIEWS_SQL, Lake, LakeError, lake_path
from .views import QUERIES_DIR, connect

__all__ = [
    "DEFAULT_LAKE",
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
