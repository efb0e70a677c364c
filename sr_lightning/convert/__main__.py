"""``python -m sr_lightning.convert --format FORMAT [--scale S] SRC DST``: import released weights."""

from __future__ import annotations

import argparse
import sys

from sr_lightning.convert.formats import FORMATS
from sr_lightning.convert.importer import convert
from sr_lightning.errors import UserError


def main(argv: list[str] | None = None) -> int:
    """Command-line entry point; returns the exit status (2 on bad input, with one ``error:`` line)."""
    parser = argparse.ArgumentParser(
        prog="python -m sr_lightning.convert",
        description="Import the authors' released weights as an sr_lightning checkpoint, usable by "
                    "sr_lightning.eval, sr_lightning.upscale and sr_lightning.train (init_from / ckpt_path).")
    parser.add_argument("--format", required=True, choices=sorted(FORMATS),
                        help="srcnn-mat: SRCNN's MATLAB models (any f1-f2-f3); vdsr-mat: VDSR as MatConvNet; "
                             "lapsrn-mat: LapSRN / MS-LapSRN MatConvNet DagNN models (any number of levels); "
                             "pth: a PyTorch state dict (.pth/.pt/.safetensors: a release, a community file)")
    parser.add_argument("--net", default=None,
                        help="with --format pth: the model config the weights are for (imdn, ...); without it "
                             "the network and its arguments are detected from the file's keys and shapes")
    parser.add_argument("--scale", type=int, default=None,
                        help="the upscaling factor (SRCNN: taken from the file name x2/x3/x4 when it says; "
                             "pth: the one the file's upsampler fits)")
    parser.add_argument("--force", action="store_true", help="overwrite DST if it exists")
    parser.add_argument("src", help="the released weights file (.mat, .pth, .safetensors)")
    parser.add_argument("dst", help="the checkpoint to write (.ckpt)")
    args = parser.parse_args(argv)
    try:
        path = convert(args.format, args.src, args.dst, scale=args.scale, overwrite=args.force, net=args.net)
    except (UserError, FileNotFoundError, FileExistsError) as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    print(f"wrote {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
