# The part of numba that CandleGraph uses, typed: numba ships no annotations, and `njit` returns
# a dispatcher that is called exactly as the function it compiles, so the function's own
# signature is the one to check callers against.
from collections.abc import Callable
from typing import Any, TypeVar

_F = TypeVar("_F", bound=Callable[..., Any])

def njit(*, cache: bool = ..., nogil: bool = ..., fastmath: bool = ...) -> Callable[[_F], _F]: ...
