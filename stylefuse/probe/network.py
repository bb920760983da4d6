"""The toy probe: a small CNN that reads every attribute of a toy face (`stylefuse.data.toy.ATTRIBUTES`) back from
its image, and whose penultimate features give an offline Fréchet distance (`fid_toy`).

Outputs per attribute (`ATTRIBUTES` order): a scalar is regressed scaled to [0, 1] over its bounds; a colour as its
RGB values in [0, 1] (RGB, not HSV: the renderer mixes colours linearly in RGB, and hue would be circular); a class as
logits (cross-entropy), read as probabilities. Circular quantities are not predicted at all: the toy faces have no
free angle other than the tilt, which stays within +-0.4 rad.

The trained probe ships with the package (`PROBE_FILE`, a torch.save file of plain tensors, read by the networks'
restricted reader, never by torch.load), written by `python -m stylefuse.probe.train`; the file records its test
errors and the renderer it was trained on.
"""

from __future__ import annotations

import hashlib
import os
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F

from stylefuse.data.toy import ATTRIBUTES, Attribute, render, sample_codes
from stylefuse.errors import NetworkFileError
from stylefuse.networks.snapshot import read_torch_file
from stylefuse.networks.sniff import sniff
from stylefuse.networks.unpickler import reading

PROBE_FILE = Path(__file__).resolve().parents[1] / "assets" / "toy-probe.pt"
PROBE_FORMAT = "stylefuse-toy-probe"
PROBE_VERSION = 1
RETRAIN = "python -m stylefuse.probe.train"


def attribute_layout() -> list[tuple[Attribute, slice]]:
    """Each attribute with its slice of the probe's output vector."""
    layout, start = [], 0
    for attr in ATTRIBUTES:
        layout.append((attr, slice(start, start + attr.size)))
        start += attr.size
    return layout


NUM_OUTPUTS = sum(attr.size for attr in ATTRIBUTES)


def renderer_fingerprint(resolution: int) -> str:
    """A hash of a few rendered toy faces: a probe trained on another renderer is stale."""
    images = np.stack([render(*sample_codes(12345, idx), resolution) for idx in range(4)])
    return hashlib.sha256(images.tobytes()).hexdigest()[:16]


class ToyProbe(torch.nn.Module):
    """uint8 images [N, 3, H, W] (any H = W; resized to `resolution`) -> features [N, feature_dim]."""

    def __init__(self,
        resolution:  int = 32,             # Input size the probe sees.
        channels:    tuple[int, ...] = (16, 32, 64, 128),  # Width at the input and after each 2x downsampling.
        feature_dim: int = 128,            # Penultimate features (the Fréchet distance's space).
    ) -> None:
        super().__init__()
        self.init_kwargs = dict(resolution=resolution, channels=list(channels), feature_dim=feature_dim)
        self.resolution = resolution
        layers = conv_block(3, channels[0], stride=1)
        for c_in, c_out in zip(channels[:-1], channels[1:]):  # Each stage: a strided conv, then a plain one.
            layers += conv_block(c_in, c_out, stride=2) + conv_block(c_out, c_out, stride=1)
        self.convs = torch.nn.Sequential(*layers)
        # Flattened rather than pooled: position and size of the head are attributes too.
        side = resolution // 2 ** (len(channels) - 1)
        self.fc = torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(channels[-1] * side * side, 256),
                                      torch.nn.LeakyReLU(0.2), torch.nn.Linear(256, feature_dim),
                                      torch.nn.LeakyReLU(0.2))
        self.head = torch.nn.Linear(feature_dim, NUM_OUTPUTS)

    def prepare(self, images: torch.Tensor) -> torch.Tensor:
        """uint8 (or float in [0, 255]) [N, 3, H, W] -> float [N, 3, R, R] in [-1, 1]; area-resized if H != R."""
        x = images.to(torch.float32) / 127.5 - 1
        if x.shape[-1] > self.resolution:
            x = F.interpolate(x, size=(self.resolution, self.resolution), mode="area")
        elif x.shape[-1] < self.resolution:
            x = F.interpolate(x, size=(self.resolution, self.resolution), mode="bilinear", align_corners=False)
        return x

    def features(self, x: torch.Tensor) -> torch.Tensor:
        """Prepared images -> [N, feature_dim]."""
        return self.fc(self.convs(x))

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        return self.features(self.prepare(images))

    def outputs(self, images: torch.Tensor) -> torch.Tensor:
        """Raw outputs [N, NUM_OUTPUTS] (scaled values and logits), the quantities the probe is trained on."""
        return self.head(self(images))

    def predict(self, images: torch.Tensor) -> dict[str, torch.Tensor]:
        """Attribute name -> values in the attribute's units: scalar [N], colour [N, 3], class probabilities [N, K]."""
        return self.predict_features(self(images))

    def predict_features(self, features: torch.Tensor) -> dict[str, torch.Tensor]:
        """`predict` from already computed features [N, feature_dim]."""
        return decode_outputs(self.head(features))


def conv_block(c_in: int, c_out: int, stride: int) -> list[torch.nn.Module]:
    """3x3 conv, batch norm (fast, stable training on rendered batches), leaky ReLU."""
    return [torch.nn.Conv2d(c_in, c_out, 3, stride=stride, padding=1, bias=False), torch.nn.BatchNorm2d(c_out),
            torch.nn.LeakyReLU(0.2)]


def decode_outputs(outputs: torch.Tensor) -> dict[str, torch.Tensor]:
    """Raw outputs [N, NUM_OUTPUTS] -> attribute name -> values (see `ToyProbe.predict`)."""
    values = {}
    for attr, sl in attribute_layout():
        out = outputs[:, sl]
        if attr.kind == "class":
            values[attr.name] = out.softmax(dim=1)
        else:
            lo, hi = attr.bounds
            values[attr.name] = (lo + (hi - lo) * out).squeeze(1) if attr.kind == "scalar" else out
    return values


def flatten_predictions(values: dict[str, torch.Tensor]) -> torch.Tensor:
    """attribute name -> values  ->  [N, NUM_OUTPUTS] in `attribute_layout` order (scalars as [N, 1])."""
    return torch.cat([values[attr.name].reshape(len(values[attr.name]), -1) for attr in ATTRIBUTES], dim=1)


def split_predictions(flat: torch.Tensor) -> dict[str, torch.Tensor]:
    """The inverse of `flatten_predictions`."""
    return {attr.name: flat[:, sl].squeeze(1) if attr.kind == "scalar" else flat[:, sl]
            for attr, sl in attribute_layout()}


# ----------------------------------------------------------------------------


def save_probe(path: str | os.PathLike, probe: ToyProbe, info: dict[str, Any]) -> None:
    """Writes the probe as plain tensors and numbers (atomically), with `info` (test errors, training settings)."""
    data = dict(format=PROBE_FORMAT, version=PROBE_VERSION, kwargs=dict(probe.init_kwargs),
                attributes=[[attr.name, attr.kind, attr.size] for attr in ATTRIBUTES],
                fingerprint=renderer_fingerprint(probe.resolution), info=info,
                state_dict={name: t.detach().cpu() for name, t in probe.state_dict().items()})
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    try:
        torch.save(data, tmp)
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)


def load_probe(path: str | os.PathLike = PROBE_FILE, device: torch.device | str = "cpu") -> ToyProbe:
    """The probe of a file written by `save_probe` (default: the shipped one), eval mode, no gradients.

    Refuses a file whose attributes differ from `ATTRIBUTES` (one line naming the retraining command); `probe.info`
    holds what the file recorded, `probe.stale` says whether the toy renderer has changed since it was trained.
    """
    path = Path(path)
    if not path.is_file():
        raise NetworkFileError(f"toy probe file not found: {path}; train one with {RETRAIN}")
    display_name = os.fspath(path)
    try:
        data = read_torch_file(path, display_name, sniff(path, display_name))  # the restricted reader: runs nothing
    except NetworkFileError as err:
        raise NetworkFileError(f"{err}; retrain the probe with {RETRAIN}") from err
    if not isinstance(data, dict) or data.get("format") != PROBE_FORMAT or data.get("version") != PROBE_VERSION:
        raise NetworkFileError(f"{path} is not a toy probe file of version {PROBE_VERSION}; retrain with {RETRAIN}")
    expected = [[attr.name, attr.kind, attr.size] for attr in ATTRIBUTES]
    if data.get("attributes") != expected:
        raise NetworkFileError(f"the toy probe {path} was trained for other toy attributes than "
                               f"stylefuse.data.toy.ATTRIBUTES; retrain it with {RETRAIN}")
    _check_kwargs(data.get("kwargs"), path)
    try:
        with reading(display_name):  # missing or misshapen weights: one line
            probe = ToyProbe(**data["kwargs"])
            probe.load_state_dict(data["state_dict"])
    except NetworkFileError as err:
        raise NetworkFileError(f"{err}; retrain the probe with {RETRAIN}") from err
    probe.info = data["info"]
    probe.stale = data["fingerprint"] != renderer_fingerprint(probe.resolution)
    probe.name = f"toy-probe-{data['fingerprint']}-{_weights_hash(data['state_dict'])}"
    return probe.eval().requires_grad_(False).to(device)


def _check_kwargs(kwargs: Any, path: Path) -> None:
    """The constructor arguments must be the few small numbers a probe has, before anything is built from them."""
    ok = (isinstance(kwargs, dict) and set(kwargs) == {"resolution", "channels", "feature_dim"}
          and kwargs["resolution"] in (16, 32, 64, 128) and isinstance(kwargs["feature_dim"], int)
          and 1 <= kwargs["feature_dim"] <= 4096 and isinstance(kwargs["channels"], list)
          and 1 <= len(kwargs["channels"]) <= 6 and kwargs["resolution"] >> (len(kwargs["channels"]) - 1) >= 1
          and all(isinstance(c, int) and 1 <= c <= 1024 for c in kwargs["channels"]))
    if not ok:
        raise NetworkFileError(f"the toy probe {path} has malformed constructor arguments; retrain it with {RETRAIN}")


def _weights_hash(state_dict: dict[str, torch.Tensor]) -> str:
    digest = hashlib.sha256()
    for name in sorted(state_dict):
        digest.update(name.encode())
        digest.update(state_dict[name].numpy().tobytes())
    return digest.hexdigest()[:8]


class ProbeDetector(torch.nn.Module):
    """The shipped probe as a metrics detector: uint8 [N, 3, H, W] -> features [N, feature_dim] ('features') or the
    flattened attribute predictions [N, NUM_OUTPUTS] ('attributes')."""

    def __init__(self, output: str = "features", path: str | os.PathLike = PROBE_FILE) -> None:
        super().__init__()
        assert output in ("features", "attributes")
        self.output = output
        self.probe = load_probe(path)
        self.name = f"{self.probe.name}-{output}"

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        if self.output == "features":
            return self.probe(images)
        return flatten_predictions(self.probe.predict(images))
