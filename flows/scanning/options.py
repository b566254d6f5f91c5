"""What a scan is asked to do, as frozen plain values (they travel to Prefect tasks and Dask workers): where models
come from (:class:`SourceSpec`) and what is computed and kept (:class:`ScanOptions`)."""

from __future__ import annotations

from dataclasses import dataclass, field

from ..lake.esd import DEFAULT_ESD
from ..sources import CacheSource, HubSettings, HubSource, LocalSource

# An adapter's family, by default: its inferred or given family name with this suffix (docs/scan.md: adapters).
ADAPTER_FAMILY_SUFFIX = "-adapters"
# The family name of models listed without one (explicit repos, a bare query): each takes its inferred family.
INFERRED_FAMILY = "*"


@dataclass(frozen=True)
class SourceSpec:
    """How to reach a source, as plain values (so a Dask worker can rebuild it)."""

    kind: str = "hub"  # hub | local | cache
    location: str | None = None  # endpoint URL, local folder, or cache folder
    allow_pickle: bool = True
    hub: HubSettings | None = None  # timeouts and retries (None: WWHUB_HUB_* variables, else defaults)
    # A local base checkpoint that adapters are merged into (--merge-base): W + ΔW instead of ΔW alone.
    merge_base: str | None = None
    gguf_file: str | None = None  # the file to analyze in GGUF-only repos (--gguf-file); None: gguf_plan picks

    def open(self):
        if self.kind == "hub":
            return HubSource(
                endpoint=self.location, settings=self.hub, allow_pickle=self.allow_pickle, gguf_file=self.gguf_file
            )
        if self.kind == "local":
            return LocalSource(self.location, self.gguf_file, self.allow_pickle)
        if self.kind == "cache":
            return CacheSource(self.location, self.gguf_file, self.allow_pickle)
        raise ValueError(f"source kind {self.kind!r}: expected hub, local or cache")


# What a scan computes unless told otherwise. float32: as exact as the fits need (alphas within ~1e-5 of float64 on
# real layers, family ranks unchanged) and faster; `wwhub analyze` stays float64 (docs/formats.md "Precision").
SCAN_DEFAULTS = {"precision": "float32"}


@dataclass(frozen=True)
class ScanOptions:
    """Everything a scan is asked to do besides where models come from and where they go (plain values: they travel
    to Prefect tasks and Dask workers). ``analysis``: ww_core's options (``SCAN_DEFAULTS`` under them); ``esd``: what
    of the eigenvalues is kept (flows/lake/esd.py); ``layers``: the ``--layers`` selection ('' = all); ``base``: the
    base every model is compared with (None: the base_model its card names), unless not ``distances``;
    ``workers``: models scanned side by side on the local runner; ``layer_workers``: layers at once per model (None:
    the cores the models leave over); ``membership``: record each family's listing (families.yaml, named queries)."""

    analysis: dict = field(default_factory=dict)
    force: bool = False
    esd: str = DEFAULT_ESD
    layers: str = ""
    base: str | None = None
    distances: bool = True
    workers: int = 1
    layer_workers: int | None = None
    membership: bool = True

    @property
    def analysis_options(self) -> dict:
        return {**SCAN_DEFAULTS, **self.analysis}
