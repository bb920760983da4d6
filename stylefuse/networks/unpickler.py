"""The one way stylefuse reads a pickle from a network file: scanned, restricted, bounded, then validated.

Every pickle of every network format (official snapshots, TensorFlow-era networks, the `data.pkl` of a torch.save
archive, the storage blobs inside official snapshots) goes through three steps:

1. `scan`: the opcode stream is walked without building anything (`pickletools.genops`). A stream that is
   truncated, longer than `MAX_OPCODES` opcodes (each opcode makes at most one object, so this bounds memory and
   time before anything exists), uses pickle extension codes or out-of-band buffers, or persistent references where
   the format has none, is refused here.
2. `RestrictedUnpickler`: resolves only the globals of the format's allowlist. Each maps to plain data or to an inert
   stub (`Stub`): tensors, storages, numpy dtypes and arrays stay descriptions until step 3, so BUILD/`__setstate__`
   tricks cannot touch a real object (a BUILD on a stub or on an allowed global is refused).
3. `materialize`: walks the result once, counting every visit (`MAX_NODES`, so an exponential DAG of shared memo
   references is refused after a bounded walk), refusing cycles and nesting deeper than `MAX_DEPTH`, and turns stubs
   into checked tensors/arrays. The result holds only dicts, lists, tuples, sets, None, bools, ints, floats, strings,
   bytes, tensors, numpy arrays and the format's own finished objects.
"""

from __future__ import annotations

import collections
import contextlib
import math
import pickle
import pickletools
import re
from collections.abc import Callable, Iterator, Mapping
from typing import Any

import numpy as np
import torch

from stylefuse.errors import NetworkFileError

# An official StyleGAN2-ADA snapshot at 1024x1024 (G, D, G_ema, augment pipe, one storage blob per tensor) is ~60k
# opcodes and ~20k values; a Lightning checkpoint of the training module far fewer. The limits leave a wide margin
# and are reached in well under a second by the scan and the walk.
MAX_OPCODES = 250_000
MAX_NODES = 200_000
MAX_DEPTH = 64

_NUMPY_DTYPE_CODE = re.compile(r"[fiub][1248]")  # numeric numpy dtypes as numpy pickles them: 'f4', 'i8', 'b1', ...
_MAX_TENSOR_DIMS = 8


class Refused(Exception):
    """Raised by stubs and checked constructors while a pickle is read: the cause, in words; `unpickle` and
    `materialize` turn it into a NetworkFileError naming the file."""


def hostile(display_name: str, what: str) -> NetworkFileError:
    """The refusal of content that only an attack needs: named as such, never as damage, never with a way around."""
    return NetworkFileError(f"{display_name} refers to {what}, which a network file never needs; refusing to run it "
                            f"(the file may be malicious: use network files from sources you trust)")


def malformed(display_name: str, cause: str) -> NetworkFileError:
    return NetworkFileError(f"cannot read {display_name}: {cause}")


@contextlib.contextmanager
def reading(display_name: str) -> Iterator[None]:
    """Whatever a strange file provokes while it is read is one NetworkFileError line about that file."""
    try:
        yield
    except NetworkFileError:
        raise
    except OSError as err:  # unreadable: permissions, a folder, an I/O error
        raise NetworkFileError(f"cannot read {display_name} ({err.strerror or first_line(err)}); check the path and "
                               f"its permissions") from err
    except Exception as err:
        raise NetworkFileError(f"cannot read {display_name} ({type(err).__name__}: {first_line(err)}); the file is "
                               f"damaged or not a network file") from err


class Budget:
    """What one network file may spend, shared by all the pickles inside it (an official snapshot holds one storage
    blob per tensor, a torch.save file a main pickle and its storages)."""

    def __init__(self, display_name: str):
        self.display_name = display_name
        self.opcodes = MAX_OPCODES
        self.nodes = MAX_NODES

    def spend_opcodes(self, count: int) -> None:
        self.opcodes -= count
        if self.opcodes < 0:
            raise NetworkFileError(f"{self.display_name} holds a pickle of more than {MAX_OPCODES} opcodes, more "
                                   f"than any StyleGAN2 network file; refusing to load it")

    def too_many_nodes(self) -> NetworkFileError:
        return NetworkFileError(f"{self.display_name} holds more than {MAX_NODES} values (counting every shared "
                                f"reference), more than any StyleGAN2 network file; refusing to load it")


# ---------------------------------------------------------------------------------------------------------------------
# 1. The opcode scan.

_EXTENSION_OPCODES = {"EXT1", "EXT2", "EXT4"}  # globals named by copyreg extension codes
_BUFFER_OPCODES = {"NEXT_BUFFER", "READONLY_BUFFER"}  # protocol 5 out-of-band data, never inside the file
_PERSISTENT_OPCODES = {"PERSID", "BINPERSID"}
_MEMO_OPCODES = {"PUT", "BINPUT", "LONG_BINPUT"}  # the unpickler sizes its memo by the largest index it is given


def scan(stream: Any, budget: Budget, persistent: bool) -> None:
    """Walks one pickle from the stream's position to its STOP opcode without building anything; leaves the stream
    where it was. `persistent`: the format has persistent references (torch.save archives)."""
    start = stream.tell()
    count = 0
    try:
        for opcode, arg, _ in pickletools.genops(stream):
            count += 1
            if count % 4096 == 0:
                budget.spend_opcodes(4096)
            if opcode.name in _EXTENSION_OPCODES:
                raise hostile(budget.display_name, "the pickle extension registry (copyreg extension codes)")
            if opcode.name in _BUFFER_OPCODES:
                raise malformed(budget.display_name, "the pickle uses out-of-band buffers that are not in the file; "
                                                     "it is not a network file")
            if opcode.name in _MEMO_OPCODES and not (type(arg) is int and 0 <= arg < count):
                # A pickler numbers memo entries 0, 1, 2, ...; a huge index would make the unpickler allocate
                # (and zero) a memo table of that size before anything else happens.
                raise malformed(budget.display_name, f"the pickle stores a value at memo index {arg} after only "
                                                     f"{count} opcodes; it is damaged or crafted")
            if opcode.name in _PERSISTENT_OPCODES and not persistent:
                raise malformed(budget.display_name, "the pickle holds torch.save storage references outside a "
                                                     "torch.save archive; it is damaged or not a network file")
    except NetworkFileError:
        raise
    except Exception as err:  # pickletools reports truncation and junk as ValueError
        text = str(err)
        if "exhausted" in text or "remain" in text:
            cause = "it ends in the middle of its pickle (truncated: download or copy it again)"
        elif count == 0:
            cause = "it is not a network file (its first bytes are neither a pickle nor a torch.save archive)"
        else:
            cause = f"its pickle is corrupt after {count} opcodes ({first_line(err)}); it is damaged"
        raise malformed(budget.display_name, cause) from err
    budget.spend_opcodes(count % 4096)
    stream.seek(start)


# ---------------------------------------------------------------------------------------------------------------------
# 2. Stubs and the restricted unpickler.

class Stub:
    """An inert description made while unpickling; `materialize` checks it and builds the real object. A BUILD
    opcode on a stub is refused (subclasses that expect exactly one BUILD override `__setstate__`)."""

    __slots__ = ()

    def __setstate__(self, state: Any) -> None:
        raise Refused(f"the pickle sets the state of a {type(self).__name__}, which a network file never "
                      f"does; refusing to load it")

    def parts(self) -> Any:
        """The raw contents `materialize` walks (and counts) before `build` sees them."""
        return ()

    def build(self, parts: Any, display_name: str) -> Any:
        raise NetworkFileError(f"{display_name} holds a bare {type(self).__name__}, not network data; it is not a "
                               f"network file")


class Constructor(Stub):
    """An allowed global that builds something: a checked function in place of the real one (a BUILD on it, which
    would set attributes of a global, is refused like on any stub)."""

    __slots__ = ("fn", "name")

    def __init__(self, name: str, fn: Callable[..., Any]):
        self.name = name
        self.fn = fn

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        return self.fn(*args, **kwargs)


class StorageType(Stub):
    """`torch.FloatStorage` & co. in a torch.save file: only names the dtype of a storage."""

    __slots__ = ("dtype",)

    def __init__(self, dtype: torch.dtype):
        self.dtype = dtype


STORAGE_TYPES = {name: StorageType(dtype) for name, dtype in [
    ("FloatStorage", torch.float32), ("DoubleStorage", torch.float64), ("HalfStorage", torch.float16),
    ("BFloat16Storage", torch.bfloat16), ("ByteStorage", torch.uint8), ("CharStorage", torch.int8),
    ("ShortStorage", torch.int16), ("IntStorage", torch.int32), ("LongStorage", torch.int64),
    ("BoolStorage", torch.bool)]}


class StorageStub(Stub):
    """The data of one torch storage: `numel` elements of `dtype`, read by `load()` (from an archive record or a
    legacy blob) when the tensors that use it are materialized."""

    __slots__ = ("dtype", "numel", "load", "_data")

    def __init__(self, dtype: torch.dtype, numel: int, load: Callable[[], torch.Tensor]):
        self.dtype = dtype
        self.numel = numel
        self.load = load
        self._data: torch.Tensor | None = None

    def data(self) -> torch.Tensor:
        """The storage as a flat tensor, loaded once."""
        if self._data is None:
            self._data = self.load()
        return self._data


class TensorStub(Stub):
    """`torch._utils._rebuild_tensor_v2(storage, offset, size, stride, ...)`, checked when built: a view that stays
    inside its storage, of a numeric dtype, with no backward hooks."""

    __slots__ = ("storage", "offset", "size", "stride")

    def __init__(self, storage: Any, offset: Any, size: Any, stride: Any):
        self.storage, self.offset, self.size, self.stride = storage, offset, size, stride

    def build(self, parts: Any, display_name: str) -> torch.Tensor:
        storage, offset, size, stride = self.storage, self.offset, self.size, self.stride
        if not isinstance(storage, StorageStub):
            raise malformed(display_name, f"a tensor is built on a {type(storage).__name__}, not on a storage; the "
                                          f"file is damaged or not a network file")
        if not (_is_int(offset) and offset >= 0 and isinstance(size, tuple) and isinstance(stride, tuple)
                and len(size) == len(stride) <= _MAX_TENSOR_DIMS
                and all(_is_int(n) and n >= 0 for n in size) and all(_is_int(s) and s >= 0 for s in stride)):
            raise malformed(display_name, "a tensor has an invalid offset, shape or stride; the file is damaged")
        if math.prod(size) == 0:
            return torch.empty(size, dtype=storage.dtype)
        if offset + sum((n - 1) * s for n, s in zip(size, stride)) >= storage.numel:
            raise malformed(display_name, f"a tensor of shape {list(size)} reaches outside its storage of "
                                          f"{storage.numel} elements; the file is damaged")
        return torch.as_strided(storage.data(), size, stride, offset)


def _is_int(value: Any) -> bool:
    return type(value) is int


def _check_tensor_extras(requires_grad: Any, backward_hooks: Any, metadata: Any = None) -> None:
    """Backward hooks (callables run during training) and per-tensor metadata never occur in a network file."""
    if type(requires_grad) is not bool:
        raise Refused("a tensor in the pickle has a non-boolean requires_grad; the file is damaged")
    empty_hooks = type(backward_hooks) in (dict, collections.OrderedDict) and not backward_hooks
    if not empty_hooks or metadata not in (None, {}):
        raise Refused("the pickle attaches backward hooks or metadata to a tensor, which a network file "
                      "never does; refusing to load it")


def rebuild_tensor(storage: Any, offset: Any, size: Any, stride: Any, requires_grad: Any, backward_hooks: Any,
                   metadata: Any = None) -> TensorStub:
    """`torch._utils._rebuild_tensor_v2`: a tensor description."""
    _check_tensor_extras(requires_grad, backward_hooks, metadata)
    return TensorStub(storage, offset, size, stride)


def rebuild_parameter(data: Any, requires_grad: Any, backward_hooks: Any, state: Any = None) -> TensorStub:
    """`torch._utils._rebuild_parameter(_with_state)`: a Parameter is its tensor here; extra Python state on it
    (attributes set on the Parameter object) never occurs in a network file."""
    if not isinstance(data, TensorStub):
        raise Refused("the pickle builds a Parameter from something that is not a tensor; the file is "
                      "damaged or not a network file")
    _check_tensor_extras(requires_grad, backward_hooks)
    if not (state is None or state == {} or (type(state) is tuple and all(s is None or s == {} for s in state))):
        raise Refused("the pickle gives a Parameter extra state (attributes), which a network file never "
                      "has; refusing to load it")
    return data


class NumpyDtype(Stub):
    """`numpy.dtype(code, align, copy)` plus its BUILD state, kept as a description: a real dtype is made only from
    a numeric code and the byte order, so no state in the file can give it object references."""

    __slots__ = ("code", "byteorder", "_built")

    def __init__(self, code: Any = None, align: Any = False, copy: Any = True):
        self.code = code
        self.byteorder = "="
        self._built = False

    def __setstate__(self, state: Any) -> None:
        if self._built:
            super().__setstate__(state)
        self._built = True
        self.numpy()
        if not (isinstance(state, tuple) and len(state) == 8 and state[0] == 3 and state[1] in ("<", ">", "|", "=")
                and state[2:5] == (None, None, None) and state[5:7] == (-1, -1)):
            raise Refused("the pickle gives a numpy dtype a structure (fields, sub-arrays or custom "
                          "sizes), which a network file never needs; refusing to load it")
        if state[7] != 0:  # NPY_ITEM_HASOBJECT & co.: a number dtype made to hold object pointers
            raise Refused(f"the pickle sets flags {state[7]} (object references) on a numpy "
                          f"{self.code} dtype, which a network file never needs; refusing to load it")
        self.byteorder = state[1]

    def build(self, parts: Any, display_name: str) -> Any:
        self.numpy()
        return super().build(parts, display_name)

    def numpy(self) -> np.dtype:
        if not (isinstance(self.code, str) and _NUMPY_DTYPE_CODE.fullmatch(self.code)):
            kind = "object" if isinstance(self.code, str) and self.code[:1] == "O" else repr(self.code)
            raise Refused(f"the pickle asks for numpy {kind} values; network files hold only numbers, so "
                          f"refusing to load it")
        dtype = np.dtype(self.code)
        return dtype.newbyteorder(self.byteorder) if self.byteorder in "<>" else dtype


def numpy_scalar(dtype: Any, data: Any) -> int | float | bool:
    """`numpy.core.multiarray.scalar(dtype, bytes)`: a number (official snapshots store e.g. `weight_gain` so)."""
    if not isinstance(dtype, NumpyDtype):
        raise Refused("the pickle builds a numpy scalar without a numpy dtype; the file is damaged")
    dtype = dtype.numpy()
    if not isinstance(data, bytes) or len(data) != dtype.itemsize:
        raise Refused("a numpy scalar in the pickle has the wrong number of bytes; the file is damaged")
    return np.frombuffer(data, dtype=dtype)[0].item()


class NumpyArray(Stub):
    """`numpy.core.multiarray._reconstruct(ndarray, (0,), b'b')` plus its BUILD state (version, shape, dtype,
    fortran order, raw bytes): built as a numeric array of exactly that many bytes."""

    __slots__ = ("state",)

    def __init__(self) -> None:
        self.state: Any = None

    def __setstate__(self, state: Any) -> None:
        if self.state is not None:
            super().__setstate__(state)
        self.state = state

    def build(self, parts: Any, display_name: str) -> np.ndarray:
        state = self.state
        if not (isinstance(state, tuple) and len(state) == 5 and state[0] == 1 and isinstance(state[1], tuple)
                and len(state[1]) <= _MAX_TENSOR_DIMS and all(_is_int(n) and n >= 0 for n in state[1])
                and isinstance(state[2], NumpyDtype) and type(state[3]) is bool
                and isinstance(state[4], (bytes, str))):
            raise malformed(display_name, "a numpy array in the pickle is not a plain numeric array; the file is "
                                          "damaged or not a network file")
        _, shape, dtype, fortran, raw = state
        dtype = dtype.numpy()
        raw = raw.encode("latin1") if isinstance(raw, str) else raw  # Python 2 pickles (read with latin1)
        if len(raw) != math.prod(shape) * dtype.itemsize:
            raise malformed(display_name, f"a numpy array of shape {list(shape)} has {len(raw)} bytes of data; the "
                                          f"file is damaged")
        return np.frombuffer(raw, dtype=dtype).reshape(shape, order="F" if fortran else "C").copy()


class PlainDict(dict):
    """What a format's own dict class (`dnnlib.util.EasyDict`) becomes: a dict (of checked keys); its state is
    never set."""

    def __init__(self, items: Any = ()) -> None:
        super().__init__(plain_ordered_dict(items.items() if isinstance(items, dict) else items))

    def __setstate__(self, state: Any) -> None:
        raise Refused("the pickle sets attributes on a dictionary, which a network file never does; "
                      "refusing to load it")


class _NdarrayClass(Stub):
    """`numpy.ndarray` itself: only ever the first argument of `_reconstruct`."""

    __slots__ = ()


NDARRAY = _NdarrayClass()


def numpy_reconstruct(cls: Any, shape: Any, dtype_code: Any) -> NumpyArray:
    if cls is not NDARRAY:
        raise Refused("the pickle reconstructs a numpy object that is not a plain array; refusing to load it")
    return NumpyArray()


def latin1_bytes(text: Any, encoding: Any = "latin1") -> bytes:
    """`_codecs.encode(text, 'latin1')`: how protocol 0-2 pickles write byte strings (no other codec is needed)."""
    if not isinstance(text, str) or encoding not in ("latin1", "latin-1"):
        raise Refused(f"the pickle encodes {type(text).__name__} data with the codec {encoding!r}, which "
                      f"a network file never needs; refusing to load it")
    return text.encode("latin1")


def plain_set(items: Any = ()) -> set:
    """`builtins.set(items)` with checked items."""
    return {_check_key(item) for item in items}


def plain_ordered_dict(pairs: Any = ()) -> collections.OrderedDict:
    """`collections.OrderedDict(pairs)` (protocol 0-1 pickles) with checked keys."""
    pairs = [tuple(pair) for pair in pairs]
    if not all(len(pair) == 2 for pair in pairs):
        raise Refused("the pickle builds an OrderedDict from items that are not pairs; the file is damaged")
    return collections.OrderedDict((_check_key(key), value) for key, value in pairs)


class _Base(Stub):
    """`builtins.dict` or `builtins.object`: only ever the base-class argument of `copyreg._reconstructor`."""

    __slots__ = ()


DICT_BASE, OBJECT_BASE = _Base(), _Base()


# The globals every format may use: plain containers, numbers and byte strings written the ways pickle writes them.
PLAIN_GLOBALS: dict[tuple[str, str], Any] = {
    ("collections", "OrderedDict"): Constructor("collections.OrderedDict", plain_ordered_dict),
    ("builtins", "set"): Constructor("builtins.set", plain_set),  # `_non_persistent_buffers_set`, protocol <= 3
    ("builtins", "dict"): DICT_BASE,      # `copyreg._reconstructor(cls, dict, state)` in protocol 0-1 pickles
    ("builtins", "object"): OBJECT_BASE,  # `copyreg._reconstructor(cls, object, None)` in protocol 0-1 pickles
    ("_codecs", "encode"): Constructor("_codecs.encode", latin1_bytes),
}
NUMPY_SCALAR_GLOBALS: dict[tuple[str, str], Any] = {
    ("numpy", "dtype"): NumpyDtype,
    ("numpy.core.multiarray", "scalar"): Constructor("numpy scalar", numpy_scalar),   # numpy 1
    ("numpy._core.multiarray", "scalar"): Constructor("numpy scalar", numpy_scalar),  # numpy 2
}
NUMPY_ARRAY_GLOBALS: dict[tuple[str, str], Any] = {
    ("numpy", "ndarray"): NDARRAY,
    ("numpy.core.multiarray", "_reconstruct"): Constructor("numpy array", numpy_reconstruct),
    ("numpy._core.multiarray", "_reconstruct"): Constructor("numpy array", numpy_reconstruct),
}
TORCH_TENSOR_GLOBALS: dict[tuple[str, str], Any] = {
    ("torch._utils", "_rebuild_tensor_v2"): Constructor("tensor", rebuild_tensor),
    ("torch._utils", "_rebuild_parameter"): Constructor("parameter", rebuild_parameter),
    ("torch._utils", "_rebuild_parameter_with_state"): Constructor("parameter", rebuild_parameter),
}


def _check_key(key: Any) -> Any:
    """A dictionary key or set item of a network file: a string, a small integer, a bool or None. (Keys whose hashes
    collide, e.g. integers that differ by a multiple of 2**61 - 1, would make every insertion scan all the others.)"""
    if type(key) is str or type(key) is bool or key is None or (type(key) is int and -2**60 < key < 2**60):
        return key
    raise Refused(f"the pickle uses a {type(key).__name__} as a dictionary key or set item, which a network file "
                  f"never does; refusing to load it")


def _checked_pairs(items: list) -> list:
    for key in items[0::2]:
        _check_key(key)
    return items


class RestrictedUnpickler(pickle._Unpickler):
    """Resolves only `allowed` globals; any other is refused (as hostile) before it could be called.

    The Python implementation of the unpickler, so that every dictionary and set the pickle builds gets checked
    keys (`_check_key`) before the first insertion."""

    dispatch = dict(pickle._Unpickler.dispatch)

    def __init__(self, stream: Any, display_name: str, allowed: Mapping[tuple[str, str], Any],
                 persistent_load: Callable[[Any], Any] | None = None):
        super().__init__(stream, encoding="latin1")  # Python 2 era strings (TF-era pickles) as latin1, like NVIDIA's
        self.display_name = display_name
        self.allowed = allowed
        self._persistent_load = persistent_load

    def load_setitem(self) -> None:
        value, key = self.stack.pop(), self.stack.pop()
        self.stack[-1][_check_key(key)] = value

    def load_setitems(self) -> None:
        items = _checked_pairs(self.pop_mark())
        target = self.stack[-1]
        for i in range(0, len(items), 2):
            target[items[i]] = items[i + 1]

    def load_dict(self) -> None:
        items = _checked_pairs(self.pop_mark())
        self.append({items[i]: items[i + 1] for i in range(0, len(items), 2)})

    def load_additems(self) -> None:
        items = [_check_key(item) for item in self.pop_mark()]
        self.stack[-1].update(items)

    def load_frozenset(self) -> None:
        self.append(frozenset(_check_key(item) for item in self.pop_mark()))

    dispatch[pickle.SETITEM[0]] = load_setitem
    dispatch[pickle.SETITEMS[0]] = load_setitems
    dispatch[pickle.DICT[0]] = load_dict
    dispatch[pickle.ADDITEMS[0]] = load_additems
    dispatch[pickle.FROZENSET[0]] = load_frozenset

    def find_class(self, module: str, name: str) -> Any:
        module = {"__builtin__": "builtins", "copy_reg": "copyreg"}.get(module, module)  # Python 2 spellings
        if (module, name) in self.allowed:
            return self.allowed[(module, name)]
        raise hostile(self.display_name, f"{module}.{name}")

    def persistent_load(self, pid: Any) -> Any:
        if self._persistent_load is None:
            raise malformed(self.display_name, "the pickle holds torch.save storage references outside a torch.save "
                                               "archive; it is damaged or not a network file")
        return self._persistent_load(pid)


def reconstructor(classes: tuple[type, ...]) -> Constructor:
    """`copyreg._reconstructor(cls, base, state)` of protocol 0-1 pickles, for the format's own `classes` only."""

    def build(cls: Any, base: Any, state: Any) -> Any:
        if cls not in classes or base not in (DICT_BASE, OBJECT_BASE):
            raise Refused(f"the pickle reconstructs {getattr(cls, '__name__', type(cls).__name__)} objects, "
                          f"which a network file never holds; refusing to load it")
        obj = cls.__new__(cls)
        if base is DICT_BASE and state is not None:
            dict.update(obj, plain_ordered_dict(state.items() if isinstance(state, dict) else state))
        return obj

    return Constructor("copyreg._reconstructor", build)


def unpickle(stream: Any, budget: Budget, allowed: Mapping[tuple[str, str], Any],
             persistent_load: Callable[[Any], Any] | None = None) -> Any:
    """Scans then unpickles one pickle from `stream` (an mmap or binary file positioned at its start); the result
    still holds stubs (see `materialize`)."""
    scan(stream, budget, persistent=persistent_load is not None)
    try:
        return RestrictedUnpickler(stream, budget.display_name, allowed, persistent_load).load()
    except NetworkFileError:
        raise
    except Refused as err:
        raise malformed(budget.display_name, str(err)) from None
    except Exception as err:  # a well-formed opcode stream with impossible values (wrong arguments, bad state)
        raise malformed(budget.display_name, f"the pickle's contents are malformed ({type(err).__name__}: "
                                             f"{first_line(err)}); it is damaged or not a network file") from err


def first_line(err: BaseException) -> str:
    text = str(err).strip()
    return text.splitlines()[0][:200] if text else type(err).__name__


# ---------------------------------------------------------------------------------------------------------------------
# 3. The walk.

_SCALARS = frozenset((type(None), bool, int, float, str, bytes))
_DICTS = frozenset((dict, collections.OrderedDict, PlainDict))


def materialize(obj: Any, budget: Budget) -> Any:
    """The plain value of an unpickled object: stubs built (tensors shared as in the file), containers copied into
    dict/list/tuple/set, every visit counted, cycles and excessive nesting refused."""
    built: dict[int, Any] = {}  # stubs already built, by id: shared tensors stay shared
    path: set[int] = set()
    display_name = budget.display_name
    remaining = budget.nodes

    def walk(value: Any, depth: int) -> Any:
        nonlocal remaining
        remaining -= 1
        if remaining < 0:
            raise budget.too_many_nodes()
        kind = type(value)
        if kind in _SCALARS:
            return value
        if depth >= MAX_DEPTH:
            raise NetworkFileError(f"{display_name} nests values more than {MAX_DEPTH} levels deep, deeper than any "
                                   f"network file; refusing to load it")
        key = id(value)
        if key in path:
            raise NetworkFileError(f"{display_name} holds a {kind.__name__} that contains itself (a cyclic "
                                   f"structure), which no network file has; refusing to load it")
        path.add(key)
        depth += 1
        if kind in _DICTS:
            result = {k: walk(v, depth) for k, v in value.items()}  # (keys checked when the pickle set them)
        elif kind is list:
            result = [walk(v, depth) for v in value]
        elif kind is tuple:
            result = tuple([walk(v, depth) for v in value])
        elif kind is set:
            result = set(value)  # (items checked when the pickle added them)
        elif isinstance(value, Stub):
            result = built.get(key)
            if result is None:
                result = built[key] = value.build(walk(value.parts(), depth), display_name)
        else:
            raise NetworkFileError(f"{display_name} holds a {_type_name(value)}, which a network file never "
                                   f"contains; refusing to load it")
        path.discard(key)
        return result

    try:
        result = walk(obj, 0)
    except Refused as err:
        raise malformed(display_name, str(err)) from None
    budget.nodes = remaining
    return result


def _type_name(value: Any) -> str:
    if isinstance(value, type):
        return f"reference to the class {value.__module__}.{value.__qualname__}"
    return f"{type(value).__module__}.{type(value).__qualname__} object"
