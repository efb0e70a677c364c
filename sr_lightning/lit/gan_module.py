"""``SRGANModule``: adversarial training of any SR network (the SRGAN recipe, Ledig et al.,
CVPR 2017) with Lightning manual optimisation.

It is an :class:`SRLitModule`: data, evaluation, metrics, logging and checkpoints are
inherited; only the training step and the optimizers differ. The generator is ``net``
(SRResNet in ``experiment=srgan_x4``); start it from a PSNR-trained checkpoint with
``init_from=...`` (the usual two-stage recipe). Lightning counts optimizer steps, so each
batch advances ``trainer.global_step`` (and ``max_steps``) by 2.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import torch
import torch.nn.functional as F
from hydra.utils import instantiate
from torch import Tensor

from sr_lightning.errors import UserError
from sr_lightning.lit.sr_module import SRLitModule, to_plain

GAN_TYPES = ("standard", "relativistic_average")


class SRGANModule(SRLitModule):
    """Generator ``net`` vs a discriminator; generator loss =
    ``content_weight * loss(sr, hr) + perceptual_weight * perceptual(sr, hr) +
    adversarial_weight * BCE(D(sr), real)``.

    Args:
        discriminator: config of the discriminator (``_target_`` + kwargs), e.g.
            :class:`sr_lightning.gan.SRGANDiscriminator`.
        discriminator_optimizer: optimizer partial for the discriminator (None: the same
            config as ``optimizer``).
        content_weight, adversarial_weight, perceptual_weight: loss weights (SRGAN:
            adversarial 1e-3).
        perceptual: config of a feature loss (``_target_`` + kwargs, e.g.
            :class:`sr_lightning.gan.PerceptualLoss`), or None for none.
        gan_type: ``standard`` (SRGAN: D(x) is the probability that x is real) or
            ``relativistic_average`` (ESRGAN, Jolicoeur-Martineau 2018: the probability that a
            real image is more realistic than the average fake, and a fake less than the
            average real; each loss is the mean of its two terms, as in the ESRGAN authors'
            training code).
        kwargs: the :class:`SRLitModule` arguments (loss, optimizer, scheduler, ...).
    """

    def __init__(
        self,
        net: Mapping[str, Any],
        *,
        discriminator: Mapping[str, Any] | None = None,
        discriminator_optimizer: Mapping[str, Any] | None = None,
        content_weight: float = 1.0,
        adversarial_weight: float = 1e-3,
        perceptual: Mapping[str, Any] | None = None,
        perceptual_weight: float = 0.006,
        gan_type: str = "standard",
        **kwargs: Any,
    ) -> None:
        super().__init__(net, **kwargs)
        if discriminator is None:
            raise UserError("SRGANModule needs a discriminator config (module.discriminator)")
        if gan_type not in GAN_TYPES:
            raise UserError(f"module.gan_type={gan_type!r} is not one of {GAN_TYPES}")
        if self.hparams.adjustable_clip is not None:
            raise UserError("adjustable_clip is not supported for adversarial training; set adjustable_clip=null")
        extra = {"discriminator": to_plain(discriminator), "discriminator_optimizer": to_plain(discriminator_optimizer),
                 "content_weight": content_weight, "adversarial_weight": adversarial_weight,
                 "perceptual": to_plain(perceptual), "perceptual_weight": perceptual_weight, "gan_type": gan_type}
        self.save_hyperparameters({**self.hparams, **extra})
        self.automatic_optimization = False
        self.discriminator = instantiate(extra["discriminator"])
        self.perceptual = instantiate(extra["perceptual"]) if perceptual else None

    def configure_optimizers(self) -> Any:
        out = super().configure_optimizers()
        opt_g = out["optimizer"] if isinstance(out, dict) else out
        d_cfg = self.hparams.discriminator_optimizer or self.hparams.optimizer
        opt_d = instantiate(d_cfg)(params=self.discriminator.parameters())
        if isinstance(out, dict):
            return [opt_g, opt_d], [out["lr_scheduler"]]
        return [opt_g, opt_d]

    def _discriminator_loss(self, real: Tensor, fake: Tensor) -> Tensor:
        """The discriminator's loss from its logits for HR (``real``) and SR (``fake``) images."""
        if self.hparams.gan_type == "standard":
            return self._bce(real, True) + self._bce(fake, False)
        return (self._bce(real - fake.mean(), True) + self._bce(fake - real.mean(), False)) / 2

    def _adversarial_loss(self, sr: Tensor, hr: Tensor) -> Tensor:
        """The generator's adversarial loss for its output ``sr`` (gradients flow into ``sr`` only)."""
        fake = self.discriminator(sr)
        if self.hparams.gan_type == "standard":
            return self._bce(fake, True)
        real = self.discriminator(hr).detach()
        return (self._bce(real - fake.mean(), False) + self._bce(fake - real.mean(), True)) / 2

    @staticmethod
    def _bce(logits: Tensor, real: bool) -> Tensor:
        target = torch.ones_like(logits) if real else torch.zeros_like(logits)
        return F.binary_cross_entropy_with_logits(logits.float(), target.float())

    def training_step(self, batch: Mapping[str, Any], batch_idx: int) -> Tensor:
        if self.criterion is None:
            raise RuntimeError("SRGANModule was built without a content loss; it cannot train")
        opt_g, opt_d = self.optimizers()
        lr, hr = batch["lr"], batch["hr"]
        with self.net.at_scale(int(batch.get("scale", self.scale))):
            sr = self(lr)
        # Discriminator: real HR vs the generator's (detached) output.
        self.toggle_optimizer(opt_d)
        loss_d = self._discriminator_loss(self.discriminator(hr), self.discriminator(sr.detach()))
        opt_d.zero_grad()
        self.manual_backward(loss_d)
        opt_d.step()
        self.untoggle_optimizer(opt_d)
        # Generator: content (+ perceptual) + adversarial.
        self.toggle_optimizer(opt_g)
        content = self.criterion(sr, hr)
        adversarial = self._adversarial_loss(sr, hr)
        loss_g = self.hparams.content_weight * content + self.hparams.adversarial_weight * adversarial
        logs = {"train/content": content, "train/adversarial": adversarial, "train/loss_d": loss_d}
        if self.perceptual is not None:
            perceptual = self.perceptual(sr, hr)
            loss_g = loss_g + self.hparams.perceptual_weight * perceptual
            logs["train/perceptual"] = perceptual
        opt_g.zero_grad()
        self.manual_backward(loss_g)
        opt_g.step()
        self.untoggle_optimizer(opt_g)
        self._step_scheduler("step")
        n = lr.shape[0]
        self.log("train/loss", loss_g, prog_bar=True, batch_size=n)
        self.log_dict(logs, batch_size=n)
        return loss_g

    def _step_scheduler(self, interval: str) -> None:
        sched = self.lr_schedulers()
        if sched is not None and (self.hparams.scheduler or {}).get("interval", "epoch") == interval:
            sched.step()

    def on_train_epoch_end(self) -> None:
        self._step_scheduler("epoch")
