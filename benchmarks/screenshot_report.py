"""Screenshot of an eval report, for the README: `python benchmarks/screenshot_report.py RUN_FOLDER out.png`.

Opens RUN_FOLDER/index.html from file:// in Debian's chromium (headless, through Playwright; never
`playwright install`) and saves the top of the page (--full for the whole page). Pass a folder with
results.json but no index.html and the page is rendered first.
"""

from __future__ import annotations

import argparse
import json
import shutil
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))


def screenshot(run: Path, out: Path, *, full: bool = False, width: int = 1280, height: int = 1400) -> Path:
    from playwright.sync_api import sync_playwright

    page_file = run / "index.html"
    if not page_file.exists():
        from assay.evals.report import write_report

        write_report(json.loads((run / "results.json").read_text()), run)
    chromium = shutil.which("chromium")
    if chromium is None:
        raise SystemExit("chromium is not installed (apt-get install chromium); Playwright drives the system browser")
    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=chromium, headless=True, args=["--no-sandbox"])
        page = browser.new_page(viewport={"width": width, "height": height}, device_scale_factor=1)
        page.goto(page_file.resolve().as_uri())
        page.wait_for_selector("#ex-count[data-count]")
        page.screenshot(path=str(out), full_page=full)
        browser.close()
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("run", type=Path, help="report folder: reports/<model>-<version>-<suite>/")
    ap.add_argument("out", type=Path, help="PNG to write")
    ap.add_argument("--full", action="store_true", help="the whole page, not only the top")
    ap.add_argument("--width", type=int, default=1280)
    ap.add_argument("--height", type=int, default=1400, help="viewport height: how much 'the top' shows")
    args = ap.parse_args()
    print(screenshot(args.run, args.out, full=args.full, width=args.width, height=args.height))


if __name__ == "__main__":
    main()
