"""StyleGAN2 networks with the official constructor arguments, state_dict names and call signatures."""

from stylefuse.nn.discriminator import Discriminator, DiscriminatorBlock, DiscriminatorEpilogue, MinibatchStdLayer
from stylefuse.nn.layers import (
    Conv2dLayer,
    FullyConnectedLayer,
    modulated_conv2d,
    normalize_2nd_moment,
    set_block_options,
)
from stylefuse.nn.mapping import MappingNetwork
from stylefuse.nn.synthesis import Generator, SynthesisBlock, SynthesisLayer, SynthesisNetwork, ToRGBLayer

__all__ = [
    "Conv2dLayer", "Discriminator", "DiscriminatorBlock", "DiscriminatorEpilogue", "FullyConnectedLayer", "Generator",
    "MappingNetwork", "MinibatchStdLayer", "SynthesisBlock", "SynthesisLayer", "SynthesisNetwork", "ToRGBLayer",
    "modulated_conv2d", "normalize_2nd_moment", "set_block_options",
]
