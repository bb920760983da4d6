"""torch.save files read without torch.load: the zip archive format and the legacy pickle-sequence format.

The archive's pickle goes through the restricted unpickler (`unpickler`) with the globals a torch.save file of
tensors and plain values needs; storages are read as raw numbers of their declared dtype and size, after checking
that the file holds that many bytes. What is checked is exactly what is loaded: there is no second reader.
"""

from __future__ import annotations

import io
import mmap
import struct
import zipfile
import zlib
from pathlib import Path
from typing import Any

import torch

from stylefuse.errors import NetworkFileError
from stylefuse.networks.unpickler import (
    PLAIN_GLOBALS,
    STORAGE_TYPES,
    TORCH_TENSOR_GLOBALS,
    Budget,
    StorageStub,
    StorageType,
    malformed,
    materialize,
    unpickle,
)

# Globals of a torch.save file of tensors and plain values (state dicts, checkpoints, stylefuse snapshots).
TORCH_GLOBALS: dict[tuple[str, str], Any] = {
    **PLAIN_GLOBALS, **TORCH_TENSOR_GLOBALS, **{("torch", name): kind for name, kind in STORAGE_TYPES.items()}}

LEGACY_MAGIC = 0x1950A86A20F9469CFC6C  # first pickle of a legacy torch.save file
LEGACY_PROTOCOL = 1001
MAX_ARCHIVE_BYTES = 16 << 30   # uncompressed size of a zip archive (a 1024x1024 training checkpoint is ~1 GB)
MAX_ARCHIVE_MEMBERS = 65_536   # a checkpoint has one member per tensor (a few thousand)
MAX_PICKLE_BYTES = 256 << 20   # the archive's data.pkl (tensors are separate members; a checkpoint's is ~1 MB)


def _element_size(dtype: torch.dtype) -> int:
    return torch.empty((), dtype=dtype).element_size()


def _flat(buffer: bytearray, dtype: torch.dtype, numel: int) -> torch.Tensor:
    return torch.frombuffer(buffer, dtype=dtype, count=numel) if numel else torch.empty(0, dtype=dtype)


def _storage_pid(pid: Any, budget: Budget, legacy: bool) -> tuple[torch.dtype, Any, int, Any]:
    """(dtype, key, numel, view) of a `('storage', type, key, location, numel[, view])` persistent id."""
    length = 6 if legacy else 5
    if not (type(pid) is tuple and len(pid) == length and pid[0] == "storage" and isinstance(pid[1], StorageType)
            and type(pid[2]) in (str, int) and isinstance(pid[3], str) and type(pid[4]) is int and pid[4] >= 0):
        raise malformed(budget.display_name, "a persistent reference in the torch.save pickle is not a plain "
                                             "storage; the file is damaged or not a network file")
    return pid[1].dtype, pid[2], pid[4], pid[5] if legacy else None


def _zip_member_count(mm: mmap.mmap) -> int:
    """The number of members the zip's end-of-central-directory record(s) declare (read before zipfile parses the
    whole directory)."""
    end = mm.rfind(b"PK\x05\x06", max(0, len(mm) - (22 + 65_535)))
    if end < 0:
        return -1
    count = struct.unpack_from("<H", mm, end + 10)[0]
    locator = end - 20
    if locator >= 0 and mm[locator:locator + 4] == b"PK\x06\x07":  # zip64: the count is in the zip64 record
        offset = struct.unpack_from("<Q", mm, locator + 8)[0]
        if offset + 56 <= len(mm) and mm[offset:offset + 4] == b"PK\x06\x06":
            count = max(count, struct.unpack_from("<Q", mm, offset + 32)[0])
    return count


def open_zip(file: Any, name: str) -> zipfile.ZipFile:
    """The zip archive of an open torch.save file, once its directory is found whole and of a bounded size."""
    with mmap.mmap(file.fileno(), 0, access=mmap.ACCESS_READ) as mm:
        count = _zip_member_count(mm)
    if count < 0:
        raise malformed(name, "it is a truncated or damaged zip archive (a torch.save file whose end is missing: "
                              "download or copy it again)")
    if count > MAX_ARCHIVE_MEMBERS:
        raise malformed(name, f"its zip archive declares {count} members, more than any torch.save network file "
                              f"({MAX_ARCHIVE_MEMBERS}); refusing to load it")
    try:
        return zipfile.ZipFile(file)
    except (zipfile.BadZipFile, OSError, ValueError, EOFError, struct.error) as err:
        raise malformed(name, f"it is a damaged zip archive ({err}); download or copy it again") from err


def read_zip(path: Path, budget: Budget) -> Any:
    """The materialized object of a zip-format torch.save file."""
    with open(path, "rb") as file, open_zip(file, budget.display_name) as archive:
        return _read_archive(archive, budget)


def _read_archive(archive: zipfile.ZipFile, budget: Budget) -> Any:
    name = budget.display_name
    infos = archive.infolist()
    names = [info.filename for info in infos]
    if len(set(names)) != len(names):  # two members of one name: readers could disagree on which one is meant
        raise malformed(name, "its zip archive holds two members of the same name; it is damaged or was tampered "
                              "with")
    pickles = [n for n in names if n.count("/") == 1 and n.endswith("/data.pkl")]
    if len(pickles) != 1:
        raise malformed(name, "it is a zip archive but not a torch.save file (no data.pkl inside); it is not a "
                              "network file")
    root = pickles[0][: -len("/data.pkl")]
    if sum(info.file_size for info in infos) > MAX_ARCHIVE_BYTES:
        raise malformed(name, f"its zip archive unpacks to more than {MAX_ARCHIVE_BYTES >> 30} GiB, more than any "
                              f"network file; refusing to load it")
    byteorder = f"{root}/byteorder"
    if byteorder in names and archive.read(byteorder) not in (b"little", b"little\n"):
        raise malformed(name, "it stores big-endian tensors, which stylefuse does not read; re-save it on a "
                              "little-endian machine")
    members = {info.filename: info for info in infos}
    storages: dict[Any, StorageStub] = {}

    def persistent_load(pid: Any) -> StorageStub:
        dtype, key, numel, _ = _storage_pid(pid, budget, legacy=False)
        if key in storages:
            return storages[key]
        info = members.get(f"{root}/data/{key}")
        nbytes = numel * _element_size(dtype)
        if info is None or info.file_size != nbytes:
            raise malformed(name, f"storage {key} is missing from the archive or has the wrong size; the file is "
                                  f"damaged")

        def load() -> torch.Tensor:
            buffer = bytearray(nbytes)
            with archive.open(info) as member:
                if member.readinto(buffer) != nbytes:
                    raise malformed(name, f"storage {key} ends early; the file is damaged")
            return _flat(buffer, dtype, numel)

        storages[key] = StorageStub(dtype, numel, load)
        return storages[key]

    if members[pickles[0]].file_size > MAX_PICKLE_BYTES:
        raise malformed(name, f"its data.pkl is larger than {MAX_PICKLE_BYTES >> 20} MiB, more than any network "
                              f"file's; refusing to load it")
    try:
        obj = unpickle(io.BytesIO(archive.read(pickles[0])), budget, TORCH_GLOBALS, persistent_load)
        return materialize(obj, budget)
    except NetworkFileError:
        raise
    except (zipfile.BadZipFile, zlib.error, OSError, EOFError, ValueError) as err:  # bad CRC, bad deflate stream
        raise malformed(name, f"its zip archive is damaged ({err}); download or copy it again") from err


def read_legacy(stream: Any, budget: Budget) -> Any:
    """The object of a legacy-format torch.save file (a sequence of pickles, then raw storages) at the stream's
    position, with its storages loaded but not yet materialized."""
    name = budget.display_name
    if unpickle(stream, budget, {}) != LEGACY_MAGIC or unpickle(stream, budget, {}) != LEGACY_PROTOCOL:
        raise malformed(name, "it starts like a legacy torch.save file but is not one; it is damaged")
    sys_info = unpickle(stream, budget, {})
    if not (isinstance(sys_info, dict) and sys_info.get("little_endian", True) is True):
        raise malformed(name, "it stores big-endian tensors, which stylefuse does not read")
    roots: dict[Any, StorageStub] = {}
    views: dict[Any, StorageStub] = {}

    def persistent_load(pid: Any) -> StorageStub:
        dtype, key, numel, view = _storage_pid(pid, budget, legacy=True)
        root = roots.get(key)
        if root is None:
            root = roots[key] = StorageStub(dtype, numel, _unread(name, key))
        if root.dtype != dtype or root.numel != numel:
            raise malformed(name, f"storage {key} is declared twice with different types; the file is damaged")
        if view is None:
            return root
        if not (type(view) is tuple and len(view) == 3 and type(view[1]) is int and type(view[2]) is int
                and 0 <= view[1] and view[1] + view[2] <= numel and view[2] >= 0):
            raise malformed(name, "a storage view in the legacy torch.save file is out of range; it is damaged")
        view_key, offset, size = view
        if view_key not in views:
            views[view_key] = StorageStub(dtype, size, lambda: root.data()[offset:offset + size])
        return views[view_key]

    result = unpickle(stream, budget, TORCH_GLOBALS, persistent_load)
    keys = unpickle(stream, budget, {})
    if not (type(keys) is list and set(keys) == set(roots) and len(keys) == len(roots)):
        raise malformed(name, "the storage list of the legacy torch.save file does not match its tensors; it is "
                              "damaged")
    for key in keys:
        root = roots[key]
        nbytes = root.numel * _element_size(root.dtype)
        header = stream.read(8)
        if len(header) != 8 or struct.unpack("<q", header)[0] != root.numel:
            raise malformed(name, f"storage {key} has a wrong size header or the file ends early (truncated: "
                                  f"download or copy it again)")
        buffer = bytearray(stream.read(nbytes))
        if len(buffer) != nbytes:
            raise malformed(name, "the file ends inside its tensor data (truncated: download or copy it again)")
        root._data = _flat(buffer, root.dtype, root.numel)
    return result


def _unread(name: str, key: Any):
    def load() -> torch.Tensor:
        raise malformed(name, f"storage {key} has no data in the file; it is damaged")
    return load


def read_legacy_file(path: Path, budget: Budget) -> Any:
    """The materialized object of a legacy-format torch.save file."""
    with open(path, "rb") as file, mmap.mmap(file.fileno(), 0, access=mmap.ACCESS_READ) as mm:
        return materialize(read_legacy(mm, budget), budget)
