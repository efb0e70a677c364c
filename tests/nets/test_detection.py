"""sr_lightning.nets.detect: a state dict's network and constructor arguments from key names
and shapes alone, in our layout and in the authors' release layouts."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest
import torch

from sr_lightning.nets import NETS, UnknownModelError, create_net, detect, list_nets
from sr_lightning.nets.detection import KeyIndex, in_layout, required_segments

# Three configurations of every network with weights (depth, width, scale, variant flags).
CONFIGS = {
    "srcnn": [{}, {"in_channels": 3}, {"kernel_sizes": (9, 1, 5), "num_features": (32, 16)}],
    "vdsr": [{}, {"num_layers": 8, "num_features": 32}, {"in_channels": 3, "num_layers": 5}],
    "unet": [{}, {"depth": 3, "num_features": 16}, {"convs_per_block": 3, "in_channels": 3, "num_features": 8}],
    "fsrcnn": [{}, {"d": 32, "s": 5, "m": 1}, {"in_channels": 3, "m": 2}],
    "espcn": [{}, {"scale": 3, "in_channels": 3}, {"scale": 4, "num_features": (32, 16)}],
    "edsr": [{"num_blocks": 2}, {"num_blocks": 3, "num_features": 32, "scale": 3}, {"num_blocks": 1, "scale": 4,
                                                                                 "in_channels": 1}],
    "srresnet": [{"num_blocks": 2}, {"num_blocks": 1, "scale": 2, "num_features": 32}, {"num_blocks": 2, "scale": 3}],
    "rednet": [{}, {"num_layers": 10, "num_features": 32}, {"num_layers": 4, "in_channels": 3}],
    "wdsr": [{"num_blocks": 2}, {"num_blocks": 3, "expansion": 6, "num_features": 16, "scale": 3},
             {"num_blocks": 1, "scale": 4, "in_channels": 1}],
    "imdn": [{"num_blocks": 2}, {"num_blocks": 3, "scale": 2, "num_features": 32}, {"num_blocks": 1, "scale": 3}],
    "rcan": [{"num_groups": 2, "num_blocks": 2}, {"num_groups": 1, "num_blocks": 3, "reduction": 8, "scale": 4},
             {"num_groups": 3, "num_blocks": 1, "num_features": 32, "scale": 3}],
    "rrdbnet": [{"num_blocks": 2}, {"num_blocks": 1, "growth": 16, "scale": 2}, {"num_blocks": 3, "num_features": 32}],
    "swinir": [{"embed_dim": 12, "depths": (2, 2), "num_heads": (2, 2), "window_size": 4, "upsampler": "nearest+conv",
                "resi_connection": "3conv"},
               {"embed_dim": 24, "depths": (1, 2, 1), "num_heads": (3, 2, 4), "window_size": 8, "scale": 4,
                "num_features": 16},
               {"embed_dim": 12, "depths": (2,), "num_heads": (3,), "window_size": 4, "upsampler": "pixelshuffledirect",
                "scale": 3, "mlp_ratio": 4.0}],
    "hat": [{"embed_dim": 12, "depths": (2,), "num_heads": (2,), "window_size": 4, "compress_ratio": 3,
             "squeeze_factor": 2},
            {"embed_dim": 24, "depths": (1, 1), "num_heads": (2, 3), "window_size": 8, "compress_ratio": 4,
             "squeeze_factor": 6, "scale": 4, "overlap_ratio": 0.25},
            {"embed_dim": 12, "depths": (1,), "num_heads": (4,), "window_size": 4, "compress_ratio": 2,
             "squeeze_factor": 3, "scale": 3}],
    "memnet": [{"num_blocks": 2, "num_recursions": 2}, {"num_blocks": 1, "num_recursions": 3, "num_features": 16},
               {"num_blocks": 3, "num_recursions": 1, "in_channels": 3}],
    "safmn": [{"num_blocks": 2}, {"num_blocks": 1, "dim": 24, "scale": 2},
              {"num_blocks": 3, "ffn_scale": 1.5, "scale": 3}],
    "srvggnet": [{"num_convs": 2}, {"num_convs": 4, "num_features": 16, "scale": 2},
                 {"num_convs": 1, "scale": 3, "in_channels": 1}],
    "swin2sr": [{"embed_dim": 12, "depths": (2, 2), "num_heads": (2, 2), "window_size": 8},
                {"embed_dim": 24, "depths": (1, 2), "num_heads": (3, 2), "scale": 4, "num_features": 16,
                 "upsampler": "nearest+conv", "resi_connection": "3conv"},
                {"embed_dim": 12, "depths": (2,), "num_heads": (3,), "upsampler": "pixelshuffledirect", "scale": 3}],
    "plksr": [{"num_blocks": 2, "num_features": 16}, {"num_blocks": 1, "num_features": 32, "mixer": "CCM",
                                                      "kernel_size": 7, "use_ea": False, "scale": 2},
              {"num_blocks": 3, "num_features": 16, "mixer": "ICCM", "split_ratio": 0.5, "scale": 3}],
    "realplksr": [{"num_blocks": 2, "num_features": 16}, {"num_blocks": 1, "num_features": 32, "kernel_size": 9,
                                                          "use_ea": False, "scale": 2},
                  {"num_blocks": 2, "num_features": 24, "split_ratio": 0.5, "scale": 3, "in_channels": 1}],
    "drct": [{"embed_dim": 12, "depths": (6,), "num_heads": (2,), "window_size": 4, "gc": 4},
             {"embed_dim": 24, "depths": (6, 6), "num_heads": (4, 4), "window_size": 8, "gc": 8, "scale": 4,
              "num_features": 16},
             {"embed_dim": 16, "depths": (6,), "num_heads": (2,), "window_size": 4, "gc": 6, "scale": 3,
              "mlp_ratio": 4.0}],
    "srformer": [{"embed_dim": 12, "depths": (2, 2), "num_heads": (2, 2), "window_size": 4},
                 {"embed_dim": 24, "depths": (1, 2), "num_heads": (3, 2), "window_size": 8, "scale": 4,
                  "upsampler": "nearest+conv", "num_features": 16},
                 {"embed_dim": 16, "depths": (2,), "num_heads": (4,), "window_size": 6, "scale": 3,
                  "upsampler": "pixelshuffledirect", "mlp_ratio": 1.5}],
    "dat": [{"embed_dim": 32, "depths": (2,), "num_heads": (2,), "split_size": (2, 4)},
            {"embed_dim": 32, "depths": (3, 1), "num_heads": (4, 2), "split_size": (4, 4), "scale": 4,
             "expansion_factor": 2.0, "num_features": 16},
            {"embed_dim": 48, "depths": (2,), "num_heads": (6,), "split_size": (2, 8), "scale": 3,
             "upsampler": "pixelshuffledirect", "resi_connection": "3conv"}],
    "omnisr": [{"num_features": 16, "num_groups": 1, "window_size": 4},
               {"num_features": 32, "num_groups": 2, "num_blocks": 2, "window_size": 2, "scale": 4},
               {"num_features": 16, "num_groups": 1, "position_bias": False, "bias": False, "scale": 3}],
    "rgt": [{"embed_dim": 32, "depths": (2,), "num_heads": (2,), "split_size": (2, 4)},
            {"embed_dim": 32, "depths": (3, 2), "num_heads": (4, 2), "split_size": (4, 4), "scale": 4,
             "mlp_ratio": 4.0, "num_features": 16},
            {"embed_dim": 48, "depths": (2,), "num_heads": (6,), "split_size": (2, 8), "scale": 3,
             "c_ratio": 0.25, "resi_connection": "3conv"}],
    "atd": [{"embed_dim": 12, "depths": (2,), "num_heads": (2,), "window_size": 4, "num_tokens": 8, "category_size": 16,
             "reducted_dim": 4},
            {"embed_dim": 24, "depths": (1, 2), "num_heads": (3, 2), "window_size": 8, "num_tokens": 6,
             "category_size": 12, "reducted_dim": 3, "scale": 4, "num_features": 16, "upsampler": "nearest+conv"},
            {"embed_dim": 12, "depths": (3,), "num_heads": (3,), "window_size": 4, "num_tokens": 4, "category_size": 8,
             "reducted_dim": 2, "scale": 3, "upsampler": "pixelshuffledirect", "convffn_kernel_size": 7,
             "mlp_ratio": 1.0}],
    "craft": [{"embed_dim": 16, "depths": (1,), "num_heads": (2,), "split_size": (2, 4)},
              {"embed_dim": 24, "depths": (1, 2), "num_heads": (4, 2), "split_size": (4, 8), "scale": 2},
              {"embed_dim": 32, "depths": (1,), "num_heads": (4,), "split_size": (4, 4), "scale": 3, "mlp_ratio": 1.0}],
    "ditn": [{"num_features": 16, "itl_blocks": 1, "sal_blocks": 1}, {"num_features": 24, "units": 2, "itl_blocks": 2,
                                                                     "sal_blocks": 1, "scale": 2},
             {"num_features": 16, "itl_blocks": 2, "sal_blocks": 2, "expansion": 1.0, "scale": 3, "in_channels": 1}],
    "span": [{"num_blocks": 2}, {"num_blocks": 1, "num_features": 24, "scale": 2}, {"num_blocks": 3, "scale": 3,
                                                                                  "in_channels": 1}],
    "lapsrn": [{"depth": 2}, {"depth": 3, "num_features": 16, "scale": 8, "up_kernel": 4},
               {"depth": 2, "recursions": 8, "num_features": 24, "in_channels": 3}],
    "ecbsr": [{}, {"num_features": 8, "num_blocks": 2, "scale": 2}, {"num_blocks": 1, "scale": 3, "in_channels": 3}],
    "dbpn": [{"num_features": 8, "head_features": 16, "num_stages": 2},
             {"num_features": 4, "head_features": 8, "num_stages": 3, "scale": 2},
             {"num_features": 4, "head_features": 4, "num_stages": 1, "scale": 8, "in_channels": 1}],
    "rdn": [{"num_features": 8, "growth": 8, "num_blocks": 2, "num_layers": 2},
            {"num_features": 8, "growth": 4, "num_blocks": 3, "num_layers": 1, "scale": 3},
            {"num_features": 4, "growth": 8, "num_blocks": 1, "num_layers": 3, "scale": 8, "in_channels": 1}],
    "drrn": [{"num_units": 2, "num_features": 16}, {"num_blocks": 2, "num_units": 3, "num_features": 8},
             {"num_units": 1, "num_features": 8, "in_channels": 3}],
    "carn": [{"num_features": 16}, {"num_features": 16, "efficient": True, "groups": 4, "scale": 3},
             {"num_features": 8, "multi_scale": False, "scale": 8, "in_channels": 1}],
    "rfdn": [{"num_blocks": 2}, {"num_features": 24, "num_blocks": 3, "scale": 2},
             {"num_features": 16, "num_blocks": 1, "scale": 3, "in_channels": 1}],
    "rlfn": [{"num_blocks": 2},
             {"num_features": 24, "mid_features": 32, "num_blocks": 3, "esa_channels": 8, "scale": 2},
             {"num_features": 16, "num_blocks": 1, "scale": 3, "in_channels": 1}],
}
LAYOUTS = json.loads((Path(__file__).parents[1] / "convert/release_layouts.json").read_text())


def _plain(value):
    return list(value) if isinstance(value, tuple) else value


def test_every_network_with_weights_has_detection_cases():
    assert set(CONFIGS) == set(list_nets()) - {"bicubic"}  # bicubic: no weights, nothing to detect


@pytest.mark.parametrize(("name", "kwargs"), [(n, kw) for n, configs in CONFIGS.items() for kw in configs],
                         ids=lambda v: v if isinstance(v, str) else ",".join(f"{k}={_plain(x)}" for k, x in v.items()))
def test_a_state_dict_is_detected_back_to_its_network_and_arguments(name, kwargs):
    torch.manual_seed(0)
    net = create_net(name, **kwargs)
    found = detect({"params_ema": {f"module.{k}": v for k, v in net.state_dict().items()}})  # wrapped, DataParallel
    assert found.name == name and found.layout == "sr_lightning"
    for key, value in kwargs.items():
        if key in found.kwargs or key == "scale" and type(net).scale_agnostic:
            assert found.kwargs.get(key, value) == _plain(value), key
    rebuilt = create_net(name, **{**kwargs, **found.kwargs})  # what the weights did not fix: the config's
    rebuilt.load_state_dict(found.state_dict)
    x = torch.rand(1, net.in_channels, 24, 24)
    with torch.no_grad():
        torch.testing.assert_close(rebuilt.eval()(x), net.eval()(x))


@pytest.mark.parametrize("config", sorted(set(LAYOUTS) - {"_about"}))
def test_the_authors_release_layouts_are_detected(config):
    """The authors' key names and shapes (release_layouts.json, from their code at a small
    configuration) are detected as the network, in its release layout, with those arguments."""
    layout = LAYOUTS[config]
    found = detect({k: torch.empty(shape, device="meta") for k, shape in layout["keys"].items()})
    assert found.name == layout["net"]
    assert found.layout == layout["layout"] if "layout" in layout else found.layout.startswith("release")
    for key, value in layout["kwargs"].items():
        assert found.kwargs.get(key, value) == _plain(value), key


@pytest.mark.parametrize("config", sorted(set(LAYOUTS) - {"_about"}))
def test_renaming_through_the_key_index_is_renaming_key_by_key(config):
    """in_layout skips searching for patterns whose whole segments no key has: on every release
    layout, through every network's every layout, it gives what searching every pattern on
    every key gives."""
    keys = list(LAYOUTS[config]["keys"])
    state = dict.fromkeys(keys, torch.empty(0))
    index = KeyIndex(keys)
    for cls in NETS.values():
        for fmt in cls.release_formats().values():
            patterns = [p for p, _ in fmt.key_map] + list(fmt.derived)
            for pattern in patterns:
                hits = {k for k in keys if re.search(pattern, k)}
                assert index.hits(pattern) == hits, (cls.name, pattern)
                assert all(required_segments(pattern) <= set(k.split(".")) for k in hits), pattern
            touched = [k for k in keys if any(re.search(p, k) for p in patterns)]
            derived = {fmt.our_key(k) for k in touched if fmt.is_derived(k)}
            ours = {k for k in keys if k not in touched} | {fmt.our_key(k) for k in touched} - derived
            got_ours, got_derived = in_layout(fmt, state, index)
            assert (set(got_ours), set(got_derived)) == (ours, derived), (cls.name, config)


def test_what_is_not_a_known_network_names_the_closest_one():
    classifier = torch.nn.Sequential(torch.nn.Conv2d(3, 8, 3), torch.nn.Flatten(), torch.nn.Linear(8, 10)).state_dict()
    with pytest.raises(UnknownModelError, match=r"'cls.pth' is not a network sr_lightning knows \(4 tensors"):
        detect(classifier, "'cls.pth'")
    esrgan = create_net("rrdbnet", num_blocks=2).state_dict()
    del esrgan["conv_hr.weight"], esrgan["conv_hr.bias"]  # a layer missing
    with pytest.raises(UnknownModelError, match=r"closest: rrdbnet \(\d+ of \d+ key patterns, missing conv_hr\."):
        detect(esrgan, "'esrgan.pth'")


def test_a_state_dict_two_networks_fit_names_both():
    """A three-layer VDSR has SRCNN's layout with 3x3 kernels: both fit, both are named."""
    three = create_net("vdsr", num_layers=3).state_dict()
    with pytest.raises(UnknownModelError, match=r"fits srcnn \(sr_lightning layout\) and vdsr \(sr_lightning layout\): "
                                                r"pick one with architecture=srcnn or architecture=vdsr"):
        detect(three, "'three.pth'")
    assert detect(three, architecture="vdsr").name == "vdsr" and detect(three, architecture="srcnn").name == "srcnn"
    with pytest.raises(UnknownModelError, match=r"--architecture=edsr: 'three.pth' is not a edsr file; it fits srcnn"):
        detect(three, "'three.pth'", architecture="edsr", option="--architecture")
