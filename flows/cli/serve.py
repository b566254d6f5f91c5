"""``wwhub serve``: run the nightly flow on its cron with ``flow.serve`` (needs a Prefect server; no work pool)."""

from __future__ import annotations

import argparse

import yaml

from ..scanning.families import FamiliesError, load_families
from ._errors import CliError

PREFECT_YAML = "prefect.yaml"
# A Prefect server on the network answers /health in milliseconds; this is the wait for one that is not there.
HEALTH_TIMEOUT = 5.0


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
    parser.add_argument("--families", default="families.yaml", help="families to scan each night (validated now)")
    parser.add_argument("--lake", default="wwhub-lake", help="lake folder (default: ./wwhub-lake)")
    parser.add_argument("--metric", default="accuracy", help="reported metric of the nightly leaderboard")
    parser.add_argument("--endpoint", help="Hub endpoint URL (default: HF_ENDPOINT or https://huggingface.co)")
    parser.add_argument(
        "--task-runner", choices=["threads", "dask"], default="threads", help="threads (default) or dask"
    )
    parser.add_argument("--dask-address", help="tcp://HOST:PORT of the Dask scheduler (with --task-runner dask)")
    parser.add_argument(
        "--prefect-yaml", default=PREFECT_YAML, help="where the nightly schedule is declared (default: prefect.yaml)"
    )
    parser.set_defaults(run=run)


def check_prefect_server(api_url: str, api_key: str | None = None) -> None:
    """A Prefect API answers its health check within seconds, else one CliError (Prefect's own client would retry
    for minutes and print its tracebacks)."""
    import httpx2

    headers = {"Authorization": f"Bearer {api_key}"} if api_key else {}
    try:
        response = httpx2.get(f"{api_url.rstrip('/')}/health", timeout=HEALTH_TIMEOUT, headers=headers)
    except httpx2.HTTPError as err:
        raise CliError(
            f"no Prefect server answers at PREFECT_API_URL={api_url} ({err.__class__.__name__}): "
            "start one with `prefect server start`, or fix PREFECT_API_URL"
        ) from None
    if response.status_code != 200:
        raise CliError(
            f"PREFECT_API_URL={api_url}: /health answered HTTP {response.status_code}; expected a Prefect API "
            "(http://HOST:4200/api)"
        )


def run(args: argparse.Namespace) -> int:
    from prefect.settings import PREFECT_API_KEY, PREFECT_API_URL

    api_url = PREFECT_API_URL.value()
    if not api_url:
        raise CliError(
            "wwhub serve needs a Prefect server: run `prefect server start` and set "
            "PREFECT_API_URL=http://127.0.0.1:4200/api"
        )
    cron, timezone = nightly_schedule(args.prefect_yaml)
    try:
        load_families(args.families)
    except FamiliesError as err:
        raise CliError(str(err)) from None
    api_key = PREFECT_API_KEY.value()
    check_prefect_server(api_url, api_key.get_secret_value() if hasattr(api_key, "get_secret_value") else api_key)
    from prefect.schedules import Cron

    from ..nightly import nightly_scan

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
