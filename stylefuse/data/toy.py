"""The embedded toy dataset: procedural faces drawn by numpy, no download, fast enough to train on a CPU.

Each image is drawn from two independent codes, mirroring what StyleGAN's styles separate:
- `CoarseCode` (geometry, the 4x4-8x8 styles): head shape, size, position and tilt, where the eyes and mouth sit,
  how far the hair comes down. It alone decides the foreground mask.
- `FineCode` (appearance, the 16x16 and finer styles): colours of background, skin, hair, eyes and mouth, and a
  skin texture (plain, stripes or spots). It never moves an edge.
Shapes are drawn with hard edges at `SUPERSAMPLE` times the resolution and box-downsampled, so edges are
anti-aliased and the image distribution is smooth. The head-shape class is the optional conditioning label.
"""

from __future__ import annotations

import colorsys
import dataclasses

import numpy as np

from stylefuse.data.datasets import Dataset
from stylefuse.errors import DatasetError

SUPERSAMPLE = 4  # Sub-pixels per pixel side; edges get SUPERSAMPLE**2 coverage levels.

# Head outline per shape class, in face units: superellipse |x/ax|^p + |y/ay|^p <= 1.
HEAD_SHAPES = (
    (0.80, 0.80, 2.0),  # 0: round
    (0.64, 0.90, 2.0),  # 1: tall oval
    (0.74, 0.80, 4.0),  # 2: square
    (0.90, 0.68, 2.5),  # 3: wide
)
NUM_CLASSES = len(HEAD_SHAPES)
TEXTURES = ("plain", "stripes", "spots")

# ----------------------------------------------------------------------------


@dataclasses.dataclass(frozen=True)
class CoarseCode:
    """Geometry. Image coordinates run over [-1, 1] (x right, y down); face units are relative to `size`."""

    shape: int          # Head-shape class, index into HEAD_SHAPES (the label).
    cx: float           # Head centre, image units.
    cy: float
    size: float         # Image units per face unit.
    tilt: float         # Head rotation, radians (positive = clockwise on screen).
    eye_gap: float      # Half distance between the eye centres, face units.
    eye_y: float        # Eye height, face units (negative = above the centre).
    eye_size: float     # Eye half-height, face units.
    mouth_y: float      # Height of the mouth centre, face units.
    mouth_width: float  # Half width of the mouth, face units.
    smile: float        # Mouth corner lift, face units (negative = frown).
    hairline: float     # Hair covers the head above this height, face units.

    @classmethod
    def sample(cls, rng: np.random.Generator) -> CoarseCode:
        return cls(
            shape=int(rng.integers(NUM_CLASSES)),
            cx=rng.uniform(-0.12, 0.12), cy=rng.uniform(-0.10, 0.10),
            size=rng.uniform(0.66, 0.84), tilt=rng.uniform(-0.35, 0.35),
            eye_gap=rng.uniform(0.24, 0.36), eye_y=rng.uniform(-0.16, 0.04), eye_size=rng.uniform(0.08, 0.13),
            mouth_y=rng.uniform(0.32, 0.46), mouth_width=rng.uniform(0.18, 0.32), smile=rng.uniform(-0.10, 0.16),
            hairline=rng.uniform(-0.62, -0.30),
        )


@dataclasses.dataclass(frozen=True)
class FineCode:
    """Appearance: RGB colours in [0, 1] and the skin texture."""

    background_top: tuple[float, float, float]
    background_bottom: tuple[float, float, float]
    skin: tuple[float, float, float]
    skin_pattern: tuple[float, float, float]  # Second skin colour, shown by the texture.
    hair: tuple[float, float, float]
    iris: tuple[float, float, float]
    mouth: tuple[float, float, float]
    texture: int            # Index into TEXTURES.
    texture_freq: float     # Radians per face unit.
    texture_angle: float    # Stripe direction, radians.
    texture_phase: tuple[float, float]
    texture_amount: float   # 0 = skin colour only, 1 = full pattern colour.

    @classmethod
    def sample(cls, rng: np.random.Generator) -> FineCode:
        def hsv(s: tuple[float, float], v: tuple[float, float]) -> tuple[float, float, float]:
            return colorsys.hsv_to_rgb(rng.uniform(0, 1), rng.uniform(*s), rng.uniform(*v))

        return cls(
            background_top=hsv((0.0, 0.8), (0.3, 1.0)), background_bottom=hsv((0.0, 0.8), (0.2, 0.9)),
            skin=hsv((0.15, 0.7), (0.55, 0.95)), skin_pattern=hsv((0.2, 0.9), (0.2, 0.9)),
            hair=hsv((0.2, 0.9), (0.05, 0.7)), iris=hsv((0.4, 1.0), (0.3, 0.9)), mouth=hsv((0.4, 0.9), (0.3, 0.8)),
            texture=int(rng.integers(len(TEXTURES))), texture_freq=rng.uniform(9.0, 16.0),
            texture_angle=rng.uniform(0, np.pi), texture_phase=(rng.uniform(0, 2 * np.pi), rng.uniform(0, 2 * np.pi)),
            texture_amount=rng.uniform(0.35, 1.0),
        )


def sample_codes(seed: int, idx: int) -> tuple[CoarseCode, FineCode]:
    """The codes of toy image `idx`; depends only on (seed, idx), the coarse code drawn first."""
    rng = np.random.default_rng([seed, idx])
    coarse = CoarseCode.sample(rng)
    return coarse, FineCode.sample(rng)


# ----------------------------------------------------------------------------


def _face_coords(coarse: CoarseCode, size: int) -> tuple[np.ndarray, np.ndarray]:
    """Sub-pixel centres in face units, [size, size] each: centred on the head, untilted, scaled."""
    t = (np.arange(size) + 0.5) * (2 / size) - 1
    x = (t[None, :] - coarse.cx).astype(np.float32)
    y = (t[:, None] - coarse.cy).astype(np.float32)
    c, s = np.float32(np.cos(coarse.tilt) / coarse.size), np.float32(np.sin(coarse.tilt) / coarse.size)
    return c * x + s * y, c * y - s * x


def _layers(coarse: CoarseCode, size: int) -> dict[str, np.ndarray]:
    """Hard-edged masks [size, size] of every face part, plus shading and face coordinates: geometry only."""
    fx, fy = _face_coords(coarse, size)
    ax, ay, p = HEAD_SHAPES[coarse.shape]
    head_r = np.abs(fx / ax) ** p + np.abs(fy / ay) ** p
    head = head_r <= 1
    hair = (head_r <= 1.12**p) & (fy < coarse.hairline)
    eye_x = np.abs(fx) - coarse.eye_gap
    eye_r = (eye_x / (1.4 * coarse.eye_size)) ** 2 + ((fy - coarse.eye_y) / coarse.eye_size) ** 2
    iris_r = (eye_x**2 + (fy - coarse.eye_y) ** 2) / (0.65 * coarse.eye_size) ** 2
    mouth_curve = coarse.mouth_y - coarse.smile * (fx / coarse.mouth_width) ** 2
    mouth = (np.abs(fy - mouth_curve) < 0.045) & (np.abs(fx) < coarse.mouth_width)
    return dict(
        head=head, hair=hair, eye=eye_r <= 1, iris=iris_r <= 1, pupil=iris_r <= 0.45**2, mouth=mouth,
        shade=1 - 0.22 * np.minimum(head_r, 1),  # Darker towards the rim: a hint of volume.
        fx=fx, fy=fy,
    )


def _texture(fine: FineCode, fx: np.ndarray, fy: np.ndarray) -> np.ndarray:
    """Pattern weight in [0, 1] per sub-pixel, in face coordinates so it turns with the head."""
    if TEXTURES[fine.texture] == "plain":
        return np.zeros_like(fx)
    c, s = np.cos(fine.texture_angle), np.sin(fine.texture_angle)
    u, v = (c * fx + s * fy) * fine.texture_freq, (c * fy - s * fx) * fine.texture_freq
    if TEXTURES[fine.texture] == "stripes":
        return 0.5 + 0.5 * np.sin(u + fine.texture_phase[0])
    return (np.sin(u + fine.texture_phase[0]) * np.sin(v + fine.texture_phase[1]) > 0.35).astype(np.float32)


def _downsample(x: np.ndarray, resolution: int) -> np.ndarray:
    """Box filter [R*S, R*S, ...] -> [R, R, ...]: the mean of each SUPERSAMPLE x SUPERSAMPLE block."""
    return x.reshape(resolution, SUPERSAMPLE, resolution, SUPERSAMPLE, *x.shape[2:]).mean(axis=(1, 3))


def render(coarse: CoarseCode, fine: FineCode, resolution: int) -> np.ndarray:
    """Draws one face: uint8 [3, resolution, resolution]."""
    size = resolution * SUPERSAMPLE
    layers = _layers(coarse, size)
    rows = ((np.arange(size, dtype=np.float32) + 0.5) / size)[:, None, None]
    img = np.repeat((1 - rows) * _rgb(fine.background_top) + rows * _rgb(fine.background_bottom), size, axis=1)
    img[layers["hair"]] = _rgb(fine.hair)
    face = layers["head"] & ~layers["hair"]
    pattern = (_texture(fine, layers["fx"][face], layers["fy"][face]) * fine.texture_amount)[:, None]
    skin = (1 - pattern) * _rgb(fine.skin) + pattern * _rgb(fine.skin_pattern)
    img[face] = skin * layers["shade"][face][:, None]
    img[face & layers["mouth"]] = _rgb(fine.mouth)
    img[face & layers["eye"]] = _rgb((0.95, 0.95, 0.93))
    img[face & layers["iris"]] = _rgb(fine.iris)
    img[face & layers["pupil"]] = _rgb((0.05, 0.05, 0.05))
    img = _downsample(img, resolution)  # [R, R, 3]
    return np.rint(img * 255).clip(0, 255).astype(np.uint8).transpose(2, 0, 1)


def _rgb(color: tuple[float, float, float]) -> np.ndarray:
    return np.asarray(color, dtype=np.float32)


def foreground_mask(coarse: CoarseCode, resolution: int) -> np.ndarray:
    """Coverage of head and hair per pixel, float32 [resolution, resolution] in [0, 1]."""
    layers = _layers(coarse, resolution * SUPERSAMPLE)
    return _downsample((layers["head"] | layers["hair"]).astype(np.float32), resolution)


# ----------------------------------------------------------------------------


class ToyDataset(Dataset):
    """`num_images` procedural faces, image `i` drawn from `sample_codes(seed, i)` on the fly."""

    def __init__(self,
        resolution:  int = 32,          # Image size, a power of two >= 8.
        num_images:  int = 4096,        # Dataset size before max_size and xflip.
        seed:        int = 0,           # Which faces: image i depends only on (seed, i).
        use_labels:  bool = False,      # Label = head-shape class, one-hot over NUM_CLASSES.
        xflip:       bool = False,      # Double the dataset with mirrored copies.
        max_size:    int | None = None, # Random subset of this size (applied before xflip).
        random_seed: int = 0,           # Seed of that subset.
    ) -> None:
        if resolution < 8 or resolution & (resolution - 1):
            raise DatasetError(f"toy resolution {resolution} is not a power of two >= 8; use e.g. 32 or 64")
        if num_images < 1:
            raise DatasetError(f"toy num_images must be at least 1, got {num_images}")
        self._resolution = resolution
        self._seed = seed
        self._own_kwargs = dict(resolution=resolution, num_images=num_images, seed=seed)
        super().__init__(name="toy", raw_shape=[num_images, 3, resolution, resolution], max_size=max_size,
                         use_labels=use_labels, xflip=xflip, random_seed=random_seed)

    def _load_raw_image(self, raw_idx: int) -> np.ndarray:
        return render(*sample_codes(self._seed, raw_idx), self._resolution)

    def _load_raw_labels(self) -> np.ndarray:
        # The shape class is the first draw of each image's generator, so this costs no rendering.
        return np.array([np.random.default_rng([self._seed, i]).integers(NUM_CLASSES)
                         for i in range(self._raw_shape[0])], dtype=np.int64)

    def _describe(self, raw_idx: int) -> str:
        return f"toy image {raw_idx} (seed {self._seed})"
