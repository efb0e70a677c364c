"""The comparison as one self-contained HTML page (no network access: every image inlined as
a PNG data URI): a before/after slider between any two methods' zoomed crops (the HR's
included), the crops side by side, and the PSNR/SSIM table.

The slider's position can be given in the address (``page.html#slider=20``, percent of the
width from the left): the page sets the slider's input to it, as a user dragging it would."""

from __future__ import annotations

import base64
import html
import io
import json

import numpy as np
from PIL import Image

from sr_lightning.comparison.panels import Comparison


def png_data_uri(image: np.ndarray) -> str:
    """An uint8 (H, W, C) array as a ``data:image/png;base64,...`` URI."""
    buf = io.BytesIO()
    Image.fromarray(image[..., 0] if image.shape[-1] == 1 else image).save(buf, format="PNG")
    return "data:image/png;base64," + base64.b64encode(buf.getvalue()).decode("ascii")


_STYLE = """
body { margin: 0; font-family: sans-serif; background: #fff; color: #222; }
#viewer { position: relative; overflow: hidden; }
#viewer img { position: absolute; left: 0; top: 0; image-rendering: pixelated; max-width: none; }
#clip { position: absolute; left: 0; top: 0; height: 100%; overflow: hidden; }
#handle { position: absolute; top: 0; width: 2px; height: 100%; background: #e6194b; }
#slider { display: block; margin: 6px 0; }
main { padding: 0 0 16px 0; }
.crops { display: flex; flex-wrap: wrap; gap: 8px; margin: 12px 0; }
.crops figure { margin: 0; text-align: center; font-size: 12px; }
.crops img { image-rendering: pixelated; display: block; }
table { border-collapse: collapse; margin: 8px 0; }
td, th { border: 1px solid #ccc; padding: 2px 8px; text-align: right; }
td:first-child, th:first-child { text-align: left; }
"""

_SCRIPT = """
const crops = JSON.parse(document.getElementById('crops-data').textContent);
const slider = document.getElementById('slider'), clip = document.getElementById('clip');
const handle = document.getElementById('handle'), width = %(width)d;
const left = document.getElementById('left'), right = document.getElementById('right');
const pickLeft = document.getElementById('pick-left'), pickRight = document.getElementById('pick-right');
function place() {
  const px = Math.round(width * Number(slider.value) / 100);
  clip.style.width = px + 'px';
  handle.style.left = Math.min(px, width - 2) + 'px';
}
slider.addEventListener('input', place);
pickLeft.addEventListener('change', () => { left.src = crops[pickLeft.value]; });
pickRight.addEventListener('change', () => { right.src = crops[pickRight.value]; });
const asked = /slider=([0-9.]+)/.exec(location.hash);
if (asked) { slider.value = asked[1]; slider.dispatchEvent(new Event('input')); }
place();
"""


def render(comparison: Comparison, start: float = 50.0) -> str:
    """The page: the slider shows the first method on the left and the last on the right,
    the boundary at ``start`` percent of the crop's width."""
    crops = comparison.crops()
    uris = {label: png_data_uri(crop) for label, crop in crops}
    h, w = crops[0][1].shape[:2]
    first, last = comparison.methods[0].label, comparison.methods[-1].label
    esc = html.escape

    def options(selected: str) -> str:
        return "".join(f'<option value="{esc(label)}"{" selected" if label == selected else ""}>{esc(label)}</option>'
                       for label, _ in crops)

    rows = "".join(f"<tr><td>{esc(m.label)}</td><td>{m.psnr:.3f}</td><td>{m.ssim:.4f}</td></tr>"
                   for m in comparison.methods)
    figures = "".join(f'<figure><img src="{uris[label]}" width="{w}" height="{h}" alt="{esc(label)}">'
                      f"<figcaption>{esc(label)}<br>{esc(caption)}</figcaption></figure>"
                      for (label, _), caption in zip(crops, ["(PSNR / SSIM)"] + [comparison.caption(m)
                                                                                for m in comparison.methods],
                                                       strict=True))
    notes = "".join(f"<p>{esc(n)}</p>" for n in comparison.notes)
    b = comparison.box
    title = f"{comparison.name} x{comparison.scale}: box [y={b.y}, x={b.x}, h={b.h}, w={b.w}], zoom x{comparison.zoom}"
    data = json.dumps(uris).replace("</", "<\\/")
    return f"""<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>{esc(title)}</title><style>{_STYLE}</style></head>
<body>
<div id="viewer" style="width:{w}px;height:{h}px">
<img id="right" src="{uris[last]}" width="{w}" height="{h}" alt="right">
<div id="clip" style="width:{round(w * start / 100)}px"><img id="left" src="{uris[first]}" width="{w}" height="{h}"
alt="left"></div>
<div id="handle"></div>
</div>
<input id="slider" type="range" min="0" max="100" step="any" value="{start}" style="width:{w}px"
aria-label="before/after position">
<main>
<label>left <select id="pick-left">{options(first)}</select></label>
<label>right <select id="pick-right">{options(last)}</select></label>
<h1 style="font-size:16px">{esc(title)}</h1>
{notes}
<table><tr><th>method</th><th>PSNR (dB)</th><th>SSIM</th></tr>{rows}</table>
<div class="crops">{figures}</div>
</main>
<script type="application/json" id="crops-data">{data}</script>
<script>{_SCRIPT % {"width": w}}</script>
</body></html>
"""
