"""Work folders for downloaded shards (``WWHUB_WORKDIR``, else the temp folder), named after the process that owns
them, so that a scan can delete what a killed scan (SIGKILL, out of memory, power loss) left behind, and only that:
folders of this host whose owner process is gone. A live scan's folder is never touched."""

from __future__ import annotations

import os
import re
import shutil
import socket
import tempfile
from pathlib import Path

PREFIX = "wwhub-shards-"


def _host() -> str:
    return re.sub(r"[^A-Za-z0-9.]", "_", socket.gethostname())[:64] or "host"


def workdir_root() -> Path:
    """The one place that reads ``WWHUB_WORKDIR``."""
    return Path(os.environ.get("WWHUB_WORKDIR") or tempfile.gettempdir())


def new_workdir() -> Path:
    """A fresh folder for one model's shards: ``wwhub-shards-PID@HOST-XXXXXXXX``."""
    return Path(tempfile.mkdtemp(prefix=f"{PREFIX}{os.getpid()}@{_host()}-", dir=workdir_root()))


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # another user's process has this pid: alive
        return True
    return True


def remove_dead_workdirs() -> list[Path]:
    """Delete this host's shard folders whose owner process no longer runs; return them. Folders of other hosts
    (a shared temp folder), of other users, of live processes, or not named by this module are left alone."""
    pattern = re.compile(rf"^{re.escape(PREFIX)}(\d+)@{re.escape(_host())}-[^-/]+$")
    removed = []
    try:
        candidates = list(workdir_root().glob(f"{PREFIX}*"))
    except OSError:
        return removed
    for path in candidates:
        match = pattern.match(path.name)
        if not match or int(match.group(1)) == os.getpid() or _alive(int(match.group(1))):
            continue
        try:
            if not path.is_dir() or path.is_symlink() or path.stat().st_uid != os.getuid():
                continue
        except OSError:
            continue
        shutil.rmtree(path, ignore_errors=True)
        removed.append(path)
    return removed
