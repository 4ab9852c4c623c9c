"""Look at a report page in headless Chromium: are its figures rendered?

Install Chromium on Debian/Ubuntu with ``apt-get install -y chromium``.  The page written by
:func:`deepeft.report.study_report.write_report` marks ``<body>`` on load with
``data-figures-total`` and ``data-figures-rendered`` (images with a decoded, non-empty bitmap);
:func:`check_rendered` reads them back from Chromium's DOM dump and can also save a screenshot.
"""
from __future__ import annotations

import os
import re
import shutil
import subprocess
import tempfile
from pathlib import Path

FLAGS = ("--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
         "--disable-background-networking", "--disable-component-update", "--disable-sync")


def find_chromium() -> str | None:
    for name in ("chromium", "chromium-browser", "google-chrome", "google-chrome-stable"):
        p = shutil.which(name)
        if p:
            return p
    return None


def _run(args: list[str], timeout: float) -> subprocess.CompletedProcess:
    with tempfile.TemporaryDirectory(prefix="deepeft-chromium-") as profile:
        return subprocess.run([*args[:1], *FLAGS, f"--user-data-dir={profile}", *args[1:]], capture_output=True,
                              text=True, timeout=timeout)


def check_rendered(html_path: str | os.PathLike, screenshot: str | os.PathLike | None = None,
                   timeout: float = 60.0) -> dict:
    """{'total': n images, 'rendered': n decoded, 'screenshot': path or None}.  Raises
    FileNotFoundError if no Chromium is installed."""
    exe = find_chromium()
    if exe is None:
        raise FileNotFoundError("chromium not found (apt-get install -y chromium)")
    url = Path(html_path).resolve().as_uri()
    res = _run([exe, "--virtual-time-budget=5000", "--dump-dom", url], timeout)
    m = re.search(r'data-figures-total="(\d+)"\s+data-figures-rendered="(\d+)"', res.stdout)
    if not m:
        raise RuntimeError(f"chromium produced no render marks (rc={res.returncode}): {res.stderr[-500:]}")
    out = {"total": int(m.group(1)), "rendered": int(m.group(2)), "screenshot": None}
    if screenshot is not None:
        shot = Path(screenshot).resolve()
        _run([exe, "--window-size=1400,2400", "--hide-scrollbars", f"--screenshot={shot}", url], timeout)
        out["screenshot"] = str(shot) if shot.exists() and shot.stat().st_size > 0 else None
    return out


if __name__ == "__main__":  # python -m deepeft.report.browser PAGE.html [SHOT.png]
    import json
    import sys

    print(json.dumps(check_rendered(sys.argv[1], sys.argv[2] if len(sys.argv) > 2 else None)))
