"""``wwhub serve``: run the nightly flow on its cron with ``flow.serve`` (needs a Prefect server; no work pool)."""

from __future__ import annotations

import argparse

import yaml

from ._errors import CliError

PREFECT_YAML = "prefect.yaml"


def nightly_schedule(path: str = PREFECT_YAML) -> tuple[str, str]:
    """(cron, timezone) of the nightly deployment in prefect.yaml: one schedule, declared once."""
    try:
        config = yaml.safe_load(open(path))
        schedule = next(d for d in config["deployments"] if d["name"] == "nightly")["schedules"][0]
        return schedule["cron"], schedule["timezone"]
    except (OSError, KeyError, StopIteration, TypeError, yaml.YAMLError) as err:
        raise CliError(f"{path}: cannot read the nightly schedule ({err})") from err


def register(sub) -> None:
    parser = sub.add_parser(
        "serve",
        help="serve the nightly scan on its schedule (needs a Prefect server)",
        description="Serve the nightly flow with the cron of prefect.yaml. Needs a running "
        "Prefect server: `prefect server start` and PREFECT_API_URL=http://127.0.0.1:4200/api.",
    )
    parser.add_argument("--families", default="families.yaml")
    parser.add_argument("--lake", default="wwhub-lake")
    parser.add_argument("--metric", default="accuracy")
    parser.add_argument("--endpoint")
    parser.add_argument("--task-runner", choices=["threads", "dask"], default="threads")
    parser.add_argument("--dask-address")
    parser.add_argument("--prefect-yaml", default=PREFECT_YAML)
    parser.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    from prefect.settings import PREFECT_API_URL

    if not PREFECT_API_URL.value():
        raise CliError(
            "wwhub serve needs a Prefect server: run `prefect server start` and set "
            "PREFECT_API_URL=http://127.0.0.1:4200/api"
        )
    from prefect.schedules import Cron

    from ..scan import nightly_scan

    cron, timezone = nightly_schedule(args.prefect_yaml)
    nightly_scan.serve(
        name="nightly-serve",
        schedule=Cron(cron, timezone=timezone),
        global_limit=1,
        parameters={
            "families_file": args.families,
            "lake": args.lake,
            "metric": args.metric,
            "endpoint": args.endpoint,
            "task_runner": args.task_runner,
            "dask_address": args.dask_address,
        },
    )
    return 0
