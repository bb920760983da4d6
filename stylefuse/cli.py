"""Glue for the Hydra command-line jobs: one-line user errors instead of tracebacks."""

from __future__ import annotations

import functools
import sys
from collections.abc import Callable
from typing import Any

from stylefuse.errors import StylefuseError


def user_errors(fn: Callable[..., Any]) -> Callable[..., Any]:
    """Turns a `StylefuseError` raised by `fn` into `error: <message>` on stderr and exit status 2."""

    @functools.wraps(fn)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            return fn(*args, **kwargs)
        except StylefuseError as err:
            print(f"error: {err}", file=sys.stderr)
            sys.exit(2)

    return wrapper
