"""What Real-ESRGAN's degradation costs per training batch, against the training steps it
feeds: RRDBNet's L1 step (Real-ESRNet) and the realesrgan_x4 GAN step (RRDBNet + U-Net SN
discriminator + VGG19 perceptual loss), on this machine, measured side by side.

    python experiments/benchmarks/degradation_cost.py [--batch 4] [--lr-patch 64] [--steps 3]

The paper's settings: x4, 256x256 HR patches (64x64 LR). Every step is a real one (forward,
backward, Adam) in float32 on the CPU; the degradation runs on the same batch, from its HR.
Prints a markdown table with the CPU named.
"""

from __future__ import annotations

import argparse

import torch
import torch.nn.functional as F
from omegaconf import OmegaConf

from sr_lightning.budget import time_calls
from sr_lightning.config import CONF_DIR
from sr_lightning.data.realesrgan import RealESRGAN
from sr_lightning.gan import PerceptualLoss, UNetDiscriminatorSN
from sr_lightning.hardware import describe_cpu
from sr_lightning.nets import create_net

SCALE = 4


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--batch", type=int, default=4)
    parser.add_argument("--lr-patch", type=int, default=64)
    parser.add_argument("--steps", type=int, default=3)
    args = parser.parse_args()
    torch.manual_seed(0)
    cfg = OmegaConf.to_container(OmegaConf.load(CONF_DIR / "data/degradation/realesrgan.yaml").realesrgan)
    degrade = RealESRGAN.from_config(cfg)
    hr = torch.rand(args.batch, 3, args.lr_patch * SCALE, args.lr_patch * SCALE)
    g = torch.Generator().manual_seed(0)

    net = create_net("rrdbnet", scale=SCALE, in_channels=3)
    disc = UNetDiscriminatorSN(in_channels=3)
    perceptual = PerceptualLoss(layer={"conv1_2": 0.1, "conv2_2": 0.1, "conv3_4": 1, "conv4_4": 1, "conv5_4": 1},
                                criterion="l1")
    opt_g = torch.optim.Adam(net.parameters(), lr=1e-4, betas=(0.9, 0.99))
    opt_d = torch.optim.Adam(disc.parameters(), lr=1e-4, betas=(0.9, 0.99))
    lr = degrade(hr, SCALE, g)

    def l1_step() -> None:
        opt_g.zero_grad()
        F.l1_loss(net(lr), hr).backward()
        opt_g.step()

    def gan_step() -> None:
        sr = net(lr)
        opt_d.zero_grad()
        real, fake = disc(hr), disc(sr.detach())
        (F.binary_cross_entropy_with_logits(real, torch.ones_like(real))
         + F.binary_cross_entropy_with_logits(fake, torch.zeros_like(fake))).backward()
        opt_d.step()
        opt_g.zero_grad()
        fake = disc(sr)
        (F.l1_loss(sr, hr) + perceptual(sr, hr)
         + 0.1 * F.binary_cross_entropy_with_logits(fake, torch.ones_like(fake))).backward()
        opt_g.step()

    seconds = {"degradation": time_calls(lambda: degrade(hr, SCALE, g), args.steps, warmup=1),
               "RRDBNet L1 step (Real-ESRNet)": time_calls(l1_step, args.steps, warmup=1),
               "realesrgan_x4 GAN step": time_calls(gan_step, args.steps, warmup=1)}
    print(f"{describe_cpu()}, torch {torch.__version__}, {torch.get_num_threads()} threads; batch {args.batch}, "
          f"{args.lr_patch * SCALE}x{args.lr_patch * SCALE} HR -> {args.lr_patch}x{args.lr_patch} LR, x{SCALE}, "
          f"float32, median of {args.steps}\n")
    print("| per batch | seconds | degradation / this |\n|---|---|---|")
    for name, s in seconds.items():
        share = "-" if name == "degradation" else f"{100 * seconds['degradation'] / s:.1f} %"
        print(f"| {name} | {s:.3f} | {share} |")


if __name__ == "__main__":
    main()
