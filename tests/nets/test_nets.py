from __future__ import annotations

import pytest
import torch

from sr_lightning.lit import SRLitModule
from sr_lightning.nets import NETS, create_net, list_nets
from sr_lightning.ops import imresize
from tests.conftest import SHALLOW, idle_at_its_scale

TRAINABLE = [n for n in list_nets() if n != "bicubic"]
def build(name: str, **kwargs):
    """The network as the zoo-wide tests build it: the deep ones shallower (tests.conftest.SHALLOW)."""
    return create_net(name, **SHALLOW.get(name, {}), **kwargs)


@pytest.mark.parametrize("name", list_nets())
@pytest.mark.parametrize("scale", [2, 3, 4])
@pytest.mark.parametrize("channels", [1, 3])
def test_output_shape_on_odd_sizes(name, scale, channels):
    scales = NETS[name].scales
    if scales is not None and scale not in scales:  # e.g. RRDBNet: x2 and x4 only
        with pytest.raises(ValueError, match=f"scale={scale} is not supported by {name}"):
            create_net(name, scale=scale, in_channels=channels)
        return
    net = build(name, scale=scale, in_channels=channels).eval()
    with torch.no_grad():
        out = net(torch.rand(2, channels, 13, 19))
    assert out.shape == (2, channels, 13 * scale, 19 * scale)
    assert torch.isfinite(out).all()


@pytest.mark.parametrize("name", TRAINABLE)
def test_gradients_reach_every_parameter(name):
    """Every parameter gets a gradient, except inside a channel-attention squeeze (IMDN's and
    RCAN's 64 -> 4 ``excite`` path) whose ReLU is off for the whole batch: a random init does
    that to some of them (IMDN: 6 of seeds 0-19 have one; the authors' networks too), and
    then their gradient is truly 0."""
    torch.manual_seed(1)
    net = build(name, scale=2, in_channels=1)
    for pname, p in net.named_parameters():  # DITN's zero-initialised gates pass no gradient at zero, by design
        if pname.endswith("SDA.scale"):
            p.data.fill_(0.1)
    dead: dict[str, bool] = {}
    for mname, module in net.named_modules():
        if isinstance(module, torch.nn.ReLU) and ".excite." in f".{mname}.":
            module.register_forward_hook(lambda m, i, out, key=mname.rsplit(".", 1)[0]: dead.__setitem__(
                key, bool((out == 0).all())))
    lr, hr = torch.rand(2, 1, 12, 12), torch.rand(2, 1, 24, 24)
    torch.nn.functional.l1_loss(net(lr), hr).backward()
    for pname, p in net.named_parameters():
        if p.grad is not None and p.grad.abs().sum() > 0:
            continue
        if idle_at_its_scale(net, pname):
            continue
        if pname.endswith(".b0") and any(f".conv1x1_{k}." in pname for k in ("sbx", "sby", "lpl")):
            continue  # ECBSR: a 1x1 bias under a zero-sum edge filter is a constant it removes (the authors' too)
        squeeze = next((k for k in dead if pname.startswith(k + ".")), None)
        assert squeeze is not None and dead[squeeze], pname


@pytest.mark.parametrize("name", list_nets())
def test_bf16_autocast_and_channels_last(name):
    net = build(name, scale=2, in_channels=1).to(memory_format=torch.channels_last).eval()
    x = torch.rand(1, 1, 15, 17).contiguous(memory_format=torch.channels_last)
    with torch.no_grad(), torch.autocast("cpu", dtype=torch.bfloat16):
        out = net(x)
    assert out.shape == (1, 1, 30, 34)
    assert torch.isfinite(out.float()).all()


@pytest.mark.parametrize("name", sorted(SHALLOW))
def test_deep_networks_in_their_paper_configuration(name):
    scale = 4 if name in ("rrdbnet", "dbpn") else 3  # RRDBNet and D-DBPN have no x3
    channels = 1 if name == "memnet" else 3
    net = create_net(name, scale=scale, in_channels=channels).eval()
    with torch.no_grad():
        out = net(torch.rand(1, channels, 13, 19))
    assert out.shape == (1, channels, 13 * scale, 19 * scale) and torch.isfinite(out).all()


def test_paper_parameter_counts():
    count = lambda n: sum(p.numel() for p in create_net(n, scale=2, in_channels=1).parameters())  # noqa: E731
    assert count("srcnn") == 57_281  # 9-5-5, 64/32 features
    assert count("vdsr") == 665_921  # 20 layers, 64 features
    assert count("bicubic") == 0
    edsr = lambda **kw: sum(p.numel() for p in create_net("edsr", in_channels=3, **kw).parameters())  # noqa: E731
    assert edsr(scale=2) == pytest.approx(1.37e6, rel=0.01)  # EDSR baseline x2: "1.37 M"
    assert edsr(scale=4) == 1_517_571  # the paper's "1.5M" baseline (x4)
    assert edsr(scale=2, num_features=256, num_blocks=32, res_scale=0.1) == pytest.approx(40.7e6, rel=0.01)  # full
    rgb = lambda n, s: sum(p.numel() for p in create_net(n, scale=s, in_channels=3).parameters())  # noqa: E731
    # IMDN's paper: 694K / 703K / 715K; the authors' x4 release holds 715,176 values.
    assert [rgb("imdn", s) for s in (2, 3, 4)] == [694_404, 703_059, 715_176]
    # RCAN: x4 15,592K in later papers' tables (e.g. SwinIR's); RRDBNet (ESRGAN): 16.7M at x4.
    assert [rgb("rcan", s) for s in (2, 3, 4)] == [15_444_643, 15_629_283, 15_592_355]
    assert rgb("rrdbnet", 4) == 16_697_987 and rgb("rrdbnet", 2) == 16_703_171
    # SwinIR classical: "11.8M" (x2). Light: the paper's 878K / 886K / 897K count the network
    # without its 24 relative-position bias tables (15 x 15 x 6 each); the classical count has them.
    assert rgb("swinir", 2) == 11_752_487
    light = {"embed_dim": 60, "depths": [6] * 4, "num_heads": [6] * 4, "upsampler": "pixelshuffledirect"}
    nets = [create_net("swinir", scale=s, in_channels=3, **light) for s in (2, 3, 4)]
    tables = [sum(p.numel() for n, p in net.named_parameters() if "relative_position_bias_table" in n) for net in nets]
    assert tables == [32_400] * 3
    assert [sum(p.numel() for p in net.parameters()) - t for net, t in zip(nets, tables, strict=True)] == [
        877_752, 885_867, 897_228]
    # HAT / HAT-S at x4: the paper's 20.8M / 9.6M.
    assert rgb("hat", 4) == 20_772_507
    assert sum(p.numel() for p in create_net("hat", scale=4, in_channels=3, embed_dim=144, compress_ratio=24,
                                             squeeze_factor=24).parameters()) == 9_621_183
    # Real-ESRGAN's files, counted with the authors' code: RealESRGAN_x4plus_anime_6B (6 blocks), the
    # compact realesr-general-x4v3 (32 convolutions) and realesr-animevideov3 (16).
    assert sum(p.numel() for p in create_net("rrdbnet", scale=4, in_channels=3, num_blocks=6).parameters()) == 4_467_779
    compact = lambda n: sum(p.numel() for p in create_net("srvggnet", scale=4, in_channels=3,  # noqa: E731
                                                          num_convs=n).parameters())
    assert (compact(32), compact(16)) == (1_213_296, 621_424)
    # SwinIR real-world SwinIR-M (nearest + conv) at x4; Swin2SR classical (the paper's ~12M) and lightweight (~1M).
    assert sum(p.numel() for p in create_net("swinir", scale=4, in_channels=3,
                                             upsampler="nearest+conv").parameters()) == 11_715_559
    assert [rgb("swin2sr", s) for s in (2, 3, 4)] == [12_091_571, 12_276_211, 12_239_283]
    assert sum(p.numel() for p in create_net("swin2sr", scale=2, in_channels=3, **light).parameters()) == 1_005_348
    assert rgb("drct", 4) == 14_139_579  # DRCT: the paper's 14.1M (DRCT-L: the large-variants test)
    assert [rgb("srformer", s) for s in (2, 3, 4)] == [10_376_783, 10_561_423, 10_524_495]  # the authors' code
    srformer_light = {**light, "window_size": 16}  # SRFormer-light: the paper's 853K / 861K / 873K
    assert [sum(p.numel() for p in create_net("srformer", scale=s, in_channels=3, **srformer_light).parameters())
            for s in (2, 3, 4)] == [853_272, 861_387, 872_748]
    dat = lambda **kw: sum(p.numel() for p in create_net("dat", scale=4, in_channels=3, **kw).parameters())  # noqa: E731
    assert dat() == 14_802_051  # DAT: the paper's 14.8M; DAT-S and DAT-2 (8x16 / 8x32 windows): 11.21M each
    assert dat(split_size=(8, 16), expansion_factor=2.0) == dat(expansion_factor=2.0) == 11_212_131
    assert dat(embed_dim=60, depths=[18], num_heads=[6], expansion_factor=2.0, resi_connection="3conv",
               upsampler="pixelshuffledirect") == 572_766  # DAT-light: the paper's 573K
    assert [rgb("omnisr", s) for s in (2, 3, 4)] == [784_604, 793_259, 805_376]  # Omni-SR, the authors' code
    assert rgb("rgt", 4) == 13_365_543  # RGT: the paper's 13.37M
    assert sum(p.numel() for p in create_net("rgt", scale=4, in_channels=3, depths=[6] * 6,
                                             num_heads=[6] * 6).parameters()) == 10_198_767  # RGT-S: 10.20M
    assert rgb("atd", 4) == 20_260_929  # ATD: the paper's 20.26M; ATD-light: 769K
    assert sum(p.numel() for p in create_net("atd", scale=4, in_channels=3, embed_dim=48, depths=[6] * 4,
                                             num_heads=[4] * 4, category_size=128, num_tokens=64, reducted_dim=8,
                                             convffn_kernel_size=7, mlp_ratio=1.0,
                                             upsampler="pixelshuffledirect").parameters()) == 768_792
    assert [rgb("craft", s) for s in (2, 3, 4)] == [737_756, 744_251, 753_344]  # CRAFT: 737K / 744K / 753K
    assert [rgb("ditn", s) for s in (2, 3, 4)] == [424_636, 432_751, 444_112]  # DITN_Real, the authors' code
    # LapSRN (the released layout: depth 10, 3x3 transposed convolutions): 812,768 weights at x4, the
    # paper's 812K; MS-LapSRN D5R8: 222,352 weights, the paper's 222K (one set for every scale).
    lap = lambda **kw: create_net("lapsrn", in_channels=1, **kw)  # noqa: E731
    assert [sum(p.numel() for p in lap(scale=s).parameters()) for s in (2, 4, 8)] == [407_441, 814_242, 1_221_043]
    assert sum(p.numel() for k, p in lap(scale=4).named_parameters() if k.endswith("weight")) == 812_768
    assert sum(p.numel() for k, p in lap(scale=8, depth=5, recursions=8).named_parameters()
               if k.endswith("weight")) == 222_352
    # ECBSR-M4C16 on Y: the plain network it deploys as (folded), and while training.
    assert [create_net("ecbsr", scale=s, in_channels=1).deployed_parameter_count() for s in (2, 3, 4)] == [
        10_100, 10_825, 11_840]
    assert sum(p.numel() for p in create_net("ecbsr", scale=4, in_channels=1).parameters()) == 47_120
    # DRRN B1U25: 297,216 convolution weights, the paper's 297K.
    # RDN (D16 C8 G64): the 22,271K later papers' tables give it at x4 (SwinIR's Table 2).
    assert [rgb("rdn", s) for s in (2, 3, 4)] == [22_123_395, 22_308_035, 22_271_107]
    # D-DBPN (T = 7): the 10,426K of later papers' tables at x4 (SwinIR's Table 2); DBPN-LL is T = 10.
    assert [rgb("dbpn", s) for s in (2, 4, 8)] == [5_953_526, 10_426_358, 23_205_878]
    assert sum(p.numel() for p in create_net("dbpn", scale=4, num_stages=10).parameters()) == 15_348_302
    drrn = create_net("drrn", scale=2, in_channels=1)
    assert sum(p.numel() for k, p in drrn.named_parameters() if "conv" in k and k.endswith("weight")) == 297_216
    assert sum(p.numel() for p in drrn.parameters()) == 310_659
    # CARN and CARN-M (multi-scale: the x2, x3 and x4 upsamplers), as the authors' code builds them: the
    # paper's 1,592K and 412K (CARN-M is 2.8K more here, as in their code).
    assert rgb("carn", 4) == 1_591_939
    assert sum(p.numel() for p in create_net("carn", scale=4, in_channels=3, efficient=True,
                                             groups=4).parameters()) == 414_787
    # RFDN (48 features, 6 blocks) as the authors' code builds it (the paper's table: 534K / 541K / 550K);
    # E-RFDN, the AIM 2020 model (50 features, 4 blocks): the report's 0.433M.
    assert [rgb("rfdn", s) for s in (2, 3, 4)] == [566_364, 572_859, 581_952]
    assert sum(p.numel() for p in create_net("rfdn", scale=4, in_channels=3, num_features=50,
                                             num_blocks=4).parameters()) == 433_448
    # RLFN: the paper's 527K (x2) and 543K (x4); RLFN-S (48 features) and the NTIRE model (0.317M) at x4.
    assert [rgb("rlfn", s) for s in (2, 3, 4)] == [526_856, 533_891, 543_740]
    assert sum(p.numel() for p in create_net("rlfn", scale=4, in_channels=3, num_features=48).parameters()) == 470_208
    assert sum(p.numel() for p in create_net("rlfn", scale=4, in_channels=3, num_features=46, mid_features=48,
                                             num_blocks=4).parameters()) == 317_218
    # PLKSR, PLKSR-tiny and RealPLKSR as the authors' code builds them.
    assert [rgb("plksr", s) for s in (2, 3, 4)] == [7_365_324, 7_373_979, 7_386_096]
    assert sum(p.numel() for p in create_net("plksr", scale=4, in_channels=3, num_blocks=12, kernel_size=13,
                                             use_ea=False).parameters()) == 2_370_544
    assert [rgb("realplksr", s) for s in (2, 3, 4)] == [7_368_908, 7_377_563, 7_389_680]
    assert [rgb("safmn", s) for s in (2, 3, 4)] == [227_820, 232_695, 239_520]  # the paper's 228K / 233K / 240K
    # SPAN: the paper counts the folded network it runs (426K at x4); training holds the branches.
    spans = [create_net("span", scale=s, in_channels=3) for s in (2, 3, 4)]
    assert [n.deployed_parameter_count() for n in spans] == [410_700, 417_195, 426_288]
    assert sum(p.numel() for p in spans[2].parameters()) == 1_840_488


def test_paper_parameter_counts_of_large_variants():
    """The large variants: HAT-L (the paper's 40.8M), DRCT-L, SwinIR-L (real-world, 3conv residuals:
    the authors' code builds 28,013,059)."""
    def count(name: str, **kw) -> int:
        return sum(p.numel() for p in create_net(name, scale=4, in_channels=3, **kw).parameters())

    assert count("hat", depths=[6] * 12, num_heads=[6] * 12) == 40_846_575
    assert count("drct", depths=[6] * 12, num_heads=[6] * 12) == 27_580_719  # DRCT-L: the paper's 27.6M
    assert count("swinir", embed_dim=240, depths=[6] * 9, num_heads=[8] * 9, upsampler="nearest+conv",
                 resi_connection="3conv") == 28_013_059


def test_memnet_count_reads():
    """MemNet's "677K" counts its convolutions: 676,992 weights (678,209 with biases); the
    per-recursion BatchNorms (scale + shift) and the 6 output weights make 695,497 in all."""
    net = create_net("memnet", scale=3, in_channels=1)
    convs = [m for m in net.modules() if isinstance(m, torch.nn.Conv2d)]
    assert sum(m.weight.numel() for m in convs) == 676_992 == pytest.approx(677e3, rel=0.01)
    assert sum(m.weight.numel() + m.bias.numel() for m in convs) == 678_209
    assert sum(p.numel() for p in net.parameters()) == 695_497
    assert len(convs) == 1 + 6 * (2 + 1) + 1  # the recursions share their two convolutions


def test_span_folds_exactly():
    """In evaluation each re-parameterisable convolution runs as one 3x3 convolution, equal
    to the training branches (zero padding before the first 1x1 keeps the borders equal)."""
    torch.manual_seed(0)
    net = create_net("span", scale=3, in_channels=3)
    for p in net.parameters():
        p.data.normal_(0, 0.05)
    x = torch.rand(1, 3, 11, 14)
    with torch.no_grad():
        branches, folded = net.train()(x), net.eval()(x)
    assert (branches - folded).abs().max() <= 1e-5 * branches.abs().max()


def test_hat_overlap_bias_index_is_one_entry_per_offset():
    """OCAB: a query in the 16x16 window and a key in the 24x24 window around it read the
    bias entry of their offset: equal offsets the same entry, the 39 x 39 offsets all distinct."""
    from sr_lightning.nets.hat import overlap_position_index

    window, overlap = 16, 24
    index = overlap_position_index(window, overlap)
    assert index.shape == (window**2, overlap**2) and int(index.min()) >= 0 and int(index.max()) < 39 * 39
    q = torch.stack(torch.meshgrid(torch.arange(window), torch.arange(window), indexing="ij")).flatten(1)
    k = torch.stack(torch.meshgrid(torch.arange(overlap), torch.arange(overlap), indexing="ij")).flatten(1) - 4
    offset = (k[:, None, :] - q[:, :, None]).permute(1, 2, 0)  # (256, 576, 2), each in [-19, 19]
    code = (offset[..., 0] + 19) * 39 + offset[..., 1] + 19
    pairs = torch.unique(torch.stack([code.flatten(), index.flatten()]), dim=1)
    assert pairs.shape[1] == 39 * 39 and torch.unique(pairs[1]).numel() == 39 * 39


def test_fsrcnn_weight_counts_match_the_paper():
    """The FSRCNN paper counts convolution weights: 12,464 for (56, 12, 4), 3,937 for FSRCNN-s (32, 5, 1)."""
    def weights(**kw):
        net = create_net("fsrcnn", scale=3, in_channels=1, **kw)
        convs = (torch.nn.Conv2d, torch.nn.ConvTranspose2d)
        return sum(m.weight.numel() for m in net.modules() if isinstance(m, convs))

    assert weights() == 12_464
    assert weights(d=32, s=5, m=1) == 3_937


def test_scale_limits_name_the_network_and_its_scales():
    with pytest.raises(ValueError, match=r"scale=5 is not supported by edsr \(supported scales: 2, 3, 4, 8\)"):
        create_net("edsr", scale=5, in_channels=3)
    with pytest.raises(ValueError, match=r"scale=6 is not supported by srresnet \(supported scales: 2, 3, 4, 8\)"):
        create_net("srresnet", scale=6, in_channels=3)


def test_bicubic_is_matlab_imresize():
    x = torch.rand(1, 1, 10, 12)
    torch.testing.assert_close(create_net("bicubic", scale=3, in_channels=1)(x), imresize(x, 3))


def test_srcnn_configurable():
    net = create_net("srcnn", scale=2, in_channels=1, kernel_sizes=(9, 1, 5), num_features=(32, 16),
                     padding_mode="zeros")
    assert [m.kernel_size for m in net.body if isinstance(m, torch.nn.Conv2d)] == [(9, 9), (1, 1), (5, 5)]
    assert net(torch.rand(1, 1, 7, 9)).shape == (1, 1, 14, 18)


def test_registry_errors_name_the_choices():
    with pytest.raises(ValueError, match=f"unknown network 'edsr9'; known networks: {', '.join(list_nets())}"):
        create_net("edsr9", scale=2, in_channels=1)
    with pytest.raises(ValueError, match=r"scale=5 is not supported by unet \(supported scales: 2, 3, 4\)"):
        create_net("unet", scale=5, in_channels=1)
    with pytest.raises(ValueError, match="scale=1.5 is not supported by vdsr"):
        create_net("vdsr", scale=1.5, in_channels=1)
    with pytest.raises(ValueError, match="in_channels=2"):
        create_net("srcnn", scale=2, in_channels=2)


def test_registry_is_explicit():
    assert set(NETS) == {"bicubic", "srcnn", "vdsr", "unet", "edsr", "fsrcnn", "espcn", "srresnet", "rednet", "wdsr",
                         "imdn", "rcan", "rrdbnet", "swinir", "hat", "memnet", "safmn", "span", "srvggnet", "swin2sr",
                         "plksr", "realplksr", "drct", "srformer", "dat",
                         "omnisr", "rgt", "atd", "craft", "ditn", "rlfn", "lapsrn", "rfdn", "carn", "drrn", "ecbsr",
                         "rdn", "dbpn"}
    assert all(cls.name == name for name, cls in NETS.items())


def test_multi_scale_carn_trains_each_batch_at_its_scale():
    """One body, an upsampler per scale: a batch at x3 runs the x3 upsampler (data.train_scales)."""
    module = SRLitModule(net={"name": "carn", "scale": 4, "in_channels": 3, "num_features": 8},
                         loss={"_target_": "torch.nn.L1Loss"})
    module.log = lambda *a, **k: None  # no trainer attached
    module.training_step({"lr": torch.rand(2, 3, 8, 8), "hr": torch.rand(2, 3, 24, 24), "scale": 3}, 0).backward()
    grads = {n: p.grad is not None for n, p in module.net.named_parameters() if n.startswith("upsample.")}
    assert {n.split(".")[1] for n, g in grads.items() if g} == {"up3"} and module.net.scale == 4
    with pytest.raises(ValueError, match="a multi-scale CARN runs at x2, x3 and x4, not x8"):
        module.training_step({"lr": torch.rand(1, 3, 4, 4), "hr": torch.rand(1, 3, 32, 32), "scale": 8}, 0)


def test_ecb_is_exactly_its_branches():
    """The folded kernel equals the ECB's branches run apart, each 1x1 branch's border padded
    with its bias (the paper's construction), and the identity."""
    from sr_lightning.nets.ecbsr import ECB

    torch.manual_seed(0)
    block = ECB(4, 4, act=False, with_idt=True)
    x = torch.rand(2, 4, 9, 11, dtype=torch.float64)
    block = block.double()

    def then(branch, second, bias, groups=1):
        y = torch.nn.functional.conv2d(x, branch.k0, branch.b0)
        y = torch.nn.functional.pad(y - branch.b0.view(1, -1, 1, 1), (1, 1, 1, 1)) + branch.b0.view(1, -1, 1, 1)
        return torch.nn.functional.conv2d(y, second, bias, groups=groups)

    apart = block.conv3x3(x) + then(block.conv1x1_3x3, block.conv1x1_3x3.k1, block.conv1x1_3x3.b1) + x
    for edge in (block.conv1x1_sbx, block.conv1x1_sby, block.conv1x1_lpl):
        apart = apart + then(edge, edge.scale * edge.mask, edge.bias, groups=4)
    torch.testing.assert_close(block(x), apart)


def test_lapsrn_is_trained_at_every_pyramid_level():
    """LapSRN's loss sums each level's (x2, x4, x8) against the HR downscaled to its size (MATLAB
    bicubic), and the module's training step uses it."""
    torch.manual_seed(0)
    module = SRLitModule(net={"name": "lapsrn", "scale": 8, "in_channels": 1, "depth": 1},
                         loss={"_target_": "torch.nn.L1Loss"})
    lr, hr = torch.rand(2, 1, 6, 5), torch.rand(2, 1, 48, 40)
    levels = module.net.pyramid(lr)
    assert [tuple(x.shape[-2:]) for x in levels] == [(12, 10), (24, 20), (48, 40)]
    expected = sum(torch.nn.functional.l1_loss(out, imresize(hr, 1 / f))
                   for out, f in zip(levels, (4, 2, 1), strict=True))
    torch.testing.assert_close(module.training_step({"lr": lr, "hr": hr}, 0), expected)
    assert expected > torch.nn.functional.l1_loss(module.net(lr), hr) + 0.1


@pytest.mark.parametrize("name", TRAINABLE)
def test_module_state_round_trip(name, tmp_path):
    net_cfg = {"name": name, "scale": 3 if 3 in (NETS[name].scales or [3]) else 2, "in_channels": 1,
               **SHALLOW.get(name, {})}
    m = SRLitModule(net=net_cfg, loss={"_target_": "torch.nn.L1Loss"})
    path = tmp_path / "m.ckpt"
    torch.save({"state_dict": m.state_dict(), "hyper_parameters": dict(m.hparams)}, path)
    m2 = SRLitModule.load_from_checkpoint(path).eval()
    x = torch.rand(1, 1, 9, 11)
    torch.testing.assert_close(m2(x), m.eval()(x))


@pytest.mark.parametrize("name, small", [("swinir", {"embed_dim": 24, "depths": [2], "num_heads": [2]}),
                                         ("hat", {"embed_dim": 24, "depths": [2], "num_heads": [2],
                                                  "squeeze_factor": 8})])
def test_window_networks_take_images_smaller_than_their_padding(name, small):
    """A 3 x 5 image needs more padding (to the 8 / 16-pixel window) than a mirror can give:
    the edge is repeated instead, and the output is cropped back to 6 x 10."""
    net = create_net(name, scale=2, in_channels=3, **small).eval()
    with torch.no_grad():
        out = net(torch.rand(1, 3, 3, 5))
    assert out.shape == (1, 3, 6, 10) and torch.isfinite(out).all()
