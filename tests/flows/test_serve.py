"""`wwhub serve` uses the schedule declared once, in prefect.yaml, and says what it needs."""

from pathlib import Path

import yaml

from flows.cli import main
from flows.cli.serve import nightly_schedule

ROOT = Path(__file__).resolve().parents[2]


def test_serve_reads_the_nightly_schedule_from_prefect_yaml():
    declared = yaml.safe_load((ROOT / "prefect.yaml").read_text())["deployments"][0]["schedules"][0]
    assert nightly_schedule(str(ROOT / "prefect.yaml")) == (declared["cron"], declared["timezone"])
    hour = int(declared["cron"].split()[1])
    assert not 2 <= hour < 3  # outside the daylight-saving hole


def test_serve_without_a_server_is_a_clear_error(monkeypatch, capsys):
    from prefect.settings import PREFECT_API_URL, temporary_settings

    with temporary_settings({PREFECT_API_URL: None}):
        assert main(["serve", "--prefect-yaml", str(ROOT / "prefect.yaml")]) == 2
    assert "prefect server start" in capsys.readouterr().err
