"""Tiny datasets written into tmp_path for the data tests: random images as folders, zips and LMDBs."""

from __future__ import annotations

import io
import json
import struct
import zipfile
import zlib
from pathlib import Path

import lmdb
import numpy as np
import PIL.Image


def random_images(n: int, h: int = 8, w: int = 8, c: int = 3, seed: int = 0) -> list[np.ndarray]:
    """n uint8 HWC images (HW for c=1)."""
    rng = np.random.default_rng(seed)
    return [rng.integers(0, 256, (h, w, c) if c > 1 else (h, w), dtype=np.uint8) for _ in range(n)]


def png_bytes(img: np.ndarray) -> bytes:
    buf = io.BytesIO()
    PIL.Image.fromarray(img).save(buf, format="png")
    return buf.getvalue()


def write_folder(root: Path, images: dict[str, np.ndarray]) -> Path:
    for name, img in images.items():
        (root / name).parent.mkdir(parents=True, exist_ok=True)
        (root / name).write_bytes(png_bytes(img))
    return root


def write_zip(path: Path, images: list[np.ndarray], labels: list | None) -> Path:
    names = [f"{i // 1000:05d}/img{i:08d}.png" for i in range(len(images))]
    with zipfile.ZipFile(path, "w") as z:
        for name, img in zip(names, images):
            z.writestr(name, png_bytes(img))
        rows = None if labels is None else [[name, label] for name, label in zip(names, labels)]
        z.writestr("dataset.json", json.dumps({"labels": rows}))
    return path


def write_lmdb(path: Path, images: list[np.ndarray], corrupt: tuple[int, ...] = ()) -> tuple[Path, list[bytes]]:
    """An LSUN-style LMDB: 40-hex-digit keys -> JPEG or WebP bytes (garbage at `corrupt`). Returns path, values."""
    values = []
    env = lmdb.open(str(path), map_size=1 << 24)
    with env.begin(write=True) as txn:
        for i, img in enumerate(images):
            buf = io.BytesIO()
            PIL.Image.fromarray(img).save(buf, format="webp" if i % 2 else "jpeg", quality=95)
            values.append(b"\xff\xd8 broken jpeg" if i in corrupt else buf.getvalue())
            txn.put(f"{i * 7919:040x}".encode(), values[-1])
    env.close()
    return path, values


def chw(img: np.ndarray) -> np.ndarray:
    return (img[:, :, None] if img.ndim == 2 else img).transpose(2, 0, 1)


def center_crop_reference(encoded: bytes, resolution: int) -> np.ndarray:
    """Decode, crop the centred square by array slicing, resize with Lanczos: written apart from the library."""
    img = np.asarray(PIL.Image.open(io.BytesIO(encoded)).convert("RGB"))
    h, w = img.shape[:2]
    s = min(h, w)
    img = img[(h - s) // 2:(h + s) // 2, (w - s) // 2:(w + s) // 2]
    return np.asarray(PIL.Image.fromarray(img).resize((resolution, resolution), PIL.Image.LANCZOS)).transpose(2, 0, 1)


def striped_images(n: int) -> list[np.ndarray]:
    """Wide images: red side bars that a centre crop removes, a random centre that it keeps."""
    imgs = []
    for img in random_images(n, h=24, w=40, seed=3):
        img[:, :8] = img[:, -8:] = (255, 0, 0)
        img[:, 8:32, 0] //= 4
        imgs.append(img)
    return imgs


def decompression_bomb(size: int = 30000) -> bytes:
    """A PNG of a few hundred bytes announcing size x size greyscale pixels (900M at 30000), far over PIL's limit."""
    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    header = struct.pack(">IIBBBBB", size, size, 8, 0, 0, 0, 0)  # 8-bit greyscale
    rows = zlib.compress(b"\0" * (size + 1) * 16)  # the first 16 rows only
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", rows) + chunk(b"IEND", b"")
