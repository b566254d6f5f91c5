"""The lake as a Hugging Face dataset folder (``wwhub lake export``): docs/report.md.

- ``tables.py``   the configs, ``ExportOptions`` and the record of an export
- ``export.py``   ``export_dataset(lake, out, ExportOptions)``: one config per table, Parquet under data/
- ``card.py``     the dataset card README.md (configs in its front matter; columns, provenance, how to query)
- ``columns.py``  what each exported column means
"""

from .export import export_dataset
from .tables import CONFIGS, DatasetExport, ExportOptions

__all__ = ["CONFIGS", "DatasetExport", "ExportOptions", "export_dataset"]
