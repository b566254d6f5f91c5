"""`wwhub serve` uses the schedule declared once, in prefect.yaml, and says what it needs."""

from pathlib import Path

import yaml

from flows.cli import main
from flows.cli.serve import nightly_schedule

ROOT = Path(__file__).resolve().parents[3]


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


def test_serve_with_a_server_that_never_answers_fails_within_10_seconds(tmp_path, monkeypatch, capsys):
    import socket
    import time

    from prefect.settings import PREFECT_API_URL, temporary_settings

    monkeypatch.chdir(tmp_path)
    (tmp_path / "families.yaml").write_text("families:\n  x: {author: acme}\n")
    with socket.socket() as listener:  # accepts connections (the kernel does), never answers
        listener.bind(("127.0.0.1", 0))
        listener.listen(8)
        url = f"http://127.0.0.1:{listener.getsockname()[1]}/api"
        started = time.monotonic()
        with temporary_settings({PREFECT_API_URL: url}):
            assert main(["serve", "--prefect-yaml", str(ROOT / "prefect.yaml")]) == 2
        assert time.monotonic() - started < 10  # the brief's bound for a local service
    err = capsys.readouterr().err
    assert err == (
        f"wwhub serve: error: no Prefect server answers at PREFECT_API_URL={url} (ReadTimeout): start one with "
        "`prefect server start`, or fix PREFECT_API_URL\n"
    )


def test_serve_checks_the_families_file_before_it_serves(tmp_path, monkeypatch, capsys):
    from prefect.settings import PREFECT_API_URL, temporary_settings

    monkeypatch.chdir(tmp_path)
    (tmp_path / "families.yaml").write_text("families:\n  x: {autor: acme}\n")
    with temporary_settings({PREFECT_API_URL: "http://127.0.0.1:9/api"}):
        assert main(["serve", "--prefect-yaml", str(ROOT / "prefect.yaml")]) == 2
    assert "families.yaml:2: family 'x': unknown key 'autor'" in capsys.readouterr().err
