"""Peak resident memory of ``hierseg predict`` on large images: bounded inference (the default ``--max-pixels``)
against whole-image inference (``--max-pixels`` above the image: the behaviour before the bound), measured in the
same run, and optionally against another installation's ``hierseg`` (``--before``, e.g. the main checkout).

Each measurement is one ``hierseg predict`` process on one synthetic RGB image of N x N (smooth colour fields, JPEG);
its peak RSS is the kernel's ``ru_maxrss`` from ``wait4``. A process that passes ``--cap-gb`` is killed and reported
as ``>cap`` (on a shared machine nothing is allowed to take it all).

    .venv/bin/python bench/predict_memory_bench.py [--sizes 1000 2000 4000 8000] [--cap-gb 6] [--before PATH]
"""

from __future__ import annotations

import argparse
import os
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
from PIL import Image

HERE = Path(__file__).resolve().parent
KWARGS = {"datasets": ["cityscapes"], "aspp_channels": 32, "output_stride": 16}


def make_image(path: Path, size: int) -> None:
    rng = np.random.default_rng(size)
    small = rng.integers(0, 256, (max(2, size // 256), max(2, size // 256), 3), dtype=np.uint8)
    Image.fromarray(small).resize((size, size), Image.BILINEAR).save(path, quality=90)


def make_checkpoint(path: Path) -> None:
    import torch

    from hierseg.engine.checkpoint import save_checkpoint
    from hierseg.models import create_model

    torch.manual_seed(0)
    save_checkpoint(path, "deeplab_resnet18", KWARGS, create_model("deeplab_resnet18", **KWARGS))


def peak_rss(args: list[str], cap: int) -> tuple[float | None, float, int]:
    """(peak RSS in MB or None when capped, seconds, exit code)."""
    start = time.monotonic()
    proc = subprocess.Popen(args, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, start_new_session=True)
    capped = False
    while True:
        pid, status, usage = os.wait4(proc.pid, os.WNOHANG)
        if pid:
            break
        try:
            rss = int(next(line for line in Path(f"/proc/{proc.pid}/status").read_text().splitlines()
                           if line.startswith("VmRSS:")).split()[1]) * 1024
        except (OSError, StopIteration):
            rss = 0
        if rss > cap:
            capped = True
            os.killpg(proc.pid, signal.SIGKILL)
        time.sleep(0.05)
    proc.returncode = os.waitstatus_to_exitcode(status)
    if proc.returncode not in (0, -9):
        sys.stderr.write(proc.stderr.read().decode()[-2000:])
    return (None if capped else usage.ru_maxrss / 1024), time.monotonic() - start, proc.returncode


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[1000, 2000, 4000],
                        help="image sides (8000 takes a quarter of an hour on 2 CPU cores)")
    parser.add_argument("--cap-gb", type=float, default=8.0)
    parser.add_argument("--hierseg", type=Path, default=Path(sys.executable).parent / "hierseg")
    parser.add_argument("--before", type=Path, help="another installation's hierseg, run without --max-pixels")
    args = parser.parse_args()
    cap = int(args.cap_gb * (1 << 30))
    with tempfile.TemporaryDirectory(prefix="hierseg_membench_") as tmp:
        tmp = Path(tmp)
        checkpoint = tmp / "model.pt"
        make_checkpoint(checkpoint)
        print(f"hierseg predict, deeplab_resnet18 {KWARGS}, CPU, --crop 512; peak RSS in MB (cap {args.cap_gb:g} GB)")
        header = f"{'image':>11} {'MP':>6} {'bounded':>9} {'whole':>9} {'ratio':>7}"
        print(header + (f" {'before':>9} {'ratio':>7}" if args.before else "") + "   seconds (bounded)")
        rows = []
        for size in args.sizes:
            image = tmp / f"image_{size}.jpg"
            make_image(image, size)
            base = ["predict", "--checkpoint", str(checkpoint), "--dataset", "cityscapes", "--device", "cpu",
                    str(image)]
            bounded, seconds, _ = peak_rss([str(args.hierseg), *base, "--out", str(tmp / "a")], cap)
            whole, _, _ = peak_rss([str(args.hierseg), *base, "--out", str(tmp / "b"), "--max-pixels", str(10**12)],
                                   cap)
            line = (f"{size:>5}x{size:<5} {size * size / 1e6:6.1f} {fmt(bounded)} {fmt(whole)} "
                    f"{ratio(bounded, whole, cap / 2**20)}")
            if args.before:
                before, _, _ = peak_rss([str(args.before), *base, "--out", str(tmp / "c")], cap)
                line += f" {fmt(before)} {ratio(bounded, before, cap / 2**20)}"
            print(f"{line}   {seconds:.0f}", flush=True)
            rows.append((size * size / 1e6, bounded))
        known = [(mp, mb) for mp, mb in rows if mb is not None]
        if len(known) >= 2:
            slope = np.polyfit([mp for mp, _ in known], [mb for _, mb in known], 1)
            print(f"bounded: peak RSS ~ {slope[1]:.0f} MB + {slope[0]:.1f} MB per megapixel "
                  f"({slope[0]:.1f} bytes per pixel)")


def fmt(mb: float | None) -> str:
    return f"{'>cap':>9}" if mb is None else f"{mb:9.0f}"


def ratio(a: float | None, b: float | None, cap_mb: float) -> str:
    if a is None:
        return f"{'-':>7}"
    if b is None:  # the baseline passed the cap: the ratio is below bounded / cap
        return f"{'<' + format(a / cap_mb, '.2f'):>7}"
    return f"{a / b:7.2f}"


if __name__ == "__main__":
    main()
