"""``wwhub distance MODEL BASE``: how far each layer of a model moved from its base (local paths or hub repo ids)."""

from __future__ import annotations

import argparse
import sys

from ww_core.distances import DISTANCE_METHODS, summarize_distances

from ..analysis.base_distance import DistanceOptions, compare_models
from ..analysis.named_model import open_model
from ..analysis.selection import SelectionError
from ..sources import HubError
from ..weights import WeightsError
from ._errors import EXIT_OK, EXIT_PARTIAL, CliError
from ._options import add_layers_argument, count_or_none, layer_selection
from ._output import FORMATS, render_table, write_rows
from ._progress import progress_bar

TABLE_COLUMNS = [
    "layer_id",
    "name",
    "N",
    "M",
    "delta_W",
    "relative_change",
    "dW_rank",
    "dW_effective_rank",
    "dW_stable_rank",
    "dW_alpha",
    "fit_status",
    "reason",
]


def register(sub) -> None:
    parser = sub.add_parser(
        "distance",
        help="per-layer distances of a model from its base (WeightWatcher's distances())",
        description="Compare MODEL with BASE layer by layer (aligned by tensor name): WeightWatcher 0.7.7's "
        "delta_W (--method raw | euclidean | cka), the relative change ||dW||/||W_base||, and the spectrum of the "
        "update dW (rank, effective rank, stable rank, power-law alpha). Each is a local folder or file, or a hub "
        "repo id (org/name[@revision]); both are streamed shard by shard.",
    )
    parser.add_argument("model", help="the fine-tune: folder, .safetensors file, or org/name[@revision]")
    parser.add_argument("base", help="its base: folder, .safetensors file, or org/name[@revision]")
    parser.add_argument("--method", choices=DISTANCE_METHODS, default="euclidean", help="what delta_W reports")
    add_layers_argument(parser)
    parser.add_argument("--no-spectrum", dest="spectrum", action="store_false", help="skip the spectrum of dW")
    parser.add_argument("--min-evals", type=int, default=8, help="fewest nonzero eigenvalues of dW for its alpha")
    parser.add_argument("--max-evals", type=count_or_none, default=None, help="largest dW spectrum computed (none)")
    parser.add_argument("--precision", choices=["float64", "float32"], default="float64", help="dW held in")
    parser.add_argument("--endpoint", help="Hub endpoint URL (default: HF_ENDPOINT or https://huggingface.co)")
    parser.add_argument("--format", choices=FORMATS, default="table", help="output format (default: table)")
    parser.add_argument("--out", help="write to FILE instead of stdout")
    parser.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    selection = layer_selection(args)
    if args.min_evals < 2:
        raise CliError(f"--min-evals {args.min_evals}: a power-law fit needs at least 2 eigenvalues")
    options = DistanceOptions(args.method, args.spectrum, args.min_evals, args.max_evals, args.precision)
    try:
        model = open_model(args.model, args.endpoint)
        base = open_model(args.base, args.endpoint)
        with progress_bar(total=None, desc=f"distance {args.model}", unit="layer") as bar:
            report = compare_models(model, base, options, selection, on_layer=lambda name: bar.update(1))
    except (WeightsError, HubError, SelectionError) as err:
        raise CliError(str(err)) from err
    for note in report.notes:
        print(f"wwhub distance: {note}", file=sys.stderr)
    write_rows([row.as_row() for row in report.rows], args.format, args.out, TABLE_COLUMNS)
    if args.format == "table" and not args.out:
        summary = summarize_distances(report.rows, args.method).as_dict()
        subset = "" if selection.is_all else f", layers {selection.text!r} only"
        sys.stdout.write(f"\nmodel summary (mean over ok layers{subset}; avg_dW as WeightWatcher's)\n")
        sys.stdout.write(render_table([summary], list(summary)))
    failed = [row for row in report.rows if row.fit_status == "failed"]
    for row in failed[:5]:
        print(f"wwhub distance: {row.name}: {row.reason}", file=sys.stderr)
    return EXIT_PARTIAL if failed else EXIT_OK
