"""Screenshot of the documentation site's home page in headless Chromium: docs/images/docs-home.png.

    python scripts/screenshot_docs.py [--out docs/images/docs-home.png] [--width 1280 --height 900]

Builds the site (``mkdocs build --strict``) into a temporary folder, serves it on a loopback port and captures the
home page (the same Chromium set-up as scripts/screenshot_explore.py).
"""
from __future__ import annotations

import argparse
import functools
import http.server
import pathlib
import shutil
import subprocess
import sys
import tempfile
import threading
import time

ROOT = pathlib.Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "scripts"))


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", default=str(ROOT / "docs" / "images" / "docs-home.png"))
    parser.add_argument("--width", type=int, default=1280)
    parser.add_argument("--height", type=int, default=900)
    args = parser.parse_args()
    from screenshot_explore import chromium

    with tempfile.TemporaryDirectory() as site:
        subprocess.run([sys.executable, "-m", "mkdocs", "build", "--strict", "-q", "--site-dir", site], cwd=ROOT,
                       check=True)
        handler = functools.partial(http.server.SimpleHTTPRequestHandler, directory=site)
        server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
        threading.Thread(target=server.serve_forever, daemon=True).start()
        driver = chromium(args.width, args.height)
        try:
            driver.get(f"http://127.0.0.1:{server.server_address[1]}/")
            time.sleep(1.5)  # fonts and images
            pathlib.Path(args.out).parent.mkdir(parents=True, exist_ok=True)
            driver.save_screenshot(args.out)
        finally:
            driver.quit()
            shutil.rmtree(driver.profile, ignore_errors=True)
            server.shutdown()
    print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
