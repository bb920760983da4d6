"""stylefuse: StyleGAN2-ADA training, GAN inversion and style fusion with PyTorch Lightning and Hydra."""

__version__ = "0.1.0"
