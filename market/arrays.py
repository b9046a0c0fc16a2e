"""Numpy array types by element type: the columns, state and buffers of the compiled kernels."""

from __future__ import annotations

from typing import Any

import numpy as np
import numpy.typing as npt

#: float64: prices, sizes, candle values, indicator state and outputs.
Floats = npt.NDArray[np.float64]
#: int64: timestamps, ids, counts, row indices, integer state.
Ints = npt.NDArray[np.int64]
#: int32: a trade's market (an index into a batch's keys).
Int32s = npt.NDArray[np.int32]
#: int8: small codes (a trade's side, its fate in the aggregator).
Int8s = npt.NDArray[np.int8]
#: bool: flags.
Bools = npt.NDArray[np.bool_]
#: uint8: raw bytes (JSON payloads and the literals they are matched against).
Bytes = npt.NDArray[np.uint8]
#: Any element type: a function that only reshapes or copies.
AnyArray = npt.NDArray[Any]
