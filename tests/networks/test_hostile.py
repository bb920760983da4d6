"""A corpus of hostile and malformed network files, built here: each is refused by one NetworkFileError line, fast
and with little memory, and nothing in it runs (payloads would touch a marker file). The valid variants of every
format (pickle protocols 0-5, zip and legacy torch.save files, a deflated zip) load."""

from __future__ import annotations

import collections
import copyreg
import gzip
import io
import os
import pickle
import struct
import sys
import time
import zipfile
from collections.abc import Callable
from contextlib import nullcontext
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest
import torch

from stylefuse.errors import NetworkFileError
from stylefuse.networks import load_network_pkl, save_network_snapshot
from stylefuse.nn import Discriminator, Generator
from tests.networks.reference import TRAINING_SET_KWARGS
from tests.networks.test_official import _nvidia_stand_ins, _official_style, _write_official_style_pickle
from tests.networks.test_snapshot import _lightning_checkpoint

_HASH_MODULUS = sys.hash_info.modulus  # integers that differ by a multiple of it have the same hash
TIME_LIMIT_S = 1.0        # CPU seconds to refuse a file
MEMORY_LIMIT_MB = 64      # growth of the peak resident memory while refusing it


@pytest.fixture(scope="module")
def small_nets() -> dict[str, torch.nn.Module]:
    """Tiny 8x8 networks: the corpus needs valid structure, not capacity."""
    torch.manual_seed(0)
    G_kwargs = dict(z_dim=8, c_dim=0, w_dim=8, img_resolution=8, img_channels=3,
                    mapping_kwargs=dict(num_layers=1), synthesis_kwargs=dict(channel_base=64, channel_max=8))
    D_kwargs = dict(c_dim=0, img_resolution=8, img_channels=3, channel_base=64, channel_max=8)
    return dict(G=Generator(**G_kwargs).eval(), D=Discriminator(**D_kwargs).eval(), G_ema=Generator(**G_kwargs).eval())


# ---------------------------------------------------------------------------------------------------------------------
# Ways to write a pickle that calls `module.name(*args)`.

def _protocol0_args(args: tuple) -> bytes:
    return pickle.dumps(tuple(args), protocol=0)[:-1]  # the tuple, without STOP


def _reduce_p0(module: str, name: str, *args) -> bytes:
    return f"c{module}\n{name}\n".encode() + _protocol0_args(args) + b"R."


def _inst(module: str, name: str, *args) -> bytes:
    return b"(" + b"".join(pickle.dumps(a, protocol=0)[:-1] for a in args) + f"i{module}\n{name}\n.".encode()


def _obj(module: str, name: str, *args) -> bytes:
    return f"(c{module}\n{name}\n".encode() + b"".join(pickle.dumps(a, protocol=0)[:-1] for a in args) + b"o."


def _newobj(module: str, name: str, *args) -> bytes:
    return b"\x80\x02" + f"c{module}\n{name}\n".encode() + pickle.dumps(tuple(args), protocol=2)[2:-1] + b"\x81."


def _newobj_ex(module: str, name: str, *args) -> bytes:
    def text(s: str) -> bytes:
        return b"\x8c" + bytes([len(s)]) + s.encode()
    body = text(module) + text(name) + b"\x93" + pickle.dumps(tuple(args), protocol=4)[11:-1] + b"}"
    return b"\x80\x04" + body + b"\x92."


class _Call:
    """Pickles as `fn(*args)`: how a malicious object hides a call in an ordinary pickle.dump."""

    def __init__(self, fn, *args):
        self.fn, self.args = fn, args

    def __reduce__(self):
        return self.fn, self.args


def _stack_global(fn, *args) -> bytes:  # protocol 4 writes globals as STACK_GLOBAL
    return pickle.dumps(_Call(fn, *args), protocol=4)


def _stack_global_raw(module: str, name: str, *args) -> bytes:
    """STACK_GLOBAL with any (e.g. dotted) name: protocol 4 resolves `OrderedDict.fromkeys` attribute by attribute."""
    def text(s: str) -> bytes:
        return b"\x8c" + bytes([len(s)]) + s.encode()
    return b"\x80\x04" + text(module) + text(name) + b"\x93" + pickle.dumps(tuple(args), protocol=4)[11:-1] + b"R."


def _ext_code(fn, *args) -> bytes:
    """A global written as a copyreg extension code (EXT1): what pickle emits for registered globals."""
    copyreg.add_extension(fn.__module__, fn.__name__, 0xF1)
    try:
        return pickle.dumps(_Call(fn, *args), protocol=2)
    finally:
        copyreg.remove_extension(fn.__module__, fn.__name__, 0xF1)


def _torch_zip(obj, **kwargs) -> bytes:
    buffer = io.BytesIO()
    torch.save(obj, buffer, **kwargs)
    return buffer.getvalue()


def _legacy_blob_storage(payload: bytes) -> bytes:
    """An official-style pickle whose tensor storage blob (`torch.storage._load_from_bytes`) is `payload`."""
    return (b"\x80\x02ctorch.storage\n_load_from_bytes\n" + pickle.dumps((payload,), protocol=2)[2:-1] + b"R.")


def _dag(levels: int) -> list:
    """A list whose full expansion has 2**levels leaves, pickled in a few bytes per level (memo references)."""
    node: list = []
    for _ in range(levels):
        node = [node, node]
    return node


def _dtype_state_with_flags(data: bytes, flags: int) -> bytes:
    """Rewrites the BUILD state (3, '<', None, None, None, -1, -1, 0) of every numpy dtype in a protocol 2 pickle
    so that its flags are `flags` (63 includes NPY_ITEM_HASOBJECT: numpy would read pointers)."""
    old = b"J\xff\xff\xff\xffJ\xff\xff\xff\xffK\x00"
    assert old in data
    return data.replace(old, b"J\xff\xff\xff\xffJ\xff\xff\xff\xffK" + bytes([flags]))


# ---------------------------------------------------------------------------------------------------------------------
# The corpus.

@dataclass
class Case:
    name: str
    build: Callable[..., bytes]        # (marker path, small nets) -> file contents
    expected: str                      # a fragment of the one-line message
    hostile: bool = False              # the message must call it hostile (never "damaged")
    builds: bool = False               # refused only after its (tiny) networks were built
    runs_with: str | None = None       # "pickle" or "torch": that loader would run the payload (canary test)


def _touch(marker: Path) -> tuple:
    return (f"touch {marker}",)


def _py_touch(marker: Path) -> str:
    return f"open({str(marker)!r}, 'w').close()"


def _official(nets, **overrides) -> bytes:
    """An official-style snapshot of `nets`, with `overrides` applied to the pickled data dict."""
    with _nvidia_stand_ins() as EasyDict:
        data = dict(training_set_kwargs=dict(TRAINING_SET_KWARGS), augment_pipe=None)
        for key in ("G", "D", "G_ema"):
            data[key] = _official_style(nets[key], "raise RuntimeError('module_src was executed')", EasyDict, {})
        for edit in overrides.values():
            edit(data)
        return pickle.dumps(data, protocol=4)


def _with_G_kwargs(**kwargs):
    def edit(data):
        for key in ("G", "G_ema"):
            data[key].meta["state"]["_init_kwargs"].update(kwargs)
    return dict(kwargs=edit)


def _with_synthesis_kwargs(**kwargs):
    def edit(data):
        for key in ("G", "G_ema"):
            data[key].meta["state"]["_init_kwargs"]["synthesis_kwargs"].update(kwargs)
    return dict(kwargs=edit)


def _with_G_param(name: str, value):
    def edit(data):  # (a copy: the pickled state shares its dicts with the fixture's modules)
        state = data["G"].meta["state"]["_modules"]["mapping"].meta["state"]["_modules"]["fc0"].meta["state"]
        state["_parameters"] = collections.OrderedDict(state["_parameters"], **{name: value})
    return dict(param=edit)


def _with_pipe_p(value):
    def edit(data):
        state = dict(training=False, _parameters={}, _modules={}, _buffers=collections.OrderedDict(p=value),
                     _init_args=(), _init_kwargs={})
        data["augment_pipe"] = type(data["G"])(dict(type="class", version=6, module_src="", class_name="AugmentPipe",
                                                    state=state))
    return dict(pipe=edit)


def _checkpoint(nets, hparams_edit=None, state_edit=None) -> bytes:
    hparams = dict(G_kwargs=nets["G"].init_kwargs, D_kwargs=nets["D"].init_kwargs, lr=0.002)
    ckpt = _lightning_checkpoint(nets, 0.25, hparams)
    if hparams_edit:
        hparams_edit(ckpt["hyper_parameters"])
    if state_edit:
        state_edit(ckpt["state_dict"])
    return _torch_zip(ckpt)


def _zip_rewrite(data: bytes, edit: Callable[[str, bytes], list[tuple[str, bytes]]]) -> bytes:
    """A torch.save zip with each member passed through `edit` (which may drop, change or duplicate it)."""
    out = io.BytesIO()
    with zipfile.ZipFile(io.BytesIO(data)) as src, zipfile.ZipFile(out, "w") as dst:
        for info in src.infolist():
            for name, content in edit(info.filename, src.read(info.filename)):
                dst.writestr(name, content)
    return out.getvalue()


def _snapshot_bytes(nets, folder: Path) -> bytes:
    path = folder / "snapshot.pt"
    save_network_snapshot(path, nets["G"], nets["D"], nets["G_ema"], 0.5, None, kimg=1)
    return path.read_bytes()


def _snapshot_edited(nets, marker: Path, edit) -> bytes:
    return _zip_rewrite(_snapshot_bytes(nets, marker.parent), edit)


def _duplicate_pickle(name: str, data: bytes) -> list[tuple[str, bytes]]:
    return [(name, data)] * (2 if name.endswith("data.pkl") else 1)


def _shorten_storage(name: str, data: bytes) -> list[tuple[str, bytes]]:
    return [(name, data[:-4] if name.endswith("/data/0") else data)]


def _drop_storage(name: str, data: bytes) -> list[tuple[str, bytes]]:
    return [] if name.endswith("/data/0") else [(name, data)]


def _junk_member(name: str, data: bytes) -> list[tuple[str, bytes]]:
    return [(f"junk/{os.urandom(4).hex()}", os.urandom(32))]


def _legacy_huge_storage() -> bytes:
    """A legacy torch.save file declaring a 2**40-element storage backed by 16 bytes (torch.load would allocate 4 TB
    before noticing)."""
    class Writer(pickle.Pickler):
        def persistent_id(self, obj):
            return ("storage", torch.FloatStorage, "k", "cpu", 2**40, None) if obj == "STORAGE" else None

    out = io.BytesIO()
    for value in (0x1950A86A20F9469CFC6C, 1001, dict(protocol_version=1001, little_endian=True)):
        pickle.dump(value, out, protocol=2)
    Writer(out, protocol=2).dump({"t": _Call(torch._utils._rebuild_tensor_v2, "STORAGE", 0, (4,), (1,), False,
                                             collections.OrderedDict())})
    pickle.dump(["k"], out, protocol=2)
    out.write(struct.pack("<q", 2**40) + b"\0" * 16)
    return out.getvalue()


# Each builder receives the marker path (in the test's folder) and the small networks.
CASES = [
    # --- Globals that run code, every way a pickle can name and call them.
    Case("reduce-os-system", lambda m, n: _reduce_p0("os", "system", *_touch(m)), "refers to os.system", True,
         runs_with="pickle"),
    Case("reduce-posix-system", lambda m, n: _reduce_p0("posix", "system", *_touch(m)), "refers to posix.system",
         True, runs_with="pickle"),
    Case("reduce-builtins-eval", lambda m, n: _reduce_p0("builtins", "eval", _py_touch(m)), "builtins.eval", True,
         runs_with="pickle"),
    Case("reduce-py2-builtin-exec", lambda m, n: _reduce_p0("__builtin__", "exec", _py_touch(m)), "builtins.exec",
         True, runs_with="pickle"),
    Case("inst-os-system", lambda m, n: _inst("os", "system", *_touch(m)), "os.system", True, runs_with="pickle"),
    Case("obj-os-system", lambda m, n: _obj("os", "system", *_touch(m)), "os.system", True, runs_with="pickle"),
    Case("newobj-popen", lambda m, n: _newobj("subprocess", "Popen", ["touch", str(m)]), "subprocess.Popen", True),
    Case("newobj-ex-popen", lambda m, n: _newobj_ex("subprocess", "Popen", ["touch", str(m)]), "subprocess.Popen",
         True),
    Case("stack-global-system", lambda m, n: _stack_global(os.system, *_touch(m)), f"{os.system.__module__}.system",
         True, runs_with="pickle"),
    Case("ext-code-system", lambda m, n: _ext_code(os.system, *_touch(m)), "pickle extension registry", True),
    Case("getattr-chain", lambda m, n: _reduce_p0("builtins", "getattr", "os", "system"), "builtins.getattr", True),
    Case("import-hook", lambda m, n: _reduce_p0("builtins", "__import__", "os"), "builtins.__import__", True),
    Case("dotted-name", lambda m, n: _stack_global_raw("collections", "OrderedDict.fromkeys", [1]),
         "collections.OrderedDict.fromkeys", True),
    Case("numpy-runstring", lambda m, n: _reduce_p0("numpy.testing._private.utils", "runstring", _py_touch(m), {}),
         "numpy.testing._private.utils.runstring", True, runs_with="pickle"),
    Case("numpy-load", lambda m, n: _reduce_p0("numpy", "load", "x.npy", None, True), "numpy.load", True),
    Case("torch-load", lambda m, n: _reduce_p0("torch", "load", "x.pt"), "torch.load", True),
    Case("torch-jit-load", lambda m, n: _reduce_p0("torch.jit", "load", "x.pt"), "torch.jit.load", True),
    Case("hidden-in-snapshot", lambda m, n: _official(n, evil=lambda d: d["training_set_kwargs"].update(
        path=_Call(os.system, *_touch(m)))), f"{os.system.__module__}.system", True, runs_with="pickle"),
    Case("hidden-in-storage-blob", lambda m, n: _legacy_blob_storage(
        pickle.dumps(_Call(os.system, *_touch(m)), protocol=2)), f"{os.system.__module__}.system", True),
    Case("reconstructor-popen", lambda m, n: b"ccopy_reg\n_reconstructor\n(csubprocess\nPopen\nc__builtin__\nobject\n"
         b"NtR.", "subprocess.Popen", True),
    Case("reconstructor-list", lambda m, n: b"ccopy_reg\n_reconstructor\n(cdnnlib.util\nEasyDict\nc__builtin__\nset\n"
         b"NtR.", "reconstructs", False),
    # --- BUILD / __setstate__ tricks: state set on allowed globals, stubs and containers.
    Case("build-on-global-class", lambda m, n: b"\x80\x02cdnnlib.util\nEasyDict\nN}X\x07\x00\x00\x00__new__K\x01s"
         b"\x86b.", "malformed"),
    Case("build-on-constructor", lambda m, n: b"\x80\x02c_codecs\nencode\n}X\x01\x00\x00\x00xK\x01sb.",
         "sets the state of a Constructor"),
    Case("build-on-tensor", lambda m, n: pickle.dumps(torch.zeros(2), protocol=2)[:-1]
         + b"(K\x00K\x00K\x00K\x00tb.", "sets the state"),
    Case("build-on-easydict", lambda m, n: b"\x80\x02cdnnlib.util\nEasyDict\n)\x81}X\x01\x00\x00\x00aK\x01sb.",
         "sets attributes on a dictionary"),
    # --- numpy: only numeric dtypes, whatever the BUILD state says.
    Case("numpy-object-dtype", lambda m, n: pickle.dumps({"x": np.dtype("O")}, protocol=2), "numpy object values"),
    Case("numpy-float-made-object", lambda m, n: _dtype_state_with_flags(pickle.dumps(np.float64(1.5), protocol=2),
                                                                          63), "(object references)"),
    Case("numpy-object-array", lambda m, n: pickle.dumps(np.array([1, "x"], dtype=object), protocol=2),
         "numpy object values"),
    Case("numpy-structured-dtype", lambda m, n: pickle.dumps(np.zeros(2, dtype=[("a", "f4")]), protocol=2),
         "numpy 'V4' values"),
    Case("numpy-scalar-short-bytes", lambda m, n: pickle.dumps(np.float64(1.5), protocol=3).replace(
        b"C\x08\x00\x00\x00\x00\x00\x00\xf8?", b"C\x04\x00\x00\xf8?"), "wrong number of bytes"),
    # --- torch rebuild helpers with odd arguments.
    Case("tensor-backward-hooks", lambda m, n: pickle.dumps(_Call(
        torch._utils._rebuild_tensor_v2, torch.zeros(2).storage(), 0, (2,), (1,), False,
        collections.OrderedDict({0: 1})), protocol=2), "backward hooks"),
    Case("tensor-out-of-bounds", lambda m, n: _official(n, big=lambda d: d.update(x=_Call(
        torch._utils._rebuild_tensor_v2, torch.zeros(2).storage(), 0, (10**6,), (1,), False,
        collections.OrderedDict()))), "reaches outside its storage"),
    Case("tensor-negative-stride", lambda m, n: _official(n, neg=lambda d: d.update(x=_Call(
        torch._utils._rebuild_tensor_v2, torch.zeros(4).storage(), 3, (2,), (-1,), False,
        collections.OrderedDict()))), "invalid offset, shape or stride"),
    Case("parameter-with-state", lambda m, n: _official(n, **_with_G_param("weight", _Call(
        torch._utils._rebuild_parameter_with_state, torch.zeros(8, 8), False, collections.OrderedDict(),
        {"__class__": 1}))), "extra state"),
    Case("parameter-from-int", lambda m, n: _official(n, **_with_G_param("weight", _Call(
        torch._utils._rebuild_parameter, 3, False, collections.OrderedDict()))), "not a tensor"),
    # --- Structure: exponential, cyclic, deep, long.
    Case("exponential-dag", lambda m, n: _official(n, **_with_G_kwargs(z_dim=_dag(40))), "more than 200000 values"),
    Case("exponential-dag-top", lambda m, n: pickle.dumps(_dag(60), protocol=2), "more than 200000 values"),
    Case("cyclic-list", lambda m, n: pickle.dumps((lambda x: (x.append(x), x)[1])([]), protocol=2), "contains itself"),
    Case("cyclic-kwargs", lambda m, n: _official(n, **_with_G_kwargs(
        mapping_kwargs=(lambda x: (x.update(me=x), x)[1])({}))), "contains itself"),
    Case("deep-nesting", lambda m, n: b"\x80\x02" + b"]" * 10000 + b"a" * 9999 + b".", "levels deep"),
    Case("many-opcodes", lambda m, n: b"\x80\x02]" + b"Na" * 300_000 + b".", "more than 250000 opcodes"),
    Case("colliding-int-keys", lambda m, n: pickle.dumps({i * _HASH_MODULUS: None for i in range(1, 50)}, protocol=2),
         "uses a int as a dictionary key"),
    Case("float-key", lambda m, n: pickle.dumps({1.5: 1}, protocol=2), "uses a float as a dictionary key"),
    Case("colliding-set", lambda m, n: _reduce_p0("builtins", "set", [_HASH_MODULUS, 2 * _HASH_MODULUS]),
         "as a dictionary key or set item"),
    Case("colliding-ordered-dict", lambda m, n: _reduce_p0("collections", "OrderedDict", [[_HASH_MODULUS, 1]]),
         "as a dictionary key or set item"),
    Case("colliding-easydict", lambda m, n: _reduce_p0("dnnlib.util", "EasyDict", [[_HASH_MODULUS, 1]]),
         "as a dictionary key or set item"),
    Case("builtins-dict-call", lambda m, n: _reduce_p0("builtins", "dict", [[1, 2]]), "not callable"),
    Case("huge-memo-index", lambda m, n: b"\x80\x02Nr" + struct.pack("<I", 2**31) + b".", "memo index 2147483648"),
    Case("huge-memo-index-p0", lambda m, n: b"Np2147483648\n.", "memo index 2147483648"),
    # --- Constructor kwargs outside what a StyleGAN2 can be (refused before anything is built).
    Case("w-dim-huge", lambda m, n: _official(n, **_with_G_kwargs(w_dim=2**22)), "w_dim is 4194304"),
    Case("mapping-200000-layers", lambda m, n: _official(n, **_with_G_kwargs(mapping_kwargs=dict(num_layers=200_000))),
         "mapping_kwargs.num_layers is 200000"),
    Case("resolution-huge", lambda m, n: _official(n, **_with_G_kwargs(img_resolution=2**20)), "img_resolution"),
    Case("resolution-odd", lambda m, n: _official(n, **_with_G_kwargs(img_resolution=48)), "a power of two"),
    Case("channels-huge", lambda m, n: _official(n, **_with_synthesis_kwargs(channel_max=2**20)), "channel_max"),
    Case("size-bound", lambda m, n: _official(n, **_with_G_kwargs(img_resolution=4096, w_dim=4096, synthesis_kwargs=(
        dict(channel_base=2**24, channel_max=4096)))), "would have up to"),
    Case("c-dim-huge", lambda m, n: _official(n, **_with_G_kwargs(c_dim=10**9)), "c_dim is 1000000000"),
    Case("z-dim-string", lambda m, n: _official(n, **_with_G_kwargs(z_dim="512")), "z_dim is '512'"),
    Case("z-dim-bigint", lambda m, n: _official(n, **_with_G_kwargs(z_dim=10**5000)), "an integer of"),
    Case("filter-huge", lambda m, n: _official(n, **_with_synthesis_kwargs(resample_filter=[1.0] * 10**4)),
         "resample_filter"),
    Case("positional-args", lambda m, n: _official(n, args=lambda d: d["G"].meta["state"].update(_init_args=(8,))),
         "positional constructor arguments"),
    Case("ckpt-w-dim-huge", lambda m, n: _checkpoint(n, lambda h: h.update(G_kwargs=dict(h["G_kwargs"], w_dim=2**22))),
         "w_dim is 4194304"),
    Case("ckpt-layers-huge", lambda m, n: _checkpoint(n, lambda h: h.update(D_kwargs=dict(
        h["D_kwargs"], mapping_kwargs=dict(num_layers=200_000)))), "num_layers is 200000"),
    # --- Malformed values.
    Case("int-weight", lambda m, n: _official(n, **_with_G_param("weight", 3)), "is a int, not a tensor"),
    Case("long-weight", lambda m, n: _official(n, **_with_G_param("weight", torch.zeros(8, 8, dtype=torch.long))),
         "not floating-point"),
    Case("augment-p-two-values", lambda m, n: _official(n, **_with_pipe_p(torch.tensor([0.1, 0.2]))),
         "a tensor of 2 values", builds=True),
    Case("augment-p-out-of-range", lambda m, n: _official(n, **_with_pipe_p(torch.tensor(5.0))), "not one number",
         builds=True),
    Case("ckpt-p-two-values", lambda m, n: _checkpoint(n, state_edit=lambda s: s.update(
        {"augment_pipe.p": torch.tensor([0.1, 0.2])})), "a tensor of 2 values", builds=True),
    Case("ckpt-weight-shape", lambda m, n: _checkpoint(n, state_edit=lambda s: s.update(
        {"G.mapping.fc0.weight": torch.zeros(3)})), "wrong shape", builds=True),
    Case("training-set-kwargs-list", lambda m, n: _official(n, t=lambda d: d.update(training_set_kwargs=[1])),
         "training_set_kwargs is a list", builds=True),
    Case("list-not-dict", lambda m, n: pickle.dumps([1, 2, 3]), "holds a list"),
    Case("dict-without-networks", lambda m, n: pickle.dumps(dict(G=1, D=2, G_ema=3)), "no StyleGAN2-ADA network 'G'"),
    Case("persistent-id-in-pickle", lambda m, n: b"\x80\x02X\x01\x00\x00\x00xQ.", "storage references outside"),
    Case("out-of-band-buffer", lambda m, n: pickle.dumps(pickle.PickleBuffer(b"abc"), protocol=5,
                                                        buffer_callback=lambda b: False), "out-of-band"),
    # --- torch.save files.
    Case("zip-hostile-global", lambda m, n: _torch_zip(_Call(os.system, *_touch(m))), f"{os.system.__module__}.system",
         True, runs_with="torch"),
    Case("zip-hostile-exec", lambda m, n: _torch_zip({"x": _Call(exec, _py_touch(m))}), "builtins.exec", True,
         runs_with="torch"),
    Case("zip-duplicate-members", lambda m, n: _snapshot_edited(n, m, _duplicate_pickle),
         "two members of the same name"),
    Case("zip-storage-short", lambda m, n: _snapshot_edited(n, m, _shorten_storage), "wrong size"),
    Case("zip-storage-missing", lambda m, n: _snapshot_edited(n, m, _drop_storage), "missing from the archive"),
    Case("zip-junk", lambda m, n: _snapshot_edited(n, m, _junk_member), "not a torch.save file"),
    Case("zip-truncated", lambda m, n: _snapshot_bytes(n, m.parent)[:3000], "truncated or damaged zip"),
    Case("zip-plain-tensor", lambda m, n: _torch_zip(torch.zeros(3)), "neither a stylefuse snapshot"),
    Case("legacy-hostile", lambda m, n: _torch_zip(_Call(os.system, *_touch(m)), _use_new_zipfile_serialization=False),
         f"{os.system.__module__}.system", True, runs_with="torch"),
    Case("legacy-huge-storage", lambda m, n: _legacy_huge_storage(), "ends inside its tensor data"),
    Case("legacy-truncated", lambda m, n: _torch_zip({"a": torch.zeros(1000)}, _use_new_zipfile_serialization=False)[
        :-100], "ends inside its tensor data"),
    # --- Truncated and foreign files.
    Case("pickle-truncated", lambda m, n: _official(n)[:2000], "truncated"),
    Case("empty", lambda m, n: b"", "empty"),
    Case("png", lambda m, n: b"\x89PNG\r\n\x1a\n" + os.urandom(200), "not a network file (it is a PNG image)"),
    Case("jpeg", lambda m, n: b"\xff\xd8\xff\xe0" + os.urandom(200), "a JPEG image"),
    Case("html", lambda m, n: b"\n<!DOCTYPE html><html><body>Sign in</body></html>", "an HTML page"),
    Case("gzip", lambda m, n: gzip.compress(pickle.dumps([1])), "gzip-compressed"),
    Case("npy", lambda m, n: (lambda b: (np.save(b, np.zeros(3)), b.getvalue())[1])(io.BytesIO()), "numpy .npy"),
    Case("json", lambda m, n: b'{"G": 1}', "JSON or text"),
    Case("random", lambda m, n: b"\x07" + os.urandom(500), "neither a pickle nor a torch.save archive"),
    Case("junk-after-proto", lambda m, n: b"\x80\x04\x95 not really a pickle", "pickle"),
]


def _memory_kb(field: str) -> int:
    with open("/proc/self/status") as status:
        return next(int(line.split()[1]) for line in status if line.startswith(field + ":"))


def _load_measured(path: Path) -> tuple[NetworkFileError, float, float]:
    """The error, the CPU seconds and the growth of the peak resident memory (MB) of refusing `path`."""
    with open("/proc/self/clear_refs", "w") as clear:
        clear.write("5")  # resets the peak (VmHWM) to the current resident size
    before = _memory_kb("VmRSS")
    start = time.process_time()
    with pytest.raises(NetworkFileError) as err:
        load_network_pkl(path)
    return err.value, time.process_time() - start, (_memory_kb("VmHWM") - before) / 1024


def _forbid_building(monkeypatch) -> None:
    def refuse(self, *args, **kwargs):
        raise AssertionError("a network was built from a file that should have been refused first")
    monkeypatch.setattr(Generator, "__init__", refuse)
    monkeypatch.setattr(Discriminator, "__init__", refuse)


@pytest.mark.filterwarnings("ignore:TypedStorage is deprecated", "ignore:Duplicate name")
@pytest.mark.parametrize("case", CASES, ids=[case.name for case in CASES])
def test_corpus_file_is_refused_in_one_line(tmp_path, small_nets, monkeypatch, case):
    marker = tmp_path / "marker"
    path = tmp_path / f"{case.name}.pkl"
    path.write_bytes(case.build(marker, small_nets))
    if not case.builds:
        _forbid_building(monkeypatch)

    err, cpu_s, memory_mb = _load_measured(path)

    message = str(err)
    assert "\n" not in message and str(path) in message and case.expected in message, message
    assert "weights_only" not in message
    if case.hostile:
        assert "which a network file never needs; refusing to run it" in message and "damaged" not in message
    assert cpu_s < TIME_LIMIT_S, f"{case.name}: refused after {cpu_s:.2f} CPU s"
    assert memory_mb < MEMORY_LIMIT_MB, f"{case.name}: {memory_mb:.0f} MB allocated while refusing"
    time.sleep(0.05 if "popen" in case.name else 0)  # a started process would have touched the marker by now
    assert not marker.exists()


@pytest.mark.parametrize("case", [c for c in CASES if c.runs_with], ids=[c.name for c in CASES if c.runs_with])
def test_corpus_payloads_are_live(tmp_path, small_nets, case):
    """The canary: the unrestricted loaders would have run these payloads (so refusing them proves something)."""
    marker = tmp_path / "marker"
    data = case.build(marker, small_nets)
    if case.runs_with == "pickle":
        with _nvidia_stand_ins(), pytest.raises(Exception) if case.name == "hidden-in-snapshot" else nullcontext():
            pickle.loads(data)  # (the stand-in persistent loader raises once the hidden call has run)
    else:
        torch.load(io.BytesIO(data), weights_only=False)
    assert marker.exists()


# ---------------------------------------------------------------------------------------------------------------------
# The valid variants of every format load, bit for bit.

def _assert_loads_as(path: Path, nets: dict) -> None:
    loaded = load_network_pkl(path)
    for key in ("G", "D", "G_ema"):
        expected = nets[key].state_dict()
        assert list(loaded[key].state_dict()) == list(expected)
        assert all(torch.equal(t, expected[k]) for k, t in loaded[key].state_dict().items())


@pytest.mark.parametrize("protocol", range(6))
def test_official_pickle_loads_at_every_protocol(tmp_path, small_nets, protocol):
    path = tmp_path / f"p{protocol}.pkl"
    _write_official_style_pickle(path, small_nets, protocol=protocol)
    _assert_loads_as(path, small_nets)
    assert load_network_pkl(path)["augment_p"] == 0.25


@pytest.mark.parametrize("variant", ["zip-p2", "zip-p4", "zip-p5", "legacy-p2", "legacy-p4", "deflated"])
def test_torch_files_load_in_every_container(tmp_path, small_nets, variant):
    snapshot = tmp_path / "snapshot.pt"
    save_network_snapshot(snapshot, small_nets["G"], small_nets["D"], small_nets["G_ema"], 0.5, None, kimg=1)
    data = torch.load(snapshot, weights_only=True)
    path = tmp_path / f"{variant}.pt"
    if variant == "deflated":
        path.write_bytes(_zip_rewrite(snapshot.read_bytes(), lambda name, content: [(name, content)]))
        with zipfile.ZipFile(snapshot) as src, zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as dst:
            for info in src.infolist():
                dst.writestr(info.filename, src.read(info.filename))
        assert all(i.compress_type == zipfile.ZIP_DEFLATED for i in zipfile.ZipFile(path).infolist())
    else:
        container, protocol = variant.split("-p")
        torch.save(data, path, pickle_protocol=int(protocol), _use_new_zipfile_serialization=container == "zip")
    _assert_loads_as(path, small_nets)
    assert load_network_pkl(path)["augment_p"] == 0.5


def test_shared_storages_stay_shared(tmp_path, small_nets):
    """Tensors viewing one storage (a legacy file's views, a zip's shared storage) load as views of one buffer."""
    base = torch.arange(6.0)
    path = tmp_path / "views.pt"
    for legacy in (False, True):
        torch.save({"a": base[:3], "b": base[2:]}, path, _use_new_zipfile_serialization=not legacy)
        from stylefuse.networks.snapshot import read_torch_file
        from stylefuse.networks.sniff import sniff
        data = read_torch_file(path, str(path), sniff(path, str(path)))
        assert data["a"].tolist() == [0, 1, 2] and data["b"].tolist() == [2, 3, 4, 5]
        assert data["a"].untyped_storage().data_ptr() == data["b"].untyped_storage().data_ptr()
