"""The static site at scale (issue #21): a synthetic lake of 10 000 models, `wwhub report` as a whole process, the
pages' sizes, and how fast headless Chromium opens the index (its leaderboard rendered) and the largest model page.

    python benchmarks/bench_site.py [--models 10000] [--layers 12] [--families 20] [--no-esd] [--workdir DIR] [--keep]

Prints: the lake's build time (not part of the measure); `wwhub report` wall time, per model, next to the floor
(a process that runs the same lake reads, queries/site_*.sql and the leaderboard, without writing a page); the
rebuild into the same folder, as the nightly does, after a night that changed nothing and after a night that scanned
one model (model pages whose inputs did not change are kept: flows/site/reuse.py), next to the full build; the
index's size (index.html + data/leaderboard.js), the model pages' mean and largest size, the site's total; the
index's load time in Chromium (navigation to the first leaderboard row drawn), best of --repeat, next to the floor
(a blank page in the same browser). Targets: index under a few MB, open in under a second.
Needs Debian's chromium and the playwright package (the dev extra) for the browser part; it is skipped without.
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from tests.flows.lakes import write_synthetic_lake  # noqa: E402

WWHUB = [sys.executable, "-m", "flows"]
ENV = dict(os.environ, OPENBLAS_NUM_THREADS="1", OMP_NUM_THREADS="1", MKL_NUM_THREADS="1")
# The floor of `wwhub report`: every read the site makes, in a fresh process, and nothing written.
READS_ONLY = (
    "import sys\nfrom flows.site.data import model_details, read_lake\n"
    "data = read_lake(sys.argv[1], 'accuracy')\n"
    "sizes = {repo: row.get('num_layers') or 0 for repo, row in data.models.items()}\n"
    "rows = sum(len(d.layers) + len(d.esd) for _, d in model_details(sys.argv[1], sizes))\n"
)


def run(command: list[str]) -> tuple[float, str]:
    """(wall seconds, stdout) of a whole process."""
    start = time.perf_counter()
    result = subprocess.run(command, cwd=ROOT, env=ENV, capture_output=True, text=True)
    if result.returncode != 0:
        raise SystemExit(f"{' '.join(command[:4])} failed: {result.stderr[-2000:]}")
    return time.perf_counter() - start, result.stdout


def timed(command: list[str]) -> float:
    return run(command)[0]


def scan_one_model(lake: Path) -> None:
    """One model scanned into the lake as a scan commits it (real matrices through ww_core), in family-000."""
    import datetime as dt

    import numpy as np

    from flows.lake import Lake
    from tests.flows.lakes import _heavy_tailed, scanned_tables

    rng = np.random.default_rng(0)
    matrices = [(f"model.layers.{i}.weight", _heavy_tailed(rng, 256, 128, 2.5 + i / 4), {}) for i in range(4)]
    at = dt.datetime.now(dt.UTC)
    evals = [dict(source="model-index", metric="accuracy", value=0.5, dataset="d")]
    tables = scanned_tables("org000/new-model", "f" * 40, "family-000", matrices, at, scan_id="bench", evals=evals)
    Lake.for_writing(lake).commit_model("org000/new-model", "f" * 40, tables)


def rebuilt(command: list[str]) -> tuple[float, str]:
    """A report rebuild's wall seconds and its "N rendered" part."""
    seconds, out = run(command)
    return seconds, out.split("(", 1)[1].split(",", 1)[0]


def sizes(site: Path) -> dict[str, float]:
    models = [p.stat().st_size for p in (site / "models").glob("*.html")]
    return {
        "index": (site / "index.html").stat().st_size + (site / "data" / "leaderboard.js").stat().st_size,
        "index_html": (site / "index.html").stat().st_size,
        "model_mean": statistics.fmean(models),
        "model_max": max(models),
        "models": len(models),
        "total": sum(p.stat().st_size for p in site.rglob("*") if p.is_file()),
    }


def browser_times(site: Path, repeat: int) -> dict[str, float] | None:
    chromium = shutil.which("chromium")
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:
        chromium = None
    if chromium is None:
        print("browser: skipped (needs Debian's chromium and the playwright package)")
        return None
    blank = site.parent / "blank.html"
    blank.write_text("<!DOCTYPE html><html><body><p>blank</p></body></html>")
    largest = max((site / "models").glob("*.html"), key=lambda p: p.stat().st_size)
    best: dict[str, float] = {}
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=chromium, args=["--no-sandbox", "--disable-gpu"])
        for name, path, ready in (
            ("blank", blank, "p"),
            ("index", site / "index.html", "#board tbody tr"),
            ("model", largest, "#layers tbody tr"),
        ):
            times = []
            for _ in range(repeat):
                page = browser.new_page(viewport={"width": 1400, "height": 1000})
                start = time.perf_counter()
                page.goto(path.as_uri(), wait_until="load")
                page.wait_for_selector(ready)
                times.append(time.perf_counter() - start)
                page.close()
            best[name] = min(times)
        browser.close()
    return best


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--models", type=int, default=10_000)
    parser.add_argument("--layers", type=int, default=12)
    parser.add_argument("--families", type=int, default=20)
    parser.add_argument("--no-esd", action="store_true", help="no stored eigenvalues (no ESD plots on the pages)")
    parser.add_argument("--repeat", type=int, default=5, help="browser loads per page (the best counts)")
    parser.add_argument("--workdir", help="work folder (default: a temporary one)")
    parser.add_argument("--keep", action="store_true", help="do not delete the work folder")
    args = parser.parse_args()
    work = Path(args.workdir or tempfile.mkdtemp(prefix="wwhub-bench-site-"))
    lake, site = work / "lake", work / "site"
    try:
        if not (lake / "manifest.json").exists():
            start = time.perf_counter()
            write_synthetic_lake(lake, args.models, args.layers, args.families, esd=not args.no_esd)
            print(f"lake: {args.models} models x {args.layers} layers built in {time.perf_counter() - start:.1f} s")
        floor = timed([sys.executable, "-c", READS_ONLY, str(lake)])
        report = timed([*WWHUB, "report", "--lake", str(lake), "--out", str(site)])
        print(
            f"wwhub report: {report:.1f} s ({1000 * report / args.models:.1f} ms per model); floor (the same reads, "
            f"no pages) {floor:.1f} s; ratio {report / floor:.1f}x"
        )
        quiet, quiet_rendered = rebuilt([*WWHUB, "report", "--lake", str(lake), "--out", str(site)])
        scan_one_model(lake)
        one, one_rendered = rebuilt([*WWHUB, "report", "--lake", str(lake), "--out", str(site)])
        full = timed([*WWHUB, "report", "--lake", str(lake), "--out", str(work / "full"), "--rebuild"])
        print(
            f"rebuild into the same folder: nothing changed {quiet:.1f} s ({quiet_rendered}); one model scanned "
            f"{one:.1f} s ({one_rendered}); a full build of the same lake {full:.1f} s: {full / one:.1f}x the rebuild "
            f"after one scan"
        )
        s = sizes(site)
        print(
            f"index: {s['index'] / 1e6:.2f} MB (index.html {s['index_html'] / 1e3:.0f} KB + leaderboard data); "
            f"model pages: {s['models']:.0f}, mean {s['model_mean'] / 1e3:.0f} KB, largest {s['model_max'] / 1e3:.0f} "
            f"KB; site {s['total'] / 1e6:.0f} MB"
        )
        times = browser_times(site, args.repeat)
        if times:
            print(
                f"chromium: index opens in {times['index']:.3f} s, largest model page {times['model']:.3f} s; "
                f"floor (blank page) {times['blank']:.3f} s; index ratio {times['index'] / times['blank']:.1f}x"
            )
        print("targets: index under a few MB, open in under a second")
    finally:
        if not args.keep and not args.workdir:
            shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
