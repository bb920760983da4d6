"""What a file is, from its first bytes: one of the network formats stylefuse reads, or a name for the file it is
instead (so that a wrong file is "not a network file (it is a PNG image)", not a parse error)."""

from __future__ import annotations

import io
import mmap
import pickletools
from pathlib import Path

from stylefuse.networks.torchfile import LEGACY_MAGIC, open_zip, read_legacy_file
from stylefuse.networks.unpickler import Budget, RestrictedUnpickler, malformed, scan

HEAD_BYTES = 512

ZIP, TORCH_LEGACY, PICKLE = "zip", "torch-legacy", "pickle"

# Opcodes a protocol 0-1 pickle can start with (protocol 2+ pickles start with PROTO).
_PICKLE_STARTS = {op.code.encode("latin1") for op in pickletools.opcodes if op.proto <= 1} - {b".", b"0", b"1", b"2"}

_SIGNATURES = [
    (b"\x89PNG\r\n\x1a\n", "a PNG image"),
    (b"\xff\xd8\xff", "a JPEG image"),
    (b"GIF87a", "a GIF image"),
    (b"GIF89a", "a GIF image"),
    (b"%PDF", "a PDF document"),
    (b"\x1f\x8b", "a gzip-compressed file: decompress it first (gunzip)"),
    (b"BZh", "a bzip2-compressed file: decompress it first (bunzip2)"),
    (b"\xfd7zXZ\x00", "an xz-compressed file: decompress it first (unxz)"),
    (b"7z\xbc\xaf\x27\x1c", "a 7-Zip archive: unpack it first"),
    (b"Rar!", "a RAR archive: unpack it first"),
    (b"\x89HDF\r\n\x1a\n", "an HDF5 file (a Keras or TensorFlow 2 model?)"),
    (b"\x93NUMPY", "a numpy .npy array"),
]


def _describe_foreign(head: bytes) -> str | None:
    for signature, description in _SIGNATURES:
        if head.startswith(signature):
            return description
    if head[:4] == b"RIFF" and head[8:12] == b"WEBP":
        return "a WebP image"
    if head[4:8] == b"ftyp":
        return "an MP4/MOV video"
    if head[257:262] == b"ustar":
        return "a tar archive (torch.save files of PyTorch before 1.0 are tar archives; re-save it with a newer torch)"
    text = head.lstrip().lower()
    if text.startswith((b"<!doctype html", b"<html", b"<head", b"<!--", b"<?xml", b"<body")):
        return "an HTML page: the link probably led to a web page (a login, error or download page) instead of the file"
    if len(head) >= 10 and head[8:10] == b'{"' and int.from_bytes(head[:8], "little") < 1 << 30:
        return "a safetensors file (stylefuse reads StyleGAN2 pickles, stylefuse snapshots and checkpoints)"
    if text.startswith((b"{", b"[")):
        return "a JSON or text file"
    return None


def _starts_with_legacy_magic(head: bytes) -> bool:
    """A legacy torch.save file (any pickle protocol) starts with a small pickle of its magic number."""
    try:
        scan(io.BytesIO(head), Budget(""), persistent=False)  # (bounds what unpickling the head may allocate)
        return RestrictedUnpickler(io.BytesIO(head), "", {}).load() == LEGACY_MAGIC
    except Exception:  # the first pickle is longer than the head, or is not a plain number
        return False


def sniff(path: Path, display_name: str) -> str:
    """ZIP, TORCH_LEGACY or PICKLE; anything else is refused with what the file is instead."""
    with open(path, "rb") as file:
        head = file.read(HEAD_BYTES)
    if not head:
        raise malformed(display_name, "it is empty (0 bytes); download or copy it again")
    if head.startswith((b"PK\x03\x04", b"PK\x05\x06")):
        return ZIP
    foreign = _describe_foreign(head)
    if foreign is not None:
        raise malformed(display_name, f"not a network file (it is {foreign})")
    if (head[0] == 0x80 and len(head) > 1 and head[1] <= 5) or head[:1] in _PICKLE_STARTS:
        return TORCH_LEGACY if _starts_with_legacy_magic(head) else PICKLE
    raise malformed(display_name, "not a network file (its first bytes are neither a pickle nor a torch.save "
                                  "archive)")


def check_complete(path: Path, display_name: str, kind: str) -> None:
    """Refuses a file of `kind` that is cut off: a pickle must reach its end, a zip archive must have its directory
    (at the end of the file), a legacy torch.save file all its tensor data."""
    budget = Budget(display_name)
    if kind == PICKLE:
        with open(path, "rb") as file, mmap.mmap(file.fileno(), 0, access=mmap.ACCESS_READ) as mm:
            scan(mm, budget, persistent=False)
    elif kind == ZIP:
        with open(path, "rb") as file:
            open_zip(file, display_name).close()
    else:
        read_legacy_file(path, budget)
