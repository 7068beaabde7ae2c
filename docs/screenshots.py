"""Screenshots of TensorBoard's tabs for docs/tensorboard.md, taken in a headless Chromium.

    python docs/screenshots.py LOGDIR docs/tensorboard [--tab NAME=FRAGMENT ...] [--only NAME ...]

Starts TensorBoard on LOGDIR (a free local port), opens each tab in Chromium without a screen, and
saves NAME.png in the output folder, reduced to a 256-colour palette so that each stays well under
200 KB. Needs Chromium on the PATH (`chromium` or `chromium-browser`; Debian: `apt install chromium`).
"""

import argparse
import shutil
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

from PIL import Image

# The pictures of docs/tensorboard.md: TensorBoard's URL fragment of each tab, `tagFilter` (a regex) narrowing it to
# the tags worth showing. An image run (CIFAR-10) fills most; an audio run the spectrograms.
DEFAULT_TABS = {
    "scalars": "scalars&tagFilter=^(train|val)/",
    "confusion_matrix": "images&tagFilter=confusion_matrix",
    "misclassified": "images&tagFilter=misclassified",
    "spectrogram": "images&tagFilter=spectrogram",
    "audio": "audio",
    "per_class": "text&tagFilter=per_class",
    "pr_curves": "images&tagFilter=pr_curves",
    "projector": "projector",
    "hparams": "hparams",
}


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_until_up(url: str, seconds: float = 60.0) -> None:
    deadline = time.monotonic() + seconds
    while True:
        try:
            urllib.request.urlopen(url, timeout=2).read()
            return
        except OSError:
            if time.monotonic() > deadline:
                raise SystemExit(f"error: TensorBoard did not answer at {url} within {seconds:.0f} s") from None
            time.sleep(0.5)


def screenshot(browser: str, url: str, out: Path, width: int, height: int, wait_ms: int) -> None:
    with tempfile.TemporaryDirectory() as profile:  # a throwaway profile: no state between tabs
        subprocess.run(
            [
                browser,
                "--headless=new",
                "--no-sandbox",
                "--disable-gpu",
                "--hide-scrollbars",
                f"--user-data-dir={profile}",
                f"--window-size={width},{height}",
                # TensorBoard fetches its data after the page loads; give it time to draw
                f"--virtual-time-budget={wait_ms}",
                f"--screenshot={out}",
                url,
            ],
            check=True,
            capture_output=True,
        )


def shrink(path: Path) -> int:
    """Quantise to a 256-colour palette: TensorBoard's flat UI loses nothing visible."""
    image = Image.open(path).convert("RGB")
    image.quantize(colors=256, method=Image.Quantize.MEDIANCUT).save(path, optimize=True)
    return path.stat().st_size


def main() -> None:
    parser = argparse.ArgumentParser(prog="python docs/screenshots.py", description=__doc__.split("\n")[0])
    parser.add_argument("logdir", type=Path)
    parser.add_argument("out", type=Path)
    parser.add_argument("--tab", action="append", default=[], help="NAME=FRAGMENT, e.g. images=images")
    parser.add_argument("--only", action="append", default=[], help="take only these of the default tabs")
    parser.add_argument("--width", type=int, default=1280)
    parser.add_argument("--height", type=int, default=900)
    parser.add_argument("--wait-ms", type=int, default=15000)
    args = parser.parse_args()
    browser = shutil.which("chromium") or shutil.which("chromium-browser") or shutil.which("google-chrome")
    if browser is None:
        sys.exit("error: no Chromium on the PATH; install it (Debian: apt install chromium)")
    if not args.logdir.is_dir():
        sys.exit(f"error: {args.logdir} is not a folder of TensorBoard runs")
    tabs = dict(item.split("=", 1) for item in args.tab) if args.tab else DEFAULT_TABS
    if args.only:
        unknown = sorted(set(args.only) - set(tabs))
        if unknown:
            sys.exit(f"error: no tab named {', '.join(unknown)}; there are {', '.join(tabs)}")
        tabs = {name: tabs[name] for name in args.only}
    args.out.mkdir(parents=True, exist_ok=True)
    port = free_port()
    command = [sys.executable, "-m", "tensorboard.main", "--logdir", str(args.logdir), "--port", str(port)]
    server = subprocess.Popen(
        [*command, "--host", "127.0.0.1"],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        base = f"http://127.0.0.1:{port}/"
        wait_until_up(base)
        for name, fragment in tabs.items():
            out = args.out / f"{name}.png"
            screenshot(browser, f"{base}#{fragment}", out, args.width, args.height, args.wait_ms)
            print(f"{out}: {shrink(out) / 1024:.0f} KB")
    finally:
        server.terminate()
        server.wait()


if __name__ == "__main__":
    main()
