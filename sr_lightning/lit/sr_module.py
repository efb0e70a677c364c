"""``SRLitModule``: the one LightningModule for every network.

Everything it is built from is a plain config dict (the network, the loss, the optimizer
and scheduler as partials, the evaluation protocol), saved as hyperparameters, so
``SRLitModule.load_from_checkpoint(path)`` rebuilds it with no Hydra config around, from
the checkpoint's data only (:mod:`sr_lightning.checkpoint`: nothing the file names is run).
"""

from __future__ import annotations

import copy
from collections.abc import Collection, Mapping
from pathlib import Path
from typing import Any

import lightning as L
import torch
from hydra.utils import instantiate
from omegaconf import OmegaConf
from torch import Tensor, nn
from torchmetrics import MaxMetric, MetricCollection

from sr_lightning.checkpoint import Checkpoint, RunMeta, read_checkpoint
from sr_lightning.errors import UserError
from sr_lightning.lit.evaluation import Evaluation, crop_pixels
from sr_lightning.metrics import GMSD, PSNR, SSIM, quantize
from sr_lightning.nets import NETS, build_net
from sr_lightning.ops.color import colour_of
from sr_lightning.ops.precision import exact_float32
from sr_lightning.ops.resize import imresize
from sr_lightning.ops.self_ensemble import check_rotatable, self_ensemble


def to_plain(cfg: Any) -> Any:
    """A DictConfig/ListConfig (or anything else) as plain Python containers, resolved."""
    if OmegaConf.is_config(cfg):
        return OmegaConf.to_container(cfg, resolve=True)
    return copy.deepcopy(cfg)


class EvalMetrics(MetricCollection):
    """PSNR/SSIM of the network and of bicubic on one evaluation set, and the network's GMSD (a
    perceptual-quality proxy that needs no downloaded weights): a torchmetrics collection,
    updated with ``(sr, bicubic, hr, gray)``; ``compute()`` also gives ``num_images`` (over all
    processes)."""

    ORDER = ("psnr", "ssim", "psnr_bicubic", "ssim_bicubic", "gmsd")

    def __init__(self, crop_border: int, y_channel: bool) -> None:
        kw = {"crop_border": crop_border, "y_channel": y_channel}
        super().__init__({"psnr": PSNR(**kw), "ssim": SSIM(**kw), "gmsd": GMSD(**kw),
                          "psnr_bicubic": PSNR(**kw), "ssim_bicubic": SSIM(**kw)}, compute_groups=False)

    def update(self, sr: Tensor, bicubic: Tensor, hr: Tensor, gray: Tensor | None = None) -> None:  # type: ignore[override]
        """Add a batch: ``sr``, ``bicubic``, ``hr`` (N, C, H, W) in [0, 1]; ``gray`` (N,) or None."""
        for name, metric in self.items(keep_base=True):
            metric.update(bicubic if name.endswith("_bicubic") else sr, hr, gray)

    def compute(self) -> dict[str, float]:  # type: ignore[override]
        values = super().compute()
        out = {name: float(values[name]) for name in self.ORDER}  # metrics.json's order
        psnr = self["psnr"]
        with psnr.sync_context():  # the count over all processes, not this one's
            out["num_images"] = int(psnr.count)
        return out


class SRLitModule(L.LightningModule):
    """Train and evaluate any :class:`SRNet` on ``{"lr", "hr", "name"}`` batches.

    Args:
        net: network config, ``{"_target_": "sr_lightning.nets.vdsr.VDSR", "scale": 2, ...}``.
        loss: loss config (``_target_`` to an ``nn.Module`` taking (sr, hr)); None for eval only.
        optimizer: optimizer config with ``_partial_: true`` (params are added); None for eval only.
        scheduler: scheduler config with ``_partial_: true`` and an ``interval`` key
            (``"epoch"`` or ``"step"``: when it steps), or None.
        evaluation: the protocol options (:class:`sr_lightning.lit.evaluation.Evaluation`:
            ``crop_border``, ``y_channel``, ``quantize``, ``bicubic_border``); unset ones
            take the literature's defaults.
        channels_last: run the network in channels_last memory format.
        adjustable_clip: VDSR's adjustable gradient clipping: clip every gradient element
            to [-theta/lr, theta/lr] with this theta and the current learning rate (None: off;
            the trainer's ``gradient_clip_val`` applies instead).
        compile_net: compile the network with ``torch.compile`` (in place: checkpoints keep
            the same keys). The first steps pay the compilation.
    """

    def __init__(
        self,
        net: Mapping[str, Any],
        loss: Mapping[str, Any] | None = None,
        optimizer: Mapping[str, Any] | None = None,
        scheduler: Mapping[str, Any] | None = None,
        evaluation: Mapping[str, Any] | None = None,
        channels_last: bool = False,
        adjustable_clip: float | None = None,
        compile_net: bool = False,
    ) -> None:
        super().__init__()
        net, loss, optimizer, scheduler = (to_plain(c) for c in (net, loss, optimizer, scheduler))
        protocol = Evaluation.from_config(to_plain(evaluation))
        if scheduler and scheduler.get("interval", "epoch") not in ("epoch", "step"):
            raise UserError(f"scheduler.interval={scheduler['interval']!r} must be 'epoch' or 'step'")
        self.save_hyperparameters({"net": net, "loss": loss, "optimizer": optimizer, "scheduler": scheduler,
                                   "evaluation": protocol.as_dict(),
                                   "channels_last": channels_last, "adjustable_clip": adjustable_clip,
                                   "compile_net": compile_net})
        if not isinstance(channels_last, bool) or not isinstance(compile_net, bool):
            raise UserError(f"channels_last={channels_last!r} and compile_net={compile_net!r} must be true or false "
                            f"(train resolves the configs' 'auto' before it builds the module)")
        if adjustable_clip is not None and float(adjustable_clip) <= 0:
            raise UserError(f"adjustable_clip={adjustable_clip} must be > 0 (or null: off)")
        self.net = build_net(net)
        if NETS.get(self.net.name) is type(self.net):  # checkpoints record the registry name beside _target_
            self.hparams["net"] = {**self.hparams["net"], "name": self.net.name}
        if channels_last:
            self.net = self.net.to(memory_format=torch.channels_last)
        if compile_net:
            self.net.compile()
        self.criterion = instantiate(loss) if loss else None
        self.scale = self.net.scale
        self.crop_border = crop_pixels(protocol.crop_border, self.scale)
        self.bicubic_border = protocol.bicubic_border
        self.y_channel, self.quantize, self.gray = protocol.y_channel, protocol.quantize, protocol.gray
        self.y_output = protocol.y_output
        self.self_ensemble = protocol.self_ensemble
        self.val_metrics = EvalMetrics(self.crop_border, self.y_channel)
        self.test_metrics = nn.ModuleDict()
        # The best val/psnr so far (a metric, not a weight: an EMA of the weights must not average
        # it), kept in checkpoints under "psnr_best".
        self.psnr_best = MaxMetric().set_dtype(torch.float64)
        self.test_results: dict[str, dict[str, float]] = {}
        # What checkpoints record of the training under "sr_lightning" (the one writer of it).
        self.run_meta = RunMeta()

    @classmethod
    def load_from_checkpoint(  # type: ignore[override]
        cls,
        checkpoint_path: str | Path | Checkpoint,
        map_location: str | torch.device | None = None,
        *,
        net_overrides: Mapping[str, Any] | None = None,
        trusted_nets: Collection[str] = (),
        **kwargs: Any,
    ) -> SRLitModule:
        """Rebuild a module from a checkpoint without running anything the file names
        (:func:`sr_lightning.checkpoint.read_checkpoint`, then :func:`sr_lightning.lit.load_module`).

        The network, evaluation protocol, ``channels_last`` and ``adjustable_clip`` come from
        the checkpoint; the loss, optimizer and scheduler it records are never built. To
        train further, pass your own (``loss={"_target_": "torch.nn.L1Loss"}``,
        ``optimizer=...``); an :class:`SRGANModule` needs ``discriminator=...`` likewise.

        Args:
            checkpoint_path: a ``.ckpt`` file, or a :class:`~sr_lightning.checkpoint.Checkpoint`.
            map_location: the device to put the module on (default: CPU).
            net_overrides: network kwargs to change (e.g. the scale of a scale-agnostic network).
            trusted_nets: ``_target_`` paths of your own (unregistered) networks the file may name.
            kwargs: constructor arguments that replace the checkpoint's (``evaluation``,
                ``channels_last``, ``loss``, ...).

        Raises:
            FileNotFoundError, UserError: the file is missing, unreadable, or holds something it
                will not use (the message names the key).
        """
        from sr_lightning.lit.loading import load_module

        ckpt = checkpoint_path if isinstance(checkpoint_path, Checkpoint) else \
            read_checkpoint(checkpoint_path, trusted_nets=trusted_nets)
        return load_module(ckpt, cls, device=map_location, net_overrides=net_overrides, **kwargs)

    def on_save_checkpoint(self, checkpoint: dict[str, Any]) -> None:
        checkpoint["sr_lightning"] = self.run_meta.as_dict()
        checkpoint["psnr_best"] = float(self.psnr_best.max_value)

    def on_load_checkpoint(self, checkpoint: dict[str, Any]) -> None:
        # Checkpoints written while psnr_best was a buffer hold it among their weights.
        legacy = checkpoint.get("state_dict", {}).pop("psnr_best", None)
        checkpoint.get("current_model_state", {}).pop("psnr_best", None)
        value = checkpoint.get("psnr_best", legacy)
        if value is not None and float(value) > float("-inf"):
            self.psnr_best.update(torch.as_tensor(float(value)))

    # -- forward -----------------------------------------------------------------------
    def forward(self, lr: Tensor) -> Tensor:
        """(N, C, h, w) in [0, 1] -> (N, C, s*h, s*w), float32, unclamped."""
        return self.net(self.laid_out(lr)).float()

    def laid_out(self, lr: Tensor) -> Tensor:
        """The input in the memory format the run chose (``channels_last``)."""
        return lr.contiguous(memory_format=torch.channels_last) if self.hparams.channels_last else lr

    def forward_ensemble(self, lr: Tensor, option: str = "evaluation.self_ensemble") -> Tensor:
        """The x8 self-ensemble of :meth:`forward`: (N, C, h, w) -> (N, C, s*h, s*w), float32,
        unclamped; a network of one input size is refused unless ``lr`` is square at it
        (the message names ``option``)."""
        check_rotatable(self.net.name, self.net.fixed_input_size, lr.shape[-2:], option)
        return self_ensemble(self, lr)

    def _check_batch(self, batch: Mapping[str, Any]) -> None:
        lr = batch["lr"]
        if lr.shape[1] != self.net.in_channels:
            raise UserError(f"the data has {lr.shape[1]} channel(s) but the network takes {self.net.in_channels}: "
                             f"set data.channels={self.net.in_channels}")

    # -- training ----------------------------------------------------------------------
    def training_step(self, batch: Mapping[str, Any], batch_idx: int) -> Tensor:
        if self.criterion is None:
            raise RuntimeError("SRLitModule was built without a loss; it cannot train")
        with self.net.at_scale(int(batch.get("scale", self.scale))):
            loss = self.net.training_loss(self.laid_out(batch["lr"]), batch["hr"], self.criterion)
        self.log("train/loss", loss, prog_bar=True, batch_size=batch["lr"].shape[0])
        return loss

    def configure_gradient_clipping(self, optimizer: torch.optim.Optimizer, gradient_clip_val: float | None = None,
                                    gradient_clip_algorithm: str | None = None) -> None:
        theta = self.hparams.get("adjustable_clip")
        if theta is None:
            self.clip_gradients(optimizer, gradient_clip_val, gradient_clip_algorithm)
            return
        if gradient_clip_val:
            raise UserError(f"adjustable_clip={theta} and trainer.gradient_clip_val={gradient_clip_val} are both "
                             f"set; set trainer.gradient_clip_val=null (or adjustable_clip=null)")
        lr = optimizer.param_groups[0]["lr"]
        self.clip_gradients(optimizer, gradient_clip_val=float(theta) / lr, gradient_clip_algorithm="value")

    def configure_optimizers(self) -> Any:
        params = [p for p in self.parameters() if p.requires_grad]
        if not params:
            raise UserError(f"network {self.net.name!r} has no trainable parameters: evaluate it with "
                             f"`python -m sr_lightning.eval model={self.net.name}` instead of training it")
        if self.hparams.optimizer is None:
            raise RuntimeError("SRLitModule was built without an optimizer; it cannot train")
        optimizer = instantiate(self.hparams.optimizer)(params=params)
        if not self.hparams.scheduler:
            return optimizer
        cfg = dict(self.hparams.scheduler)
        interval = cfg.pop("interval", "epoch")
        scheduler = instantiate(cfg)(optimizer=optimizer)
        return {"optimizer": optimizer, "lr_scheduler": {"scheduler": scheduler, "interval": interval}}

    # -- evaluation --------------------------------------------------------------------
    def predict_pair(self, lr: Tensor, ensemble: bool = False, quantized: bool = True) -> tuple[Tensor, Tensor]:
        """SR and bicubic for an LR batch (N, C, h, w) in [0, 1]: (N, C, s*h, s*w) float32,
        clamped (and quantised if configured and ``quantized``); ``ensemble``: the SR is the x8
        self-ensemble.

        The network runs in float32 here whatever the training precision (and on CUDA
        without TF32), so reported numbers do not depend on it.
        """
        with exact_float32(lr.device):
            sr = (self.forward_ensemble(lr.float()) if ensemble else self(lr.float())).clamp(0.0, 1.0)
        bicubic = imresize(lr.float(), self.scale, border=self.bicubic_border).clamp(0.0, 1.0)
        if self.quantize and quantized:
            sr, bicubic = quantize(sr), quantize(bicubic)
        return sr, bicubic

    def _evaluate(self, batch: Mapping[str, Any], metrics: EvalMetrics, ensemble: bool = False
                  ) -> dict[str, Any] | None:
        """Update ``metrics`` with a batch (``ensemble``: the SR is the x8 self-ensemble); returns
        what callbacks may use (the kept images' ``sr``, ``bicubic``, ``hr`` (N, C, H, W) in
        [0, 1], ``name``, ``gray``), or None."""
        self._check_batch(batch)
        keep = ~torch.as_tensor(batch.get("pad", False), device=batch["lr"].device).reshape(-1)
        if not keep.any():  # a distributed sampler's filler: run the network (DDP expects it), count nothing
            self.predict_pair(batch["lr"], ensemble)
            return None
        colour = self.y_output == "rgb" and self.net.in_channels == 1  # quantised once in colour
        sr, bicubic = self.predict_pair(batch["lr"][keep], ensemble, quantized=not colour)
        gray = batch.get("gray") if self.gray == "own" else None  # "rgb": scored as the RGB image they were read as
        gray = None if gray is None else torch.as_tensor(gray, device=keep.device).reshape(-1)[keep]
        hr = batch["hr"][keep]
        if colour:
            sr, bicubic, hr = self._in_colour(batch, keep, sr, bicubic, hr)
        metrics.update(sr, bicubic, hr, gray)
        names = [n for n, k in zip(batch.get("name", []), keep.tolist(), strict=False) if k]
        return {"sr": sr, "bicubic": bicubic, "hr": hr, "name": names, "gray": gray}

    def _in_colour(self, batch: Mapping[str, Any], keep: Tensor, sr: Tensor, bicubic: Tensor, hr: Tensor
                   ) -> tuple[Tensor, Tensor, Tensor]:
        """``evaluation.y_output=rgb``: a Y network's SR and bicubic Y (N, 1, H, W) as the colour
        images its authors' code saves (with the LR's upscaled chroma, clamped and quantised as
        configured), and the HR in colour (N, 3, H, W); a grayscale image stays as it is."""
        if "lr_rgb" not in batch:
            if all(torch.as_tensor(batch.get("gray", False)).reshape(-1).tolist()):
                return (quantize(sr), quantize(bicubic), hr) if self.quantize else (sr, bicubic, hr)
            raise UserError("evaluation.y_output=rgb scores a Y network's output in colour, but the test LR was made "
                            "from the Y channel: set data.degradation.source=rgb_float (LapSRN's test code) or "
                            "rgb_uint8, or evaluation.y_output=y")
        lr_rgb, hr_rgb = batch["lr_rgb"][keep].float(), batch["hr_rgb"][keep].float()
        in_colour = [colour_of(y, lr_rgb, border=self.bicubic_border).clamp(0.0, 1.0) for y in (sr, bicubic)]
        if self.quantize:
            in_colour = [quantize(x) for x in in_colour]
        return in_colour[0], in_colour[1], hr_rgb

    def score(self, batch: Mapping[str, Any]) -> tuple[dict[str, float], dict[str, Any]]:
        """A batch of test images scored on its own exactly as :meth:`test_step` scores it (the
        configured self-ensemble included): the metrics over its images (``psnr``, ``ssim``, ...,
        ``num_images``) and what the step returns (``sr``, ``bicubic``, ``hr`` (N, C, H, W) in
        [0, 1] as scored, ``name``, ``gray``)."""
        metrics = EvalMetrics(self.crop_border, self.y_channel).to(batch["lr"].device)
        with torch.inference_mode():
            out = self._evaluate(batch, metrics, self.self_ensemble)
        if out is None:
            raise ValueError("score(batch): every image of the batch is padding")
        return metrics.compute(), out

    def validation_step(self, batch: Mapping[str, Any], batch_idx: int) -> dict[str, Any] | None:
        return self._evaluate(batch, self.val_metrics)

    def on_validation_epoch_end(self) -> None:
        values = self.val_metrics.compute()
        self.val_metrics.reset()
        if not self.trainer.sanity_checking:
            self.psnr_best.update(torch.as_tensor(values["psnr"]))
        # The values are already reduced over processes; sync_dist only averages equal numbers.
        self.log("val/psnr", values["psnr"], prog_bar=True, sync_dist=True)
        log = {"val/ssim": values["ssim"], "val/gmsd": values["gmsd"], "val/psnr_bicubic": values["psnr_bicubic"],
               "val/ssim_bicubic": values["ssim_bicubic"]}
        best = float(self.psnr_best.max_value)
        if best > float("-inf"):
            log["val/psnr_best"] = best
        self.log_dict(log, sync_dist=True)

    def _test_set_names(self) -> list[str]:
        dm = getattr(self.trainer, "datamodule", None)
        names = list(getattr(dm, "test_set_names", []) or [])
        n_loaders = len(self.trainer.test_dataloaders or [])
        return names if len(names) == n_loaders else [f"test{i}" for i in range(n_loaders)]

    def on_test_start(self) -> None:
        self.test_metrics = nn.ModuleDict(
            {name: EvalMetrics(self.crop_border, self.y_channel) for name in self._test_set_names()}
        ).to(self.device)
        self.test_results = {}

    def test_step(self, batch: Mapping[str, Any], batch_idx: int, dataloader_idx: int = 0) -> dict[str, Any] | None:
        return self._evaluate(batch, list(self.test_metrics.values())[dataloader_idx], self.self_ensemble)

    def on_test_epoch_end(self) -> None:
        for name, metrics in self.test_metrics.items():
            values = metrics.compute()
            self.test_results[name] = values
            for key in ("psnr", "ssim", "gmsd", "psnr_bicubic", "ssim_bicubic"):
                self.log(f"test/{name}/{key}", values[key], add_dataloader_idx=False, sync_dist=True)
            metrics.reset()
