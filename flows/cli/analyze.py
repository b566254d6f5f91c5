"""``wwhub analyze PATH``: one local model or weight file, no lake."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import ww_core
from ww_core.describe import STATUS_ANALYZE, STATUS_FAIL

from ..analysis.describe import describe_plan, plan_layers
from ..analysis.examples import EXAMPLES, example_path
from ..analysis.model_analysis import analyze_path, default_layer_workers, plan_path
from ..analysis.named_model import open_model
from ..analysis.selection import SelectionError
from ..sources import HubError
from ..weights import MatrixStream, WeightsError
from ._errors import EXIT_OK, EXIT_PARTIAL, CliError
from ._options import add_analysis_arguments, add_layers_argument, analysis_options, layer_selection, positive_int
from ._output import FORMATS, check_output_file, check_output_folder, render_table, write_rows
from ._progress import progress_bar

TABLE_COLUMNS = [
    "layer_id",
    "name",
    "N",
    "M",
    "alpha",
    "alpha_weighted",
    "log_spectral_norm",
    "log_norm",
    "stable_rank",
    "D",
    "num_spikes",
    "correlation_trap",
    "warning",
    "quantization",
    "fit_status",
    "reason",
]
DESCRIBE_TABLE_COLUMNS = [
    "layer_id",
    "name",
    "layer_type",
    "N",
    "M",
    "rf",
    "num_evals",
    "dtype",
    "quantization",
    "status",
    "reason",
]


def register(sub) -> None:
    parser = sub.add_parser(
        "analyze",
        help="analyze one local model (folder of *.safetensors or one file)",
        description="Analyze one local model: a folder with model*.safetensors (and config.json), a single "
        ".safetensors file, pytorch_model*.bin pickles (loaded with weights_only=True), or a PEFT adapter folder "
        "(adapter_config.json: one row per adapted module, its update ΔW). Rows follow the model's depth; fused MoE "
        "experts give one row per expert, quantized weights are dequantized (or skipped with the reason).",
    )
    parser.add_argument(
        "path", nargs="?", help="model folder or weight file (with --describe, also a hub repo id org/name[@rev])"
    )
    parser.add_argument(
        "--merge-base",
        metavar="BASE",
        help="with an adapter folder: analyze the merged model W + ΔW against this local base checkpoint",
    )
    parser.add_argument("--example", choices=sorted(EXAMPLES), help="analyze a packaged example model instead")
    add_layers_argument(parser)
    parser.add_argument(
        "--describe",
        action="store_true",
        help="list the layers an analysis would cover (type, N, M, eigenvalues, dtype, quantization, what is "
        "skipped and why) without computing an eigenvalue; a hub repo is described from its safetensors headers",
    )
    parser.add_argument("--endpoint", help="Hub endpoint URL for --describe REPO_ID (default: HF_ENDPOINT)")
    add_analysis_arguments(parser)
    whole = parser.add_argument_group("weightwatcher options of the whole model (this command only)")
    whole.add_argument(
        "--plot",
        metavar="DIR",
        help="write per-layer figures into DIR: log-log ESD with the power-law fit, linear ESD (MP fit with --mp-fit), "
        "randomized ESD (--randomize), detX (--detX), eigenvectors (--vectors), level spacings (--deltas)",
    )
    whole.add_argument("--deltas", action="store_true", help="with --plot: level-spacing figures")
    whole.add_argument("--start-ids", type=int, default=0, help="number layers from this id (default 0)")
    whole.add_argument("--intra", action="store_true", help="analyze products of consecutive layers instead")
    whole.add_argument("--no-sparsify", dest="sparsify", action="store_false", help="--intra without the 0/1 mask")
    whole.add_argument("--stacked", action="store_true", help="analyze all layers stacked into one matrix")
    whole.add_argument("--base-model", metavar="BASE", help="analyze each layer's dW = W - W_base against BASE")
    parser.add_argument(
        "--workers",
        type=positive_int,
        default=default_layer_workers(),
        help="layers analyzed at once, each eigensolve on --blas-threads threads (default: the cores, up to 4)",
    )
    parser.add_argument("--format", choices=FORMATS, default="table", help="output format (default: table)")
    parser.add_argument("--out", help="write to FILE instead of stdout (its folder must exist)")
    parser.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    if bool(args.path) == bool(args.example):
        raise CliError("give exactly one of PATH or --example NAME")
    check_output_file(args.out)
    if args.format == "parquet" and not args.out:
        raise CliError("--format parquet needs --out FILE")
    selection = layer_selection(args)
    options = analysis_options(args)
    if args.plot:
        check_output_folder(args.plot, "--plot")
        options["keep_evals"] = True
    if args.describe:
        return _describe(args, selection, options)
    if args.intra or args.stacked or args.base_model:
        return _whole_model(args, selection, options)
    try:
        path = example_path(args.example) if args.example else args.path
        planned = plan_path(path, args.merge_base)
        if not any(MatrixStream.unknown(shard) for shard in planned[1].shards):
            selection.select(layer for layer, _ in plan_layers(planned[1]))
    except (WeightsError, ValueError) as err:
        raise CliError(str(err)) from err
    with progress_bar(total=None, desc=f"analyze {path}", unit="layer") as bar:
        model = analyze_path(
            path,
            options,
            on_layer=lambda name: bar.update(1),
            workers=args.workers,
            planned=planned,
            on_planned=lambda total: bar.reset(total=total),
            selection=selection,
        )
    shards = model.shards
    rows = model.rows
    if not rows and not selection.is_all:
        # A pickle has no header to check the selection against before it is opened.
        raise CliError(f"--layers {selection.text!r} selects no layer of {path}")
    if len(shards) == 1 and shards[0].error and not any(r.fit_status == ww_core.FIT_OK for r in rows):
        raise CliError(shards[0].error)  # the one line: not also printed as a shard's error below
    if not rows and not any(shard.error for shard in shards):
        stored = len(model.analysis.plan.tensor_names)
        what = f"none of its {stored} stored tensors is one" if stored else "it stores no tensors"
        raise CliError(f"{path}: no weight matrices found: {what}")
    for shard in shards:
        if shard.error:
            print(f"wwhub analyze: {shard.error}", file=sys.stderr)
    notes = [planned[1].note] if planned[1].note else []
    for reason in notes + model.analysis.decoding_reasons():
        print(f"wwhub analyze: {reason}", file=sys.stderr)
    _plots(args, rows, path)
    write_rows(_with_start_ids(model.records(), args.start_ids), args.format, args.out, TABLE_COLUMNS)
    if args.format == "table" and not args.out:
        summary = ww_core.summarize(rows).as_dict()
        subset = "" if selection.is_all else f", layers {selection.text!r} only"
        sys.stdout.write(f"\nmodel summary (mean over ok layers{subset})\n")
        sys.stdout.write(render_table([summary], list(summary)))
    return EXIT_PARTIAL if any(shard.error for shard in shards) else EXIT_OK


def _with_start_ids(records: list[dict], start_ids: int) -> list[dict]:
    for record in records:
        record["layer_id"] += start_ids
    return records


def _plots(args: argparse.Namespace, rows, path) -> None:
    if not args.plot:
        return
    from ..analysis.layer_plots import write_layer_plots

    label = args.example or Path(str(path)).name
    written = write_layer_plots(
        rows, args.plot, label, randomize=args.randomize, detX=args.detX, vectors=args.vectors, deltas=args.deltas
    )
    print(f"wwhub analyze: {len(written)} figures written to {args.plot}", file=sys.stderr)


def _whole_model(args: argparse.Namespace, selection, options: dict) -> int:
    """--intra, --stacked, --base-model: ww_core.WeightWatcher over the same reader (flows.analysis.notebook_source)."""
    from ww_core.sources import NoAdapterInstalled

    path = str(example_path(args.example)) if args.example else args.path
    base = args.base_model
    if base is not None and not Path(base).exists():
        raise CliError(f"--base-model {base}: no such file or folder")
    watcher = ww_core.WeightWatcher(path)
    keep = {key: options[key] for key in options if key != "keep_evals"}
    try:
        watcher.analyze(
            layers=[] if selection.is_all else _selected_names(path, selection),
            intra=args.intra,
            sparsify=args.sparsify,
            stacked=args.stacked,
            base_model=base,
            start_ids=args.start_ids,
            plot=bool(args.plot),
            savefig=args.plot or False,
            deltas=args.deltas,
            **keep,
        )
    except (WeightsError, HubError, NoAdapterInstalled, ValueError) as err:
        raise CliError(str(err)) from err
    write_rows([row.as_row() for row in watcher.layers], args.format, args.out, TABLE_COLUMNS)
    return EXIT_OK


def _selected_names(path: str, selection) -> list[str]:
    _, plan = plan_path(path)
    return [layer.name for layer in selection.select(layer for layer, _ in plan_layers(plan))]


def _describe(args: argparse.Namespace, selection, options: dict) -> int:
    """WeightWatcher's describe(): the layers, their sizes and what would be skipped, no eigenvalue computed."""
    try:
        if args.merge_base:
            model_path = str(example_path(args.example)) if args.example else args.path
            folder, plan = plan_path(model_path, args.merge_base)
            label = model_path
        else:
            model = open_model(str(example_path(args.example)) if args.example else args.path, args.endpoint)
            folder, plan, label = model.folder, model.plan, model.label
        rows = describe_plan(plan, options, selection, folder)
    except (WeightsError, HubError, SelectionError, ValueError) as err:
        raise CliError(str(err)) from err
    write_rows([row.as_row() for row in rows], args.format, args.out, DESCRIBE_TABLE_COLUMNS)
    if args.format == "table" and not args.out:
        analyzed = [r for r in rows if r.status == STATUS_ANALYZE]
        failing = sum(r.status == STATUS_FAIL for r in rows)
        subset = "" if selection.is_all else f" (layers {selection.text!r})"
        sys.stdout.write(
            f"\n{label}{subset}: {len(rows)} layers, {len(analyzed)} to analyze, "
            f"{len(rows) - len(analyzed) - failing} skipped, "
            + (f"{failing} failing, " if failing else "")
            + f"{sum(r.num_evals for r in analyzed)} eigenvalues\n"
        )
    return EXIT_OK
