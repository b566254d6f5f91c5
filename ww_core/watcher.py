"""``WeightWatcher``: weightwatcher 0.7.7's notebook API over ww_core (``from ww_core import WeightWatcher``).

Every entry point and keyword of 0.7.7 is accepted (docs/weightwatcher.md lists them with what differs and why).
Layers are numbered as 0.7.7 numbers them, so a notebook's ``layers=[12, 14]`` selects the same layers: a
``torch.nn.Module`` counts every module of ``named_modules()`` from ``start_ids`` (default 0, the root module
included), a state dict every ``*.weight`` key from ``start_ids`` or 1. A model read from files (a folder, a weight
file, a PEFT adapter, a GGUF file, a hub repo id: :mod:`ww_core.sources`) numbers its logical matrices in depth
order from ``start_ids``. ``name`` and ``longname`` are 0.7.7's (a module's last name and its path; a state dict's
key without ``.weight``); ``tensor`` is the stored tensor's name.

pandas is imported when a frame is built.
"""

from __future__ import annotations

import dataclasses
import logging
import math
import numbers
import os
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, fields

import numpy as np

from .analysis import AnalysisOptions, _analyze_tensor, _blas_limit, analyze_layer, analyze_model
from .crosslayer import StackedGram, intra_product, stacked_matrix_rows
from .describe import STATUS_FAIL, STATUS_SKIP, describe_layer
from .distances import layer_distance, not_compared_note
from .eigen import gram_matrix
from .matrices import (
    LAYER_CONV1D,
    LAYER_CONV2D,
    LAYER_DENSE,
    LAYER_EMBEDDING,
    LAYER_LM_HEAD,
    LayerMatrices,
    NotAWeightMatrix,
    empty_tensor_reason,
    is_float_dtype,
    kernel_slices,
    layer_type_for,
    stored_array,
    tensor_dims,
)
from .records import FIT_FAILED, FIT_OK, FIT_SKIPPED, LayerDistance, LayerMetrics, summarize
from .sources import ModelSource, SkippedMatrix, open_source, plotter
from .vectors import vector_metric_rows

logger = logging.getLogger(__name__)

DEFAULT_SAVEDIR = "ww-img"
# What weightwatcher's summary averages.
SUMMARY_METRICS = (
    "log_norm",
    "alpha",
    "alpha_weighted",
    "log_alpha_norm",
    "log_spectral_norm",
    "stable_rank",
    "mp_softrank",
)
_WW_STATUS = {FIT_OK: "success", FIT_FAILED: "failed", FIT_SKIPPED: "skipped"}
_OPTION_NAMES = {f.name for f in fields(AnalysisOptions)}
# The layer types layers= selects by; _WW_LAYER_TYPES are weightwatcher 0.7.7's (which also reads 'norm', a layer
# type it never analyzes), the ones its get_ESD / get_Weights read as a type filter (_layer_named).
_LAYER_TYPE_FILTERS = (LAYER_DENSE, LAYER_CONV1D, LAYER_CONV2D, LAYER_EMBEDDING, LAYER_LM_HEAD)
_WW_LAYER_TYPES = (LAYER_DENSE, LAYER_CONV1D, LAYER_CONV2D, LAYER_EMBEDDING)
# distances()'s frame: 0.7.7's columns in its order (layer_id becomes the index), then ours.
_DISTANCES_COLUMNS = [
    "method",
    "layer_id",
    "name",
    "delta_W",
    "delta_b",
    "M",
    "N",
    "b_shape",
    "longname",
    "tensor",
    "fit_status",
    "reason",
]


@dataclass
class Layer:
    """One weight matrix of the model, as weightwatcher names and numbers it."""

    layer_id: int
    name: str
    longname: str
    tensor: str
    layer_type: str
    shape: tuple[int, ...]
    source_id: int | None = None  # a file-read model's own id (depth order)
    skip_reason: str | None = None
    fail_reason: str | None = None  # the reader knows its analysis fails (SourceLayer.fail_reason)


def _is_torch_module(model) -> bool:
    return hasattr(model, "named_modules") and hasattr(model, "state_dict")


def _longname(key: str) -> str:
    return key[: -len(".weight")] if key.endswith(".weight") else key


class _InMemory:
    """An ``nn.Module`` or a state dict (or ``(name, tensor)`` pairs): layers numbered as weightwatcher does."""

    def __init__(self, model, start_ids: int):
        self.model = model
        self.label = type(model).__name__ if _is_torch_module(model) else "model"
        self.tensors_by_name: dict[str, object] = {}
        self.biases: dict[str, object] = {}
        self.layers: list[Layer] = []
        if _is_torch_module(model):
            self._modules(model, start_ids)
        else:
            state = model if isinstance(model, Mapping) else dict(model)
            if "state_dict" in state and isinstance(state["state_dict"], Mapping):
                state = state["state_dict"]
            self._state_dict(state, start_ids or 1)

    def _modules(self, model, start: int) -> None:
        for index, (path, module) in enumerate(model.named_modules()):
            weight = getattr(module, "weight", None)
            if weight is None or getattr(weight, "ndim", 0) < 2 or "norm" in type(module).__name__.lower():
                continue
            key = f"{path}.weight" if path else "weight"
            self.tensors_by_name[key] = weight.detach()
            bias = getattr(module, "bias", None)
            if bias is not None:
                self.biases[key] = bias.detach()
            name = path.split(".")[-1] if path else type(module).__name__
            layer_type = layer_type_for(key, weight.ndim)
            self.layers.append(Layer(start + index, name, path, key, layer_type, tuple(weight.shape)))

    def _state_dict(self, state: Mapping, start: int) -> None:
        keys = list(state)
        has_weight = any(key.endswith(".weight") for key in keys)
        layer_id = start
        for key in keys:
            if has_weight and not key.endswith(".weight"):
                continue
            tensor = state[key]
            layer_id += 1
            shape = tuple(int(d) for d in getattr(tensor, "shape", ()))
            if len(shape) < 2:
                continue
            name = _longname(key)
            self.tensors_by_name[key] = tensor
            if f"{name}.bias" in state:
                self.biases[key] = state[f"{name}.bias"]
            self.layers.append(Layer(layer_id - 1, name, name, key, layer_type_for(key, len(shape)), shape))

    def tensors(self, names) -> Iterator[tuple[str, object]]:
        for layer in self.layers:
            if names is None or layer.tensor in names:
                yield layer.tensor, self.tensors_by_name[layer.tensor]

    def replace(self, key: str, array: np.ndarray) -> None:
        """Put a transformed weight back, in the model's own dtype and type (in place, as weightwatcher does)."""
        old = self.tensors_by_name[key]
        if hasattr(old, "detach"):
            import torch

            new = torch.from_numpy(np.ascontiguousarray(array)).to(old.dtype)
            if _is_torch_module(self.model):
                old.copy_(new)
                return
            self.model[key] = new
        else:
            self.model[key] = np.asarray(array).astype(np.asarray(old).dtype)
        self.tensors_by_name[key] = self.model[key] if isinstance(self.model, dict) else array


class _FromFiles:
    """A model read through the installed reader (:mod:`ww_core.sources`)."""

    def __init__(self, source: ModelSource, start_ids: int):
        self.source = source
        self.model = source
        self.label = source.label
        self.biases: dict = {}
        self.layers = [
            Layer(
                layer.layer_id + start_ids,
                _longname(layer.name),
                _longname(layer.name),
                layer.name,
                layer_type_for(layer.name, len(layer.shape)),
                tuple(layer.shape),
                source_id=layer.layer_id,
                skip_reason=layer.skip_reason,
                fail_reason=layer.fail_reason,
            )
            for layer in source.layers()
        ]

    def tensors(self, names) -> Iterator[tuple[str, object]]:
        """The source's matrices. A layer it finds it cannot decode only as it reads it (a SkippedMatrix) gets its
        ``skip_reason`` here, so that every caller treats it as a layer the plan skips."""
        by_tensor = {layer.tensor: layer for layer in self.layers}
        for name, tensor in self.source.tensors(names):
            if isinstance(tensor, SkippedMatrix):
                by_tensor[name].skip_reason = tensor.reason
            else:
                yield name, tensor


def _open(model, start_ids: int):
    if model is None:
        raise ValueError("no model: pass model= to WeightWatcher(...) or to this call")
    if isinstance(model, str | os.PathLike):
        return _FromFiles(open_source(str(model)), start_ids)
    return _InMemory(model, start_ids)


def select_layers(layers: list[Layer], filters) -> list[Layer]:
    """weightwatcher's ``layers=`` filter: ids (all >= 0 keep, all < 0 exclude), layer types, names (all kept, or
    all '-'-prefixed and excluded). Names match ``name``, ``longname`` or the tensor name."""
    if filters is None or (not isinstance(filters, list | tuple | np.ndarray | numbers.Integral | str)):
        return layers
    filters = [filters] if isinstance(filters, numbers.Integral | str) else list(filters)
    if not filters:
        return layers
    ids = [int(f) for f in filters if isinstance(f, numbers.Integral)]
    types = {f for f in filters if isinstance(f, str) and f in _LAYER_TYPE_FILTERS}
    names = [f for f in filters if isinstance(f, str) and f not in types]
    if ids and min(ids) < 0 < max(ids):
        raise ValueError(f"layers={ids}: layer ids must be all >= 0 (keep) or all < 0 (skip)")
    excluded_names = [n[1:] for n in names if n.startswith("-")]
    if excluded_names and len(excluded_names) != len(names):
        raise ValueError(f"layers={names}: names must be all kept or all excluded ('-name')")

    def keep(layer: Layer) -> bool:
        if types and layer.layer_type not in types:
            return False
        if ids and (layer.layer_id not in ids if min(ids) >= 0 else -layer.layer_id in ids):
            return False
        aliases = {layer.name, layer.longname, layer.tensor}
        if excluded_names:
            return not aliases & set(excluded_names)
        return not names or bool(aliases & set(names))

    return [layer for layer in layers if keep(layer)]


def _layer_named(layers: list[Layer], layer: int | str) -> Layer | None:
    """The layer that get_ESD / get_Weights read for ``layer=``, resolved as weightwatcher 0.7.7 resolves it; None
    when it names no layer.

    An int is a layer id (a negative one names none: to ``layers=`` it means "all but"). A str must first be a
    layer's name (ours also takes its longname or tensor name), as 0.7.7 checks it against describe()'s names before
    filtering; a layer type passes that check only when some layer is named after it (BERT's ``output.dense``), and
    then, as in 0.7.7, it selects the first layer of that type rather than the layer of that name."""
    if isinstance(layer, numbers.Integral):
        return next((x for x in layers if x.layer_id == layer), None)
    named = [x for x in layers if layer in (x.name, x.longname, x.tensor)]
    if named and layer in _WW_LAYER_TYPES:
        return next(iter(select_layers(layers, [layer])), None)
    return named[0] if named else None


def _options(kwargs: dict) -> dict:
    """ww_core's analysis options from weightwatcher's keywords (the rest are handled by the caller)."""
    options = {k: v for k, v in kwargs.items() if k in _OPTION_NAMES}
    fit = {"power_law": "PL", "truncated_power_law": "TPL"}.get(options.get("fit", "PL"), options.get("fit", "PL"))
    options["fit"] = fit
    if options.get("fix_fingers") is False:
        options["fix_fingers"] = None
    if options.get("xmax") is False:
        options["xmax"] = None
    if kwargs.get("ERG"):
        options["detX"] = True
    if kwargs.get("ww2x"):
        options["pool"] = False
    if options.get("max_evals") in (0, -1):
        options["max_evals"] = None
    return options


def _frame_row(row: LayerMetrics, layer: Layer) -> dict:
    out = row.as_row()
    out.update(layer_id=row.layer_id, name=layer.name if row.name == layer.tensor else row.name)
    out["longname"] = layer.longname if row.name == layer.tensor else row.longname
    out["tensor"] = layer.tensor
    out["status"] = _WW_STATUS[row.fit_status]
    out["max_rand_eval"] = row.rand_lambda_max
    return out


class WeightWatcher:
    """weightwatcher 0.7.7's ``WeightWatcher`` (see the module docstring). ``framework`` is accepted and unused: the
    model's type says what it is. ``log_level`` sets the level of ww_core's loggers, as 0.7.7 sets its own's."""

    def __init__(self, model=None, framework=None, base_model=None, log_level=None):
        if log_level:
            logging.getLogger("ww_core").setLevel(log_level)
        self.model = model
        self.base_model = base_model
        self.framework = framework
        self.details = None
        self.layers: list[LayerMetrics] = []

    def _model(self, model):
        if model is not None:
            self.model = model
        return self.model

    # -- analyze -------------------------------------------------------------------------------------------------

    def analyze(
        self,
        model=None,
        layers=(),
        min_evals=8,
        max_evals=15000,
        min_size=None,
        max_size=None,
        max_N=50000,
        glorot_fix=False,
        plot=False,
        randomize=False,
        savefig=DEFAULT_SAVEDIR,
        mp_fit=False,
        conv2d_norm=True,
        ww2x=False,
        pool=True,
        conv2d_fft=False,
        fft=False,
        deltas=False,
        intra=False,
        vectors=False,
        channels=None,
        stacked=False,
        fix_fingers=False,
        xmin_max=None,
        max_fingers=10,
        finger_thresh=1.0,
        fit="PL",
        sparsify=True,
        detX=False,
        ERG=False,
        svd_method="fast",
        tolerance=1e-6,
        start_ids=0,
        pl_package="ww",
        xmax=None,
        base_model=None,
        peft=False,
        inverse=False,
        **ours,
    ):
        """Analyze every layer; returns the details DataFrame (one row per layer, weightwatcher's columns and ours).

        ``min_size``, ``max_size`` (ignored by 0.7.7 too), ``max_N`` (we never skip a layer for its N: its Gram
        matrix is M x M) and ``svd_method`` (eigenvalues always come from the M x M Gram matrix in float64) are
        accepted and have no effect. ``ours``: ww_core's own options (``seed``, ``precision``, ``device``,
        ``workers``, ...).
        """
        kwargs = dict(locals())
        for key in ("self", "model", "ours", "kwargs"):
            kwargs.pop(key, None)
        kwargs.update(ours)
        workers = kwargs.pop("workers", 1)
        opened = _open(self._model(model), start_ids)
        options = _options(kwargs)
        plotting = bool(plot)
        if plotting:
            options["keep_evals"] = True
        chosen = select_layers(opened.layers, layers)
        base = base_model if base_model is not None else self.base_model
        if intra:
            rows = self._intra(opened, chosen, options, sparsify)
        elif stacked:
            rows = self._stacked(opened, chosen, options)
        elif base is not None:
            rows = self._deltas(opened, _open(base, start_ids), chosen, options)
        elif peft:
            rows = self._peft(opened, chosen, options, peft)
        else:
            rows = self._analyze(opened, chosen, options, workers)
        self.layers = rows
        self.details = self._frame(rows, opened.layers)
        if plotting:
            self._plot(rows, opened.label, savefig, options, deltas)
        return self.details

    def _analyze(self, opened, chosen: list[Layer], options: dict, workers: int = 1) -> list[LayerMetrics]:
        by_tensor = {layer.tensor: layer for layer in chosen}
        if isinstance(opened, _FromFiles):
            rows = opened.source.analyze(options, set(by_tensor), workers)
            offset = {layer.source_id: layer.layer_id for layer in chosen}
            for row in rows:
                row.layer_id = offset.get(row.layer_id, row.layer_id)
            return rows
        ids = {layer.tensor: layer.layer_id for layer in chosen}
        return list(analyze_model(opened.tensors(set(by_tensor)), layer_ids=ids, workers=workers, **options))

    def _intra(self, opened, chosen: list[Layer], options: dict, sparsify: bool) -> list[LayerMetrics]:
        if options.get("randomize") or options.get("vectors"):
            raise ValueError("intra=True cannot be combined with randomize or vectors (as in weightwatcher)")
        opts = AnalysisOptions.from_kwargs(**options)
        rows, previous = [], None
        supported = {layer.tensor: layer for layer in chosen if layer.skip_reason is None}
        rng = np.random.default_rng([opts.seed, 1])
        with _blas_limit(opts):
            for name, tensor in opened.tensors(set(supported)):
                layer = supported[name]
                matrix = _first_matrix(tensor, opts.channels)
                if not _analyzable(layer, opts):
                    continue
                if previous is not None:
                    product = intra_product(previous[1], matrix, sparsify, rng)
                    if product is not None:
                        rank = min(*previous[1].shape, *matrix.shape)
                        rows.append(self._intra_row(previous[0], layer, product, rank, opts))
                previous = (layer, matrix)
        return rows

    @staticmethod
    def _intra_row(first: Layer, second: Layer, product: np.ndarray, rank: int, opts: AnalysisOptions) -> LayerMetrics:
        """The row of one product: its ``rank`` largest singular values (the product of an a x d and a d x b matrix
        has at most min(a, d, b) nonzero ones; weightwatcher keeps as many as the second layer has)."""
        N, M = max(product.shape), min(product.shape)
        row = LayerMetrics(
            layer_id=second.layer_id,
            name=f"{first.layer_id} X {second.layer_id} ",
            layer_type=second.layer_type,
            longname=second.longname,
            N=N,
            M=M,
            rf=tensor_dims(second.shape)[2],
            Xflag=True,
        )
        # weightwatcher normalizes the product like the second layer: by sqrt(1/2) when it is a Conv2D.
        scale = math.sqrt(0.5) if len(second.shape) == 4 and opts.conv2d_norm and not opts.glorot_fix else 1.0
        gram = gram_matrix(product, np.float64)
        layer = LayerMatrices(second.layer_type, [], N, min(rank, M), 1, scale=scale, singular_values=True, gram=gram)
        # The size limits applied to the two layers (as in weightwatcher), not to their product.
        return analyze_layer(row, layer, dataclasses.replace(opts, min_evals=2, max_evals=None))

    def _stacked(self, opened, chosen: list[Layer], options: dict) -> list[LayerMetrics]:
        opts = AnalysisOptions.from_kwargs(**options)
        stack = StackedGram()
        supported = {layer.tensor: layer for layer in chosen if layer.skip_reason is None}
        first = None
        for name, tensor in opened.tensors(set(supported)):
            if _analyzable(supported[name], opts):
                first = first or supported[name]
                stack.add(stacked_matrix_rows(tensor, opts.channels))
        if first is None:
            raise ValueError("stacked=True: no layer to stack")
        gram, N, M = stack.result()
        row = LayerMetrics(layer_id=0, name="Stacked Layer", layer_type="stacked", longname=first.longname, N=N, M=M)
        with _blas_limit(opts):
            return [analyze_layer(row, LayerMatrices("stacked", [], N, M, 1, gram=gram), opts)]

    def _deltas(self, opened, base, chosen: list[Layer], options: dict) -> list[LayerMetrics]:
        """``base_model``: every layer's analysis of ``dW = W - W_base`` (the base's layer of the same tensor name)."""
        opts = AnalysisOptions.from_kwargs(**options)
        base_layers = {layer.tensor: layer for layer in base.layers}
        wanted = {layer.tensor for layer in chosen if layer.tensor in base_layers}
        base_arrays = dict(base.tensors(wanted))
        rows = []
        by_tensor = {layer.tensor: layer for layer in chosen}
        with _blas_limit(opts):
            for name, tensor in opened.tensors(set(by_tensor)):
                layer = by_tensor[name]
                if name not in base_arrays:
                    # A layer the base has but gives no matrix for (skipped, failed, undecodable) says why.
                    reason = "not in base_model"
                    if name in base_layers:
                        reason = f"base_model has no weight matrix for it: {_no_matrix(base_layers[name])}"
                    rows.append(
                        LayerMetrics(
                            layer.layer_id,
                            name,
                            layer.layer_type,
                            longname=layer.longname,
                            fit_status=FIT_SKIPPED,
                            reason=reason,
                        )
                    )
                    continue
                delta = _difference(tensor, base_arrays.pop(name))
                if delta is None:
                    rows.append(
                        LayerMetrics(
                            layer.layer_id,
                            name,
                            layer.layer_type,
                            longname=layer.longname,
                            fit_status=FIT_FAILED,
                            reason="shape differs from the base_model's",
                        )
                    )
                    continue
                rows.extend(_analyze_tensor(layer.layer_id, name, delta, opts))
        return rows

    def _peft(self, opened, chosen: list[Layer], options: dict, peft) -> list[LayerMetrics]:
        """weightwatcher's in-memory ``peft``: each ``lora_A``/``lora_B`` pair analyzed as its product ``B A``
        (named ``lora_BA``), the other layers left out; ``peft='with_base'`` also analyzes ``W + B A``."""
        opts = AnalysisOptions.from_kwargs(**options)
        supported = {layer.tensor: layer for layer in chosen}
        rows, last_plain, pending_a = [], None, None
        with _blas_limit(opts):
            for name, tensor in opened.tensors(set(supported)):
                layer = supported[name]
                if "lora_A" in name:
                    pending_a = (layer, _as_float(tensor))
                elif "lora_B" in name and pending_a is not None:
                    a = pending_a[1]
                    b = _as_float(tensor)
                    update = b @ a if b.shape[1] == a.shape[0] else b.T @ a.T
                    ba_name = pending_a[0].tensor.replace("lora_A", "lora_BA")
                    for row in _analyze_tensor(pending_a[0].layer_id, ba_name, update, opts):
                        row.peft = True
                        rows.append(row)
                    if (
                        peft == "with_base"
                        and last_plain is not None
                        and last_plain[1].shape in (update.shape, update.T.shape)
                    ):
                        merged = last_plain[1] + (update if last_plain[1].shape == update.shape else update.T)
                        for row in _analyze_tensor(
                            layer.layer_id, name.replace("lora_B", "lora_W_plus_AB"), merged, opts
                        ):
                            row.peft = True
                            rows.append(row)
                    pending_a = None
                else:
                    last_plain = (layer, _as_float(tensor))
        return rows

    def _frame(self, rows: list[LayerMetrics], layers: list[Layer]):
        import pandas as pd

        by_tensor = {layer.tensor: layer for layer in layers}
        records = []
        for row in rows:
            layer = by_tensor.get(row.name) or Layer(
                row.layer_id, row.name, row.longname or row.name, row.name, row.layer_type, ()
            )
            records.append(_frame_row(row, layer))
        frame = pd.DataFrame(records)
        if len(frame):
            lead = ["layer_id", "name"]
            frame = frame[lead + [c for c in frame.columns if c not in lead]]
        return frame

    def _plot(self, rows, label, savefig, options, deltas) -> None:
        if not savefig:
            return
        folder = DEFAULT_SAVEDIR if savefig is True else str(savefig)
        plotter()(
            rows,
            folder,
            label,
            randomize=bool(options.get("randomize")),
            detX=bool(options.get("detX")),
            vectors=bool(options.get("vectors")),
            deltas=bool(deltas),
        )

    # -- the rest of weightwatcher's entry points ----------------------------------------------------------------

    def get_details(self):
        """The details frame of the last ``analyze()``."""
        return self.details

    def get_summary(self, details=None) -> dict:
        """Means of weightwatcher's summary metrics over the analyzed (``ok``) layers of ``details`` (default: the
        last ``analyze()``), plus our counts when no frame is given. A failed fit is NaN, never -1, so it is not
        averaged."""
        if details is None:
            summary = summarize(self.layers).as_dict()
            frame = self.details
        else:
            summary, frame = {}, details
        out = {}
        if frame is not None and len(frame):
            ok = frame[frame["status"] == "success"] if "status" in frame else frame
            for metric in SUMMARY_METRICS:
                if metric in ok and ok[metric].notna().any():
                    out[metric] = float(ok[metric].mean())
        out.update({k: v for k, v in summary.items() if k not in SUMMARY_METRICS})
        return out

    def describe(
        self,
        model=None,
        layers=(),
        min_evals=8,
        max_evals=15000,
        min_size=None,
        max_size=None,
        max_N=50000,
        glorot_fix=False,
        savefig=DEFAULT_SAVEDIR,
        ww2x=False,
        pool=True,
        conv2d_fft=False,
        fft=False,
        conv2d_norm=True,
        intra=False,
        channels=None,
        stacked=False,
        start_ids=0,
        base_model=None,
        peft=False,
    ):
        """The layers an analysis would cover, from shapes alone (no eigenvalue computed)."""
        import pandas as pd

        opened = _open(self._model(model), start_ids)
        opts = AnalysisOptions.from_kwargs(
            **_options(dict(min_evals=min_evals, max_evals=max_evals, pool=pool and not ww2x, channels=channels))
        )
        records = []
        for layer in select_layers(opened.layers, layers):
            dtype = _dtype_name(opened, layer)
            row = describe_layer(layer.layer_id, layer.tensor, layer.shape, dtype, dtype != "int", opts).as_row()
            row.update(name=layer.name, longname=layer.longname, tensor=layer.tensor)
            row["Q"] = row["N"] / row["M"] if row["M"] else math.nan
            if layer.skip_reason:
                row.update(status=STATUS_SKIP, reason=layer.skip_reason)
            elif layer.fail_reason:
                row.update(status=STATUS_FAIL, reason=layer.fail_reason)
            records.append(row)
        return pd.DataFrame(records)

    def _one_layer(self, model, layer) -> tuple[Layer, object] | None:
        """The layer ``layer`` names (:func:`_layer_named`) and its weight tensor; None, with the reason logged as an
        error, when it names no layer (0.7.7 logs one and returns ``[]``)."""
        # 0.7.7 drops a filter it cannot read (a list, None) and returns the first layer's: here it is an error.
        if not isinstance(layer, numbers.Integral | str):
            raise TypeError(
                f"layer={layer!r}: pass one layer's id (an int) or its name (a str), not a {type(layer).__name__}"
            )
        opened = _open(self._model(model), 0)
        target = _layer_named(opened.layers, layer)
        if target is None:
            logger.error("%s", _not_a_layer_message(layer, opened.layers))
            return None
        tensor = None
        if _why_no_matrix(target) is None:
            tensor = next((t for name, t in opened.tensors({target.tensor}) if name == target.tensor), None)
        if tensor is None:
            raise ValueError(f"layer={layer!r} ({target.tensor!r}) has no weight matrix: {_no_matrix(target)}")
        return target, tensor

    def get_ESD(self, model=None, layer=None, random=False, params=None):
        """The eigenvalues (ascending) of one layer, by id or name (:func:`_layer_named`; ``[]`` when it names none,
        as 0.7.7); ``random=True``: of its randomized copy. Conv2D kernels are not normalized here (weightwatcher's
        get_ESD skips its conv2d_norm)."""
        found = self._one_layer(model, layer)
        if found is None:
            return []
        target, tensor = found
        # weightwatcher's get_ESD skips its Conv2D normalization.
        options = AnalysisOptions(
            keep_evals=True, randomize=bool(random), min_evals=2, max_evals=None, conv2d_norm=False
        )
        row = _analyze_tensor(target.layer_id, target.tensor, tensor, options)[0]
        evals = row.rand_evals if random else row.evals
        if evals is None:
            raise ValueError(f"layer={layer!r}: no eigenvalues ({row.reason or row.fit_status})")
        return evals

    def get_Weights(self, model=None, layer=None, params=None) -> list[np.ndarray]:
        """The weight matrices of one layer: the 2-D weight as stored, or a Conv2D's kernel slices (each with its
        longer side first, as weightwatcher returns them); ``[]`` when ``layer`` names none, as 0.7.7."""
        found = self._one_layer(model, layer)
        if found is None:
            return []
        target, tensor = found
        try:
            array = _as_float(tensor)
        except NotAWeightMatrix as err:  # an integer tensor: quantized codes or an index buffer
            raise ValueError(f"layer={layer!r} ({target.tensor!r}) has no weight matrix: {err}") from None
        if array.ndim == 2:
            return [array]
        return [m if m.shape[0] >= m.shape[1] else m.T for m in kernel_slices(array)]

    def distances(self, model_1, model_2, method="raw", layers=(), start_ids=0, pool=True, channels=None):
        """``(avg_dW, avg_db, df)``: per layer ``delta_W`` (``raw``: ||W1 - W2|| over the tensor; ``euclidean``: per
        matrix, averaged; ``cka``) and ``delta_b`` (``raw``: ||b1 - b2|| of the biases, 0 otherwise).

        A layer of ``model_1`` without a matrix has a row with analyze()'s status and reason for it (a tensor its index
        promises and its shard lacks fails, as in ``wwhub distance``); a layer ``model_2`` has no matrix for raises
        ``ValueError``, as ``wwhub distance`` refuses such a base. With no layer to compare, ``df`` is empty (its
        columns kept) and the averages NaN. Layers are paired by tensor name; the selected layers only one model has
        have no row and are named in a warning of the ``ww_core.watcher`` logger."""
        import pandas as pd

        method = (method or "raw").lower()
        first, second = _open(model_1, start_ids), _open(model_2, start_ids)
        supported = AnalysisOptions(pool=pool, channels=channels)
        others = {layer.tensor: layer for layer in second.layers}
        chosen = select_layers(first.layers, layers)
        paired = [layer for layer in chosen if layer.tensor in others]
        # Layers are paired by tensor name (0.7.7 zips the two layer lists, so an extra layer shifts every pair
        # after it); what one model has and the other lacks is said, as `wwhub distance` says it.
        ours = {layer.tensor for layer in first.layers}
        unpaired = (
            ([layer.tensor for layer in chosen if layer.tensor not in others], "model_1"),
            ([layer.tensor for layer in select_layers(second.layers, layers) if layer.tensor not in ours], "model_2"),
        )
        for names, where in unpaired:
            if names:
                logger.warning("distances: %s", not_compared_note(names, where))
        # 0.7.7 leaves out a layer too small for min_evals; one its reader gives no matrix for has its row below. A
        # 0-size tensor is empty, not small: layer_distance skips it, as it does in `wwhub distance`.
        by_tensor = {
            layer.tensor: layer
            for layer in paired
            if _reader_gave_none(layer) is None
            and (_analyzable(layer, supported) or empty_tensor_reason(layer.shape) is not None)
        }
        twins = dict(second.tensors(set(by_tensor)))
        rows: dict[str, LayerDistance] = {}
        for name, tensor in first.tensors(set(by_tensor)):
            layer = by_tensor[name]
            if name not in twins:
                raise ValueError(
                    f"model_2 has no weight matrix for layer {layer.layer_id} ({name!r}): {_no_matrix(others[name])}"
                )
            rows[name] = layer_distance(tensor, twins.pop(name), name, layer.layer_id, method, spectrum=False)
        # After the reading: a layer can turn out undecodable only as it is read (_FromFiles.tensors).
        for layer in paired:
            no_matrix = _reader_gave_none(layer)
            if no_matrix is not None:
                status, reason = no_matrix
                rows[layer.tensor] = LayerDistance(layer.layer_id, layer.tensor, fit_status=status, reason=reason)
        records = []
        for layer in paired:
            row = rows.get(layer.tensor)
            if row is None:
                continue
            delta_b, b_shape = 0.0, "unknown"
            b1, b2 = first.biases.get(layer.tensor), second.biases.get(layer.tensor)
            if method == "raw" and b1 is not None and b2 is not None and tuple(b1.shape) == tuple(b2.shape):
                delta_b = float(np.linalg.norm(_as_float(b1) - _as_float(b2)))
                b_shape = tuple(b1.shape)
            records.append(
                dict(
                    method=method,
                    layer_id=layer.layer_id,
                    name=layer.name,
                    delta_W=row.delta_W,
                    delta_b=delta_b,
                    M=row.M,
                    N=row.N,
                    b_shape=b_shape,
                    longname=layer.longname,
                    tensor=layer.tensor,
                    fit_status=row.fit_status,
                    reason=row.reason,
                )
            )
        # No layer selected or paired: no rows, as analyze() gives an empty frame (0.7.7's distances() raises a
        # KeyError there), and avg_dW, avg_db NaN.
        frame = pd.DataFrame(records, columns=_DISTANCES_COLUMNS).set_index("layer_id")
        ok = frame[frame["fit_status"] == FIT_OK]
        return float(ok["delta_W"].mean()), float(ok["delta_b"].mean()), frame

    def SVDSmoothing(
        self,
        model=None,
        percent=0.8,
        pool=True,
        layers=(),
        method="detX",
        fit="PL",
        plot=False,
        start_ids=0,
        svd_method="fast",
    ):
        """Keep each layer's top singular components (``method``: detX, svd, alpha_min, rmt); returns the model,
        changed in place (a model read from files: a state dict of the changed tensors). ``svd_method`` 'fast' and
        'accurate' are weightwatcher's randomized solver on a CPU; 'exact' truncates a full SVD."""
        from .smoothing import smooth_tensor

        if not pool:
            raise ValueError("SVDSmoothing supports pool=True only (as weightwatcher)")
        solver = "exact" if svd_method == "exact" else "randomized"
        return self._transform(
            "SVDSmoothing",
            model,
            layers,
            start_ids,
            lambda t, n: smooth_tensor(t, n, method=method, percent=percent, solver=solver),
        )

    def SVDSharpness(self, model=None, pool=True, layers=(), plot=False, start_ids=0):
        """Remove as many top singular components as the shuffled layer has MP spikes; returns the model."""
        from .smoothing import sharpen_tensor

        if not pool:
            raise ValueError("SVDSharpness supports pool=True only (as weightwatcher)")
        return self._transform("SVDSharpness", model, layers, start_ids, lambda t, n: sharpen_tensor(t, n))

    def _transform(self, caller: str, model, layers, start_ids, transform):
        """``transform`` applied to each selected layer; one the reader gives no matrix for is left unchanged, with
        a warning saying why."""
        opened = _open(self._model(model), start_ids)
        chosen = select_layers(opened.layers, layers)
        changed = {}
        for name, tensor in list(opened.tensors({layer.tensor for layer in chosen})):
            array, _ = transform(tensor, name)
            if array is None:
                continue
            if isinstance(opened, _InMemory):
                opened.replace(name, array)
            else:
                changed[name] = array
        for layer in chosen:
            if _reader_gave_none(layer) is not None:
                logger.warning(
                    "%s: layer %d (%r) left unchanged, %s", caller, layer.layer_id, layer.tensor, _no_matrix(layer)
                )
        return opened.model if isinstance(opened, _InMemory) else changed

    def analyze_vectors(
        self, model=None, layers=(), min_evals=8, max_evals=15000, plot=True, savefig=DEFAULT_SAVEDIR, channels=None
    ):
        """Eigenvector localization of every layer (weightwatcher 0.7.7's own crashes): a frame of the 12 bulk/tail
        columns, with the figures of ``vectors`` when ``plot``."""
        from .records import VECTOR_COLUMNS

        details = self.analyze(
            model=model,
            layers=list(layers),
            min_evals=min_evals,
            max_evals=max_evals,
            vectors=True,
            plot=plot,
            savefig=savefig,
            channels=channels,
        )
        return details[["layer_id", "name", "longname", "xmin", "num_pl_spikes", *VECTOR_COLUMNS]]

    def vector_metrics(self, vectors=None, params=None):
        """``length, entropy, discrete_entropy, localization_ratio, participation_ratio`` of each vector (one vector,
        a list, or the rows of a 2-D array)."""
        import pandas as pd

        if vectors is None:
            raise ValueError("vector_metrics: pass vectors= (a numpy vector, a list of them, or a 2-D array of rows)")
        return pd.DataFrame(vector_metric_rows(vectors))


Watcher = WeightWatcher


def _as_float(tensor) -> np.ndarray:
    array = stored_array(tensor)
    return array if array.dtype in (np.float32, np.float64) else array.astype(np.float32)


def _first_matrix(tensor, channels) -> np.ndarray:
    array = _as_float(tensor)
    return array if array.ndim == 2 else kernel_slices(array, channels)[0]


def _analyzable(layer: Layer, opts: AnalysisOptions) -> bool:
    """weightwatcher's layer_supported: within min_evals / max_evals."""
    try:
        _, M, rf = tensor_dims(layer.shape, opts.channels)
    except ValueError:
        return False
    num_evals = M * (rf if opts.pool else 1)
    return num_evals >= opts.min_evals and (opts.max_evals is None or num_evals <= opts.max_evals)


def _reader_gave_none(layer: Layer) -> tuple[str, str] | None:
    """``(fit status, reason)`` of a layer a file-read model's reader gives no matrix for, because its analysis skips
    or fails it (ww_core.sources.SourceLayer's reasons, or a SkippedMatrix once it was read); None otherwise."""
    if layer.skip_reason is not None:
        return FIT_SKIPPED, layer.skip_reason
    if layer.fail_reason is not None:
        return FIT_FAILED, layer.fail_reason
    return None


def _why_no_matrix(layer: Layer) -> tuple[str, str] | None:
    """``(fit status, reason)`` of a layer that has no weight matrix, None for one that has: the reader gives none
    (:func:`_reader_gave_none`), or a 0-size axis leaves none in any model (the analysis skips it:
    matrices.empty_tensor_reason)."""
    from_reader = _reader_gave_none(layer)
    if from_reader is not None:
        return from_reader
    empty = empty_tensor_reason(layer.shape)
    if empty is not None:
        return FIT_SKIPPED, empty
    return None


def _no_matrix(layer: Layer) -> str:
    """Why there is no matrix for ``layer``, as the error of a call that needs one says it."""
    no_matrix = _why_no_matrix(layer)
    if no_matrix is None:
        return "the model's reader gave none"
    status, reason = no_matrix
    return f"the analysis {'skips' if status == FIT_SKIPPED else 'fails'} it: {reason}"


def _not_a_layer_message(layer, layers: list[Layer]) -> str:
    """What get_ESD / get_Weights log for a ``layer=`` that names no layer: the ids there are, and for a layer type
    (which names a layer only when a layer is named after it, :func:`_layer_named`) where types are selected."""
    head = f"layer={layer!r} is not a layer of the model"
    if isinstance(layer, str) and layer in _WW_LAYER_TYPES:
        head += f" ({layer!r} is a layer type: analyze(layers=[{layer!r}]) selects by type)"
    if not layers:
        return f"{head}: it has no layers"
    shown = ", ".join(f"{x.layer_id} {x.name!r}" for x in layers[:10]) + (", ..." if len(layers) > 10 else "")
    if len(layers) == 1:
        return f"{head}: its one layer has id {shown}"
    ids = [x.layer_id for x in layers]
    return f"{head}: its {len(layers)} layers have ids {min(ids)} to {max(ids)} ({shown})"


def _difference(tensor, base) -> np.ndarray | None:
    a, b = _as_float(tensor).astype(np.float64), _as_float(base).astype(np.float64)
    if a.shape == b.shape:
        return a - b
    if a.ndim == 2 and a.shape == b.T.shape:
        return a - b.T
    return None


def _dtype_name(opened, layer: Layer) -> str:
    if isinstance(opened, _InMemory):
        tensor = opened.tensors_by_name[layer.tensor]
        dtype = str(getattr(tensor, "dtype", "")).replace("torch.", "")
        try:
            return dtype if is_float_dtype(stored_array(tensor).dtype) else "int"
        except ValueError:
            return "int"
    return "float"


__all__ = ["WeightWatcher", "Watcher", "select_layers"]
