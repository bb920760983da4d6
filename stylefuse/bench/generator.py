"""The random-weight generator that `bench generate` and `bench project` time, and the flags that size it."""

from __future__ import annotations

import argparse

import torch

from stylefuse.nn import Generator


def add_generator_flags(parser: argparse.ArgumentParser) -> None:
    """--res, --channel-base, --channel-max, --map and --device."""
    parser.add_argument("--res", type=int, default=256, help="output resolution (power of two)")
    parser.add_argument("--channel-base", type=int, default=16384, help="synthesis channel_base")
    parser.add_argument("--channel-max", type=int, default=512, help="synthesis channel_max")
    parser.add_argument("--map", type=int, default=8, help="mapping layers")
    parser.add_argument("--device", default="auto", help="auto, cuda or cpu")


def random_generator(args: argparse.Namespace, device: torch.device) -> Generator:
    """An unconditional RGB G with z = w = 512 and the flags' sizes, random weights from the current torch stream,
    in eval mode without gradients, on `device`."""
    G = Generator(z_dim=512, c_dim=0, w_dim=512, img_resolution=args.res, img_channels=3,
                  mapping_kwargs=dict(num_layers=args.map),
                  synthesis_kwargs=dict(channel_base=args.channel_base, channel_max=args.channel_max))
    return G.eval().requires_grad_(False).to(device)
