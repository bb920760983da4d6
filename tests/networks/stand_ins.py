"""Stand-in modules under the names NVIDIA's pickles use, so that the tests can write such pickles by name."""

from __future__ import annotations

import contextlib
import sys
import types
from collections.abc import Iterator
from typing import Any


@contextlib.contextmanager
def stand_in_modules(contents: dict[str, dict[str, Any]]) -> Iterator[None]:
    """Installs `{module name: {attribute: object}}` (and the parent packages) in sys.modules, giving each object
    that module's name for pickling; removes them all on exit. None of the names may exist before."""
    names = {".".join(name.split(".")[:i + 1]) for name in contents for i in range(name.count(".") + 1)}
    assert not any(name in sys.modules for name in names)
    modules = {name: types.ModuleType(name) for name in names}
    for module_name, attributes in contents.items():
        for attribute, obj in attributes.items():
            obj.__module__, obj.__qualname__ = module_name, attribute
            setattr(modules[module_name], attribute, obj)
    sys.modules.update(modules)
    try:
        yield
    finally:
        for name in names:
            del sys.modules[name]
