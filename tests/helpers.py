"""Plain test helpers, for the places a fixture does not reach (module-level helpers, forked workers, parametrize):
paths, the config tree through Hydra's compose API, tiny networks, golden tensors, the official uint8 rule, one-line
error checks. tests/conftest.py turns the common cases into fixtures."""

from __future__ import annotations

import contextlib
import functools
from pathlib import Path

import lpips
import numpy as np
import PIL.Image
import pytest
import torch

from stylefuse.cli import compose_config
from stylefuse.networks import save_network_snapshot
from stylefuse.nn import Discriminator, Generator
from stylefuse.projection import lpips_vgg

REPO = Path(__file__).resolve().parents[1]
GOLDEN_DIR = REPO.parent / "shared" / "golden"  # CI has shared/ beside its clone, like this checkout


compose_cfg = compose_config  # conf/<config_name>.yaml with command-line style overrides


@contextlib.contextmanager
def torch_threads(num_threads: int):
    """torch on `num_threads` threads inside the block: on tiny tensors a second thread only adds synchronisation,
    which costs many times the work when other jobs share the cores."""
    before = torch.get_num_threads()
    torch.set_num_threads(num_threads)
    try:
        yield
    finally:
        torch.set_num_threads(before)


@functools.cache
def load_golden(name: str) -> dict:
    """A file of golden tensors from /work/shared/golden (made by the official code), loaded once."""
    path = GOLDEN_DIR / name
    if not path.is_file():
        pytest.fail(f"golden file missing: {path} (the shared/ folder must sit beside the repository)")
    return torch.load(path, weights_only=True)


# --- Tiny networks: 32x32 (num_ws 8), 32 channels at most, z = w = 32; a few ms per forward pass. -------------------

def tiny_G_kwargs(c_dim: int = 0, res: int = 32, channels: int = 3, **synthesis_kwargs) -> dict:
    """Constructor kwargs of the tiny generator (synthesis_kwargs add architecture, fp16 and clamp options)."""
    return dict(z_dim=32, c_dim=c_dim, w_dim=32, img_resolution=res, img_channels=channels,
                mapping_kwargs=dict(num_layers=2), synthesis_kwargs=dict(channel_base=512, channel_max=32,
                                                                          **synthesis_kwargs))


def tiny_D_kwargs(c_dim: int = 0, res: int = 32, **kwargs) -> dict:
    """Constructor kwargs of the tiny discriminator (kwargs add architecture, block and epilogue options)."""
    return dict(c_dim=c_dim, img_resolution=res, img_channels=3, channel_base=512, channel_max=32, **kwargs)


def tiny_generator(c_dim: int = 0, res: int = 32, channels: int = 3, seed: int | None = None,
                   noise_strength: float | None = None, **synthesis_kwargs) -> Generator:
    """A random tiny G (training mode, as constructed). seed: torch.manual_seed first (None = the current stream);
    noise_strength: the value of every layer's noise strength (0 at init), so that noise_mode matters."""
    if seed is not None:
        torch.manual_seed(seed)
    G = Generator(**tiny_G_kwargs(c_dim, res, channels, **synthesis_kwargs))
    if noise_strength is not None:
        with torch.no_grad():
            for name, param in G.named_parameters():
                if name.endswith("noise_strength"):
                    param.fill_(noise_strength)
    return G


def tiny_discriminator(c_dim: int = 0, res: int = 32, **kwargs) -> Discriminator:
    """A random tiny D (drawn from the current torch stream)."""
    return Discriminator(**tiny_D_kwargs(c_dim, res, **kwargs))


def save_tiny_snapshot(path: Path, G: Generator, kimg: float = 0.0, training_set_kwargs: dict | None = None) -> Path:
    """G (as G and G_ema) with a random tiny D, saved as a stylefuse network snapshot."""
    D = tiny_discriminator(c_dim=G.c_dim)
    save_network_snapshot(path, G, D, G, augment_p=None, training_set_kwargs=training_set_kwargs, kimg=kimg)
    return path


def tiny_network(path: Path, c_dim: int = 0, seed: int = 0) -> Generator:
    """A random tiny G (eval) with visible noise and a non-zero w_avg, saved as a stylefuse snapshot at `path`."""
    G = tiny_generator(c_dim=c_dim, seed=seed).eval()
    D = tiny_discriminator(c_dim=c_dim)
    with torch.no_grad():
        G.mapping.w_avg.normal_()  # truncation must move towards something other than zero
        for name, param in G.named_parameters():
            if name.endswith("noise_strength"):
                param.fill_(0.5)  # so that noise_mode changes the image
    save_network_snapshot(path, G, D, G, augment_p=None, training_set_kwargs=None, kimg=0.0)
    return G


def random_lpips(seed: int | None = None) -> lpips.LPIPS:
    """LPIPS-VGG with a random trunk (`pnet_rand=True`): the learned layer weights ship with the package, the VGG
    weights would be a download. seed: torch.manual_seed first (None = the current stream)."""
    if seed is not None:
        torch.manual_seed(seed)
    return lpips_vgg(pnet_rand=True)


# --- Checks ------------------------------------------------------------------------------------------------------

def save_png(path: Path, img: np.ndarray) -> Path:
    """Writes a uint8 [C, H, W] image as a PNG; returns the path."""
    PIL.Image.fromarray(img.transpose(1, 2, 0)).save(path)
    return path


def proc_status_mb(field: str) -> float:
    """A memory field of /proc/self/status (`VmRSS` now, `VmHWM` the peak), in MiB: the kernel's own count, to check
    the package's memory probes against."""
    with open("/proc/self/status") as status:
        for line in status:
            if line.startswith(f"{field}:"):
                return int(line.split()[1]) / 1024  # kB
    raise AssertionError(f"no {field} in /proc/self/status")


def official_uint8(img: torch.Tensor) -> np.ndarray:
    """The official generate.py conversion, written out: (x * 127.5 + 128) clamped, truncated to uint8, HWC."""
    return (img.permute(0, 2, 3, 1) * 127.5 + 128).clamp(0, 255).to(torch.uint8)[0].numpy()


@torch.no_grad()
def official_image(G: Generator, ws: torch.Tensor) -> np.ndarray:
    """The image of ws[0] (noise_mode='const') as official generate.py saves it: uint8 HWC."""
    return official_uint8(G.synthesis(ws, noise_mode="const"))


def assert_one_line(err: pytest.ExceptionInfo, *fragments: str) -> None:
    """The raised error is one line holding every fragment."""
    message = str(err.value)
    assert "\n" not in message, message
    for fragment in fragments:
        assert fragment in message, message
