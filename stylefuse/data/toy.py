"""The embedded toy dataset: procedural faces drawn by numpy, no download, fast enough to train on a CPU.

Each image is drawn from two independent codes, mirroring what StyleGAN's styles separate:
- `CoarseCode` (geometry, the 4x4-8x8 styles): head shape, size, position and tilt, eye spacing and size, mouth
  width and smile, how far the hair comes down. It alone decides where every edge is.
- `FineCode` (appearance, the 16x16 and finer styles): colours of background, skin, hair and mouth, and a bold skin
  pattern (plain, horizontal stripes or two cheek patches, in face coordinates). It never moves an edge.
The attributes are few and large on purpose: a small StyleGAN2 on a CPU learns them within minutes, and every one is
visible at 32x32, so a probe network can read each of them back from an image (`ATTRIBUTES`, `stylefuse.probe`).
Shapes are drawn with hard edges at `SUPERSAMPLE` times the resolution, box-downsampled and slightly softened, so
edges are anti-aliased and the image distribution is smooth. The head-shape class is the optional conditioning label.
"""

from __future__ import annotations

import colorsys
import dataclasses

import numpy as np

from stylefuse.data.datasets import Dataset
from stylefuse.errors import DatasetError

SUPERSAMPLE = 4  # Sub-pixels per pixel side; edges get SUPERSAMPLE**2 coverage levels.
# A slight blur of every image (std 0.5 px): no detail is a single pixel, so nothing in the data rewards a generator
# for per-pixel noise (which a small StyleGAN2 otherwise learns first, as speckles).
SOFTEN_TAPS = (0.125, 0.75, 0.125)

# Head outline per shape class, in face units: superellipse |x/ax|^p + |y/ay|^p <= 1.
HEAD_SHAPES = (
    (0.80, 0.80, 2.0),  # 0: round
    (0.64, 0.90, 2.0),  # 1: tall oval
    (0.74, 0.80, 4.0),  # 2: square
    (0.90, 0.68, 2.5),  # 3: wide
)
NUM_CLASSES = len(HEAD_SHAPES)
TEXTURES = ("plain", "stripes", "cheeks")

EYE_Y = -0.08           # Eye centre height, face units (negative = above the head centre).
MOUTH_Y = 0.40          # Mouth centre height, face units.
MOUTH_HALF_HEIGHT = 0.07
STRIPE_PERIOD = 0.5     # Stripes repeat every this many face units: three bands across a face.
CHEEK_X, CHEEK_Y, CHEEK_RADIUS = 0.42, 0.16, 0.2  # The two round cheek patches, face units.
PATTERN_DARKNESS = 0.5  # The pattern colour is the skin colour times this.

# Sampling range of every continuous coarse attribute (uniform).
COARSE_RANGES: dict[str, tuple[float, float]] = dict(
    cx=(-0.08, 0.08), cy=(-0.08, 0.08),   # Head centre, image units ([-1, 1] across the image).
    size=(0.62, 0.82),                    # Image units per face unit.
    tilt=(-0.35, 0.35),                   # Head rotation, radians (positive = clockwise on screen).
    eye_gap=(0.22, 0.36),                 # Half distance between the eye centres, face units.
    eye_size=(0.11, 0.17),                # Eye half-height, face units.
    mouth_width=(0.16, 0.36),             # Half width of the mouth, face units.
    smile=(-0.14, 0.20),                  # Mouth corner lift, face units (negative = frown).
    hairline=(-0.65, -0.28),              # Hair covers the head above this height, face units.
)
TEXTURE_AMOUNT_RANGE = (0.5, 1.0)         # Pattern strength of striped and spotted faces (plain faces: 0).

# ----------------------------------------------------------------------------


@dataclasses.dataclass(frozen=True)
class CoarseCode:
    """Geometry. Image coordinates run over [-1, 1] (x right, y down); face units are relative to `size`."""

    shape: int          # Head-shape class, index into HEAD_SHAPES (the label).
    cx: float           # The continuous attributes, ranges and meaning in COARSE_RANGES.
    cy: float
    size: float
    tilt: float
    eye_gap: float
    eye_size: float
    mouth_width: float
    smile: float
    hairline: float

    @classmethod
    def sample(cls, rng: np.random.Generator) -> CoarseCode:
        shape = int(rng.integers(NUM_CLASSES))
        return cls(shape=shape, **{name: float(rng.uniform(*bounds)) for name, bounds in COARSE_RANGES.items()})


@dataclasses.dataclass(frozen=True)
class FineCode:
    """Appearance: RGB colours in [0, 1] and the skin pattern."""

    background_top: tuple[float, float, float]
    background_bottom: tuple[float, float, float]
    skin: tuple[float, float, float]
    hair: tuple[float, float, float]
    mouth: tuple[float, float, float]
    texture: int            # Index into TEXTURES.
    texture_amount: float   # 0 = skin colour only (always 0 for 'plain'), 1 = full pattern colour.

    @classmethod
    def sample(cls, rng: np.random.Generator) -> FineCode:
        def hsv(s: tuple[float, float], v: tuple[float, float]) -> tuple[float, float, float]:
            return colorsys.hsv_to_rgb(rng.uniform(0, 1), rng.uniform(*s), rng.uniform(*v))

        colors = dict(background_top=hsv((0.0, 0.8), (0.3, 1.0)), background_bottom=hsv((0.0, 0.8), (0.2, 0.9)),
                      skin=hsv((0.15, 0.7), (0.55, 0.95)), hair=hsv((0.2, 0.9), (0.05, 0.7)),
                      mouth=hsv((0.4, 0.9), (0.2, 0.7)))
        texture = int(rng.integers(len(TEXTURES)))
        amount = float(rng.uniform(*TEXTURE_AMOUNT_RANGE))
        return cls(**colors, texture=texture, texture_amount=0.0 if TEXTURES[texture] == "plain" else amount)


def sample_codes(seed: int, idx: int) -> tuple[CoarseCode, FineCode]:
    """The codes of toy image `idx`; depends only on (seed, idx), the coarse code drawn first."""
    rng = np.random.default_rng([seed, idx])
    coarse = CoarseCode.sample(rng)
    return coarse, FineCode.sample(rng)


# ----------------------------------------------------------------------------
# The attributes a probe reads back from an image: every field of both codes.


@dataclasses.dataclass(frozen=True)
class Attribute:
    """One attribute of the toy faces, as a probe predicts it."""

    name: str                       # CoarseCode / FineCode field.
    group: str                      # 'coarse' (geometry) or 'fine' (appearance).
    kind: str                       # 'scalar', 'color' (RGB in [0, 1]) or 'class' (index into `classes`).
    bounds: tuple[float, float] = (0.0, 1.0)  # Range of the values (scalar, color); the probe regresses them scaled.
    classes: tuple[str, ...] = ()   # Class names (kind 'class').

    @property
    def size(self) -> int:
        """Values per image: 1 (scalar), 3 (color) or the number of classes (a probability each)."""
        return dict(scalar=1, color=3).get(self.kind, len(self.classes))


ATTRIBUTES: tuple[Attribute, ...] = (
    Attribute("shape", "coarse", "class", classes=("round", "tall", "square", "wide")),
    *(Attribute(name, "coarse", "scalar", bounds) for name, bounds in COARSE_RANGES.items()),
    *(Attribute(name, "fine", "color") for name in ("background_top", "background_bottom", "skin", "hair", "mouth")),
    Attribute("texture", "fine", "class", classes=TEXTURES),
    Attribute("texture_amount", "fine", "scalar", (0.0, TEXTURE_AMOUNT_RANGE[1])),
)
assert len(ATTRIBUTES[0].classes) == NUM_CLASSES


def attribute_values(coarse: CoarseCode, fine: FineCode) -> dict[str, float | int | tuple[float, float, float]]:
    """The value of every attribute of `ATTRIBUTES` for one face."""
    codes = {**dataclasses.asdict(coarse), **dataclasses.asdict(fine)}
    return {attr.name: codes[attr.name] for attr in ATTRIBUTES}


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
    eye_r = (eye_x / (1.4 * coarse.eye_size)) ** 2 + ((fy - EYE_Y) / coarse.eye_size) ** 2
    pupil_r = (eye_x**2 + (fy - EYE_Y) ** 2) / (0.6 * coarse.eye_size) ** 2
    mouth_curve = MOUTH_Y - coarse.smile * (fx / coarse.mouth_width) ** 2
    mouth = (np.abs(fy - mouth_curve) < MOUTH_HALF_HEIGHT) & (np.abs(fx) < coarse.mouth_width)
    return dict(
        head=head, hair=hair, eye=eye_r <= 1, pupil=pupil_r <= 1, mouth=mouth,
        shade=1 - 0.22 * np.minimum(head_r, 1),  # Darker towards the rim: a hint of volume.
        fx=fx, fy=fy,
    )


def _texture(fine: FineCode, fx: np.ndarray, fy: np.ndarray) -> np.ndarray:
    """Pattern weight in [0, 1] per sub-pixel, in face coordinates so that it turns and scales with the head."""
    if TEXTURES[fine.texture] == "stripes":  # Horizontal bands across the face.
        return 0.5 + 0.5 * np.cos(np.float32(2 * np.pi / STRIPE_PERIOD) * fy)
    if TEXTURES[fine.texture] == "cheeks":   # Two large soft-edged discs, one on each cheek.
        r = np.sqrt((np.abs(fx) - CHEEK_X) ** 2 + (fy - CHEEK_Y) ** 2) / CHEEK_RADIUS
        return np.clip((1.2 - r) * 2.5, 0, 1)
    return np.zeros_like(fx)


def _downsample(x: np.ndarray, resolution: int) -> np.ndarray:
    """Box filter [R*S, R*S, ...] -> [R, R, ...]: the mean of each SUPERSAMPLE x SUPERSAMPLE block."""
    return x.reshape(resolution, SUPERSAMPLE, resolution, SUPERSAMPLE, *x.shape[2:]).mean(axis=(1, 3))


def _soften(x: np.ndarray) -> np.ndarray:
    """[R, R, ...] -> the same, blurred by SOFTEN_TAPS along both axes (edges clamped)."""
    for axis in (0, 1):
        pad = [(1, 1) if a == axis else (0, 0) for a in range(x.ndim)]
        p = np.pad(x, pad, mode="edge")
        n = x.shape[axis]
        x = sum(w * np.take(p, np.arange(k, k + n), axis=axis) for k, w in enumerate(SOFTEN_TAPS))
    return x


def render(coarse: CoarseCode, fine: FineCode, resolution: int) -> np.ndarray:
    """Draws one face: uint8 [3, resolution, resolution]."""
    size = resolution * SUPERSAMPLE
    layers = _layers(coarse, size)
    rows = ((np.arange(size, dtype=np.float32) + 0.5) / size)[:, None, None]
    img = np.repeat((1 - rows) * _rgb(fine.background_top) + rows * _rgb(fine.background_bottom), size, axis=1)
    img[layers["hair"]] = _rgb(fine.hair)
    face = layers["head"] & ~layers["hair"]
    pattern = (_texture(fine, layers["fx"][face], layers["fy"][face]) * fine.texture_amount)[:, None]
    skin = _rgb(fine.skin) * (1 - pattern * (1 - PATTERN_DARKNESS))
    img[face] = skin * layers["shade"][face][:, None]
    img[face & layers["mouth"]] = _rgb(fine.mouth)
    img[face & layers["eye"]] = _rgb((0.95, 0.95, 0.93))
    img[face & layers["pupil"]] = _rgb((0.05, 0.05, 0.05))
    img = _soften(_downsample(img, resolution))  # [R, R, 3]
    return np.rint(img * 255).clip(0, 255).astype(np.uint8).transpose(2, 0, 1)


def _rgb(color: tuple[float, float, float]) -> np.ndarray:
    return np.asarray(color, dtype=np.float32)


def foreground_mask(coarse: CoarseCode, resolution: int) -> np.ndarray:
    """Coverage of head and hair per pixel, float32 [resolution, resolution] in [0, 1]."""
    layers = _layers(coarse, resolution * SUPERSAMPLE)
    return _soften(_downsample((layers["head"] | layers["hair"]).astype(np.float32), resolution))


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
