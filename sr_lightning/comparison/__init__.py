"""The visual-comparison figure papers print beside their tables: the methods' outputs on
one image, cropped to a box, nearest-neighbour zoomed, with the protocol's PSNR/SSIM of the
whole image under each (:mod:`.panels`), drawn as a matplotlib figure (:mod:`.figure`) and
as a self-contained HTML page with a before/after slider (:mod:`.page`)."""

from sr_lightning.comparison.panels import Box, Comparison, Method, parse_box, zoom_for, zoomed

__all__ = ["Box", "Comparison", "Method", "parse_box", "zoom_for", "zoomed"]
