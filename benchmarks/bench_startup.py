"""Start-up of the lake commands a user runs most, each a whole process, against the floor of the libraries they
cannot do without, measured in one run; with ``--against REF``, the same commands of another commit side by side.

    python benchmarks/bench_startup.py [--repeat 9] [--against REF]

Commands, on a small lake of four models (three with a reported accuracy):
- `wwhub scan` of one model whose card alternates between two accuracies: every scan moves its point, so the
  correlations are refreshed (their statistics computed);
- `wwhub scan` of one model without a reported value (no correlation can change);
- `wwhub leaderboard` (stored correlations) and `wwhub leaderboard --prefer-import` (computed on the spot);
- `wwhub query "SELECT count(*) FROM layers"`.
The floor is a process that imports numpy, pyarrow.parquet, duckdb and the model-card reader
(huggingface_hub.repocard_data): what a scan's work needs (a correlations refresh no longer needs scipy.special,
reading a card no longer the hub client). Each command's optional heavy imports (pandas, scipy.stats,
scipy.special, the hub client huggingface_hub.hf_api) are listed from one `python -X importtime` run. Runs
alternate between the commits, command by command, so that both see the same machine.
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

from benchmarks.bench_lake import family_peers, small_model  # noqa: E402

ENV = dict(os.environ, OPENBLAS_NUM_THREADS="1", OMP_NUM_THREADS="1", MKL_NUM_THREADS="1")
FLOOR = "import numpy, pyarrow.parquet, duckdb, huggingface_hub.repocard_data"
WATCHED = ("pandas", "scipy.stats", "scipy.special", "huggingface_hub.hf_api")


def seconds(command: list[str], cwd: Path) -> float:
    start = time.perf_counter()
    result = subprocess.run(command, cwd=cwd, env=ENV, capture_output=True, text=True)
    elapsed = time.perf_counter() - start
    if result.returncode != 0:
        raise SystemExit(f"{' '.join(command[:6])} failed in {cwd}: {result.stderr[-2000:]}")
    return elapsed


def heavy_imports(command: list[str], cwd: Path, work: Path) -> list[str]:
    """The WATCHED modules a run of ``command`` (a ``python -m flows`` line) has loaded when it exits."""
    listing = work / "modules.txt"
    script = (
        "import atexit, runpy, sys\n"
        f"atexit.register(lambda: open({str(listing)!r}, 'w').write('\\n'.join(sys.modules)))\n"
        f"sys.argv = ['wwhub', *{command[3:]!r}]\n"
        "runpy.run_module('flows', run_name='__main__')"
    )
    seconds([command[0], "-c", script], cwd)
    loaded = set(listing.read_text().split())
    return [m for m in WATCHED if m in loaded]


def prepare(work: Path) -> tuple[dict[str, list[str]], list[Path]]:
    """The commands (arguments after ``python -m flows``; ``{lake}``: each checkout's lake, ``{models}``: one of the
    two model folders, whose tiny-1b cards differ) and the two model folders."""
    cards = [small_model(work / "models-a", 0.61), small_model(work / "models-b", 0.62)]
    for folder in cards:  # two more points: the family has a correlation
        family_peers(folder)
    scan = ["scan", "--source", "local", "--force", "--lake", "{lake}"]
    return {
        "setup": [*scan[:3], str(cards[0]), *scan[3:], "org/tiny-1b", "org/tiny-2b", "org/tiny-3b", "org/plain-1b"],
        "scan, the point moves": [*scan[:3], "{models}", *scan[3:], "org/tiny-1b"],
        "scan, no reported value": [*scan[:3], str(cards[0]), *scan[3:], "org/plain-1b"],
        "leaderboard": ["leaderboard", "--lake", "{lake}"],
        "leaderboard --prefer-import": ["leaderboard", "--prefer-import", "--lake", "{lake}"],
        "query count(*)": ["query", "SELECT count(*) FROM layers", "--lake", "{lake}"],
    }, cards


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--repeat", type=int, default=9)
    parser.add_argument("--against", help="another commit, run from a temporary git worktree")
    args = parser.parse_args()
    work = Path(tempfile.mkdtemp(prefix="wwhub-bench-startup-"))
    checkouts = {"this checkout": ROOT}
    try:
        if args.against:
            other = work / "against"
            subprocess.run(["git", "worktree", "add", "--detach", str(other), args.against], cwd=ROOT, check=True,
                           capture_output=True)  # fmt: skip
            checkouts[args.against] = other
        for cwd in checkouts.values():
            # Bytecode for both, as scripts/bootstrap.sh compiles an install: where PYTHONDONTWRITEBYTECODE is set (or
            # a file changed since), each process would otherwise compile what it imports, tens of ms per module.
            subprocess.run([sys.executable, "-m", "compileall", "-q", "-j", "0", "flows", "ww_core"], cwd=cwd,
                           check=True, capture_output=True)  # fmt: skip
        commands, cards = prepare(work)
        lakes = {name: work / f"lake-{i}" for i, name in enumerate(checkouts)}

        def line(name: str, label: str, run: int = 0) -> list[str]:
            models = str(cards[(run + 1) % 2])  # the setup scanned cards[0]: run 0 moves the point
            return [sys.executable, "-m", "flows"] + [
                a.replace("{lake}", str(lakes[name])).replace("{models}", models) for a in commands[label]
            ]

        for name, cwd in checkouts.items():
            seconds(line(name, "setup"), cwd)
        floor = min(seconds([sys.executable, "-c", FLOOR], ROOT) for _ in range(args.repeat))
        print(f"floor ({FLOOR}): best {floor:.3f} s of {args.repeat} processes")
        for label in commands:
            if label == "setup":
                continue
            times: dict[str, list[float]] = {name: [] for name in checkouts}
            for run in range(args.repeat):
                for name, cwd in checkouts.items():
                    times[name].append(seconds(line(name, label, run), cwd))
            for name, cwd in checkouts.items():
                best, median = min(times[name]), statistics.median(times[name])
                heavy = ", ".join(heavy_imports(line(name, label, args.repeat), cwd, work)) or "none"
                print(
                    f"{label:<28} {name:<16} best {best:.3f} s, median {median:.3f} s, {best / floor:.2f}x the floor; "
                    f"of {', '.join(WATCHED)} imports {heavy}"
                )
    finally:
        if args.against:
            subprocess.run(["git", "worktree", "remove", "--force", str(work / "against")], cwd=ROOT,
                           capture_output=True)  # fmt: skip
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
