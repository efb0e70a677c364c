"""The visual-comparison figures of the README, one per scale, from the released weights.

    SR_DATA_DIR=../shared/data python experiments/paper_tables/figures.py --write-readme

Converts the authors' weights as reproduce.py does, then runs ``python -m sr_lightning.compare``
(as a subprocess, exactly as a user runs it) for each scale into experiments/paper_tables/figures/
(PNG, PDF, HTML), and replaces the list of figures in this folder's README with what it made,
the command and the time each took on this machine (its CPU named).
"""

from __future__ import annotations

import sys
import tempfile
import time
from pathlib import Path

from reproduce import HERE, _run, main_data_dir, parser_for, replace_block

from sr_lightning.hardware import cpu_model

OUT = HERE / "figures"
MARK_START, MARK_END = "<!-- figures:start -->", "<!-- figures:end -->"
# Per scale: the image, the box [y, x, h, w] and the methods with released weights at that scale.
FIGURES = {
    2: ("Set14", 13, [150, 290, 60, 80], ["bicubic", "srcnn", "vdsr", "lapsrn"]),    # zebra's stripes
    3: ("Set14", 12, [48, 300, 60, 80], ["bicubic", "srcnn", "vdsr"]),               # ppt3's lettering
    4: ("Set5", 2, [96, 96, 60, 80], ["bicubic", "srcnn", "vdsr", "imdn", "rlfn"]),  # butterfly's wing
}
LABELS = {"bicubic": "Bicubic", "srcnn": "SRCNN", "vdsr": "VDSR", "lapsrn": "LapSRN", "imdn": "IMDN", "rlfn": "RLFN"}


def model_files(weights: Path, scale: int, work: Path, methods: list[str]) -> list[str]:
    """The compare ``models`` entries: bicubic, and each release imported (or read as it is)."""
    files = []
    for method in methods:
        if method == "bicubic":
            files.append("bicubic")
        elif method == "srcnn":
            files.append(str(work / f"srcnn_x{scale}.ckpt"))
            _run(["-m", "sr_lightning.convert", "--format", "srcnn-mat", "--scale", str(scale),
                  str(weights / f"srcnn_955_imagenet/x{scale}.mat"), files[-1]])
        elif method == "vdsr":
            files.append(str(work / f"vdsr_x{scale}.ckpt"))
            _run(["-m", "sr_lightning.convert", "--format", "vdsr-mat", "--scale", str(scale),
                  str(weights / "vdsr_official/vdsr_official.mat"), files[-1]])
        elif method == "lapsrn":
            files.append(str(work / "lapsrn_x2.ckpt"))
            _run(["-m", "sr_lightning.convert", "--format", "lapsrn-mat",
                  str(weights / "lapsrn_official/LapSRN_x2.mat"), files[-1]])
        elif method == "imdn":
            files.append(str(weights / "imdn_official/x4.pth"))
        elif method == "rlfn":
            files.append(str(weights / "rlfn_official/rlfn_x4.pth"))
    return files


def main() -> None:
    args = parser_for(__doc__).parse_args()
    data_dir = main_data_dir(args.data_dir)
    OUT.mkdir(exist_ok=True)
    lines = []
    with tempfile.TemporaryDirectory() as tmp:
        for scale, (bench, index, box, methods) in FIGURES.items():
            models = model_files(data_dir / "weights", scale, Path(tmp), methods)
            out = OUT / f"figure_x{scale}"
            command = ["-m", "sr_lightning.compare", f"image={bench}", f"index={index}",
                       f"box=[{','.join(map(str, box))}]", f"models=[{','.join(models)}]",
                       f"labels=[{','.join(LABELS[m] for m in methods)}]", f"output={out}", "overwrite=true",
                       f"paths.data_dir={data_dir}"]
            t0 = time.perf_counter()
            printed = _run(command).stdout
            seconds = time.perf_counter() - t0
            print(printed, file=sys.stderr)
            shown = " ".join(f"models=[{','.join(methods)}]" if c.startswith("models=") else c
                             for c in command[2:-3])
            rel = out.relative_to(HERE)
            lines.append(f"x{scale} ([PDF]({rel}.pdf), [slider page]({rel}.html)): `sr-compare {shown}`; "
                         f"{seconds:.0f} s\n\n![x{scale} comparison]({rel}.png)\n")
    block = "\n".join(lines + [f"\nMade by `python experiments/paper_tables/figures.py --write-readme` on the "
                               f"{cpu_model()} ({time.strftime('%Y-%m-%d')}); the model files are the released weights "
                               f"(SRCNN and VDSR converted from their .mat, LapSRN from its DagNN .mat)."])
    print(block)
    if args.write_readme:
        replace_block(HERE / "README.md", MARK_START, MARK_END, block)


if __name__ == "__main__":
    main()
