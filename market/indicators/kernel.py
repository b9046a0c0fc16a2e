"""The compiled indicator engine: every indicator's fold, over numpy state rows.

All of it is plain numba with no fast-math (so no fused multiply-adds, no reassociation):
each operation rounds as Python's float arithmetic does, in the order the definitions in the
indicator classes give, so the values equal those of a plain Python fold to the last bit.
Two of Python's own sums are ported as they are written in CPython 3.12, because rounding
depends on them: `math.fsum` (`_fsum_ring`: Shewchuk's exact partials, then the half-even
fix-up; an overflow or `inf - inf`, where Python raises, gives NaN) refreshes the running
sums of windows, and the builtin `sum` of floats (`_sum_step`/`_sum_end`: Neumaier's
compensated sum from `0 + x0`) seeds the EMAs and sums CCI's deviations. Everything lives in
this one module because numba's cache does not notice a change in a module a cached
function calls into.

A `Program` (`market.indicators.program`) lays out a set of indicators: per indicator a row
of `codes` (`C_KIND`, offsets of its state in a series' float and int rows and of its
outputs, and its integer parameters) and a row of `constants` (EWM weights, band width). A
series' state is one float row and one int row; the int row starts with the series' last
candle time (`H_HAS_LAST`, `H_LAST_TS`), and a window keeps its values in a ring
(oldest at its head) with its count and running total.
"""

from __future__ import annotations

import math

import numpy as np
from numba import njit

from market.arrays import Floats, Ints

# Indicator kinds.
SMA, EMA, WMA, RSI, MACD, BBANDS, ATR, STOCH, OBV, ROC, CCI, VWAP = range(12)

# Columns of a program's `codes` row.
C_KIND, C_F, C_I, C_OUT, C_A, C_B, C_C = range(7)
CODES_WIDTH = 7
#: Columns of `constants`: up to three EWMs' (alpha, 1 - alpha, (1 - alpha) + alpha).
CONSTANTS_WIDTH = 9

# The series header at the start of the int row.
H_HAS_LAST, H_LAST_TS = 0, 1
HEADER_INTS = 2

# A rolling window: floats [total, ring...], ints [count, head, pushes since the refresh].
RW_FLOATS, RW_INTS = 1, 3
# A seeded EWM: floats [average, seed sum, seed compensation], ints [seeds taken].
SEWM_FLOATS, SEWM_INTS = 3, 1

NS_PER_DAY = 86_400 * 1_000_000_000
#: A CCI mean deviation at or below this fraction of the mean typical price counts as zero.
FLAT = 1e-12
CCI_CONSTANT = 0.015

_NAN = math.nan


# Python's sums ------------------------------------------------------------------------------

@njit(cache=True, nogil=True)
def _wrap(i: int, size: int) -> int:
    """`i % size` for 0 <= i < 2 * size, without a division."""
    return i - size if i >= size else i


@njit(cache=True, nogil=True)
def _fsum_ring(
    f: Floats, base: int, head: int, count: int, size: int, weighted: bool, p: Floats
) -> float:
    """`math.fsum` of the `count` values of the ring `f[base:base + size]` from its head
    (times 1, 2, ... when `weighted`), with `p` as room for the partials."""
    n = 0
    special = 0.0
    inf_sum = 0.0
    for k in range(count):
        x = f[base + _wrap(head + k, size)]
        if weighted:
            x = (k + 1) * x
        xsave = x
        i = 0
        for j in range(n):
            y = p[j]
            if abs(x) < abs(y):
                x, y = y, x
            hi = x + y
            yr = hi - x
            lo = y - yr
            if lo != 0.0:
                p[i] = lo
                i += 1
            x = hi
        n = i
        if x != 0.0:
            if not math.isfinite(x):
                if math.isfinite(xsave):
                    return _NAN  # intermediate overflow
                if math.isinf(xsave):
                    inf_sum += xsave
                special += xsave
                n = 0
            else:
                p[n] = x
                n += 1
    if special != 0.0:
        return _NAN if inf_sum != inf_sum else special
    hi = 0.0
    if n > 0:
        n -= 1
        hi = p[n]
        lo = 0.0
        while n > 0:
            x = hi
            n -= 1
            y = p[n]
            hi = x + y
            yr = hi - x
            lo = y - yr
            if lo != 0.0:
                break
        if n > 0 and ((lo < 0.0 and p[n - 1] < 0.0) or (lo > 0.0 and p[n - 1] > 0.0)):
            y = lo * 2.0
            x = hi + y
            yr = x - hi
            if y == yr:
                hi = x
    return hi


@njit(cache=True, nogil=True)
def _sum_step(total: float, c: float, x: float) -> tuple[float, float]:
    """One float of the builtin `sum` after the first: Neumaier's step."""
    t = total + x
    if abs(total) >= abs(x):
        c += (total - t) + x
    else:
        c += (x - t) + total
    return t, c


@njit(cache=True, nogil=True)
def _sum_end(total: float, c: float) -> float:
    """The builtin `sum`'s result: the compensation added when it is a nonzero number."""
    if c != 0.0 and math.isfinite(c):
        return total + c
    return total


# Building blocks ----------------------------------------------------------------------------


@njit(cache=True, nogil=True)
def _rw_push(
    f: Floats, s: Ints, fo: int, io: int, size: int, x: float, p: Floats
) -> None:
    """Append `x` to the window at (`fo`, `io`), dropping the oldest value once it is full;
    its total is summed afresh (fsum) once every `size` pushes, else updated."""
    count = s[io]
    head = s[io + 1]
    ring = fo + 1
    if count == size:
        f[fo] -= f[ring + head]
        f[ring + head] = x
        s[io + 1] = _wrap(head + 1, size)
    else:
        f[ring + _wrap(head + count, size)] = x
        s[io] = count + 1
    since = s[io + 2] + 1
    if since >= size:
        f[fo] = _fsum_ring(f, ring, s[io + 1], s[io], size, False, p)
        s[io + 2] = 0
    else:
        f[fo] += x
        s[io + 2] = since


@njit(cache=True, nogil=True)
def _rw_mean(f: Floats, s: Ints, fo: int, io: int, size: int) -> float:
    return f[fo] / size if s[io] == size else _NAN


@njit(cache=True, nogil=True)
def _ring_at(f: Floats, s: Ints, fo: int, io: int, size: int, k: int) -> float:
    """The k-th oldest value of the window at (`fo`, `io`); negative k counts from the newest."""
    if k < 0:
        k += s[io]
    return f[fo + 1 + _wrap(s[io + 1] + k, size)]


@njit(cache=True, nogil=True)
def _ewm_push(f: Floats, at: int, alpha: float, keep: float, norm: float, x: float) -> float:
    """pandas' `ewm(alpha, adjust=False).mean()` step: the first value seeds the average;
    later ones fold in as `(keep * avg + alpha * x) / norm`, skipped when `x == avg`."""
    value = f[at]
    if value != value:
        f[at] = x
    elif value != x:
        f[at] = (keep * value + alpha * x) / norm
    return f[at]


@njit(cache=True, nogil=True)
def _sewm_push(
    f: Floats, s: Ints, fo: int, io: int, length: int, w: Floats, wo: int,
    x: float,
) -> float:
    """An EWM (weights `w[wo:wo + 3]`) seeded with the mean of its first `length` inputs,
    `sum(seed) / length`; NaN while seeding."""
    taken = s[io]
    if taken >= length:
        return _ewm_push(f, fo, w[wo], w[wo + 1], w[wo + 2], x)
    if taken == 0:
        f[fo + 1] = 0.0 + x
        f[fo + 2] = 0.0
    else:
        f[fo + 1], f[fo + 2] = _sum_step(f[fo + 1], f[fo + 2], x)
    s[io] = taken + 1
    if taken + 1 < length:
        return _NAN
    seed = _sum_end(f[fo + 1], f[fo + 2])
    return _ewm_push(f, fo, w[wo], w[wo + 1], w[wo + 2], seed / length)


@njit(cache=True, nogil=True)
def _ratio(numerator: float, denominator: float) -> float:
    return numerator / denominator if denominator != 0.0 else _NAN


# One indicator over many candles ------------------------------------------------------------
# Each `_fold_<kind>` folds candles 0..n-1, in order, into indicator `code`'s state in the
# series rows `rows[r]` of `floats` and `ints`, and when `emit` writes its outputs after
# each candle to `out[:, r]` (output-major: a pass of one indicator writes its values
# contiguously, as stored blocks hold them). Indicators do not share state, so folding one
# indicator over the whole batch, then the next, gives what folding each candle into every
# indicator does.

@njit(cache=True, nogil=True)
def _fold_window(
    code: Ints, w: Floats, floats: Floats, ints: Ints, rows: Ints,
    ts: Ints, high: Floats, low: Floats, close: Floats,
    volume: Floats, n: int, out: Floats, emit: bool, p: Floats,
) -> None:
    """SMA, BBANDS (over the close) and CCI (over the typical price): a rolling window."""
    kind, fo, io, o, a = code[C_KIND], code[C_F], code[C_I], code[C_OUT], code[C_A]
    for r in range(n):
        f = floats[rows[r]]
        s = ints[rows[r]]
        x = (high[r] + low[r] + close[r]) / 3.0 if kind == CCI else close[r]
        _rw_push(f, s, fo, io, a, x, p)
        if not emit:
            continue
        if kind == SMA:
            out[o, r] = _rw_mean(f, s, fo, io, a)
        elif kind == BBANDS:
            _bbands_outputs(f, s, fo, io, a, w[0], out, o, r)
        else:
            out[o, r] = _cci_output(f, s, fo, io, a)


@njit(cache=True, nogil=True)
def _bbands_outputs(
    f: Floats, s: Ints, fo: int, io: int, a: int, std: float, out: Floats, o: int, r: int
) -> None:
    if s[io] != a:
        for k in range(5):
            out[o + k, r] = _NAN
        return
    middle = f[fo] / a
    # Deviations from the window's first close: see `BBands`.
    first = _ring_at(f, s, fo, io, a, 0)
    shifted = 0.0
    squares = 0.0
    for k in range(a):
        d = _ring_at(f, s, fo, io, a, k) - first
        shifted += d
        squares += d * d
    variance = squares - shifted * shifted / a
    if variance < 0.0:
        variance = 0.0
    width = std * math.sqrt(variance / (a - 1))
    lower = middle - width
    upper = middle + width
    span = upper - lower
    out[o, r] = lower
    out[o + 1, r] = middle
    out[o + 2, r] = upper
    out[o + 3, r] = _ratio(100 * span, middle)
    out[o + 4, r] = (_ring_at(f, s, fo, io, a, -1) - lower) / span if span != 0.0 else 0.0


@njit(cache=True, nogil=True)
def _cci_output(f: Floats, s: Ints, fo: int, io: int, a: int) -> float:
    if s[io] != a:
        return _NAN
    mean = f[fo] / a
    total = 0.0 + abs(_ring_at(f, s, fo, io, a, 0) - mean)
    c = 0.0
    for k in range(1, a):
        total, c = _sum_step(total, c, abs(_ring_at(f, s, fo, io, a, k) - mean))
    deviation = _sum_end(total, c) / a
    if deviation <= FLAT * abs(mean):
        return _NAN  # rounding of equal typical prices: CCI is 0/0 (see `CCI`)
    return (_ring_at(f, s, fo, io, a, -1) - mean) / (CCI_CONSTANT * deviation)


@njit(cache=True, nogil=True)
def _fold_averages(
    code: Ints, w: Floats, floats: Floats, ints: Ints, rows: Ints,
    ts: Ints, high: Floats, low: Floats, close: Floats,
    volume: Floats, n: int, out: Floats, emit: bool, p: Floats,
) -> None:
    """EMA of the close and ATR: a seeded EWM (ATR's floats end with the previous close);
    MACD: three of them (floats [fast, slow, signal, line])."""
    kind, fo, io, o = code[C_KIND], code[C_F], code[C_I], code[C_OUT]
    a, b, c = code[C_A], code[C_B], code[C_C]
    for r in range(n):
        f = floats[rows[r]]
        s = ints[rows[r]]
        if kind == EMA:
            _sewm_push(f, s, fo, io, a, w, 0, close[r])
        elif kind == ATR:
            prev = f[fo + 3]
            f[fo + 3] = close[r]
            true_range = abs(high[r] - low[r])
            if prev == prev:
                # Python's max(true_range, up, down): the first of the largest.
                up, down = abs(high[r] - prev), abs(prev - low[r])
                if up > true_range:
                    true_range = up
                if down > true_range:
                    true_range = down
            _sewm_push(f, s, fo, io, a, w, 0, true_range)
        else:
            fast = _sewm_push(f, s, fo, io, a, w, 0, close[r])
            line = fast - _sewm_push(f, s, fo + 3, io + 1, b, w, 3, close[r])
            f[fo + 9] = line
            if line == line:
                _sewm_push(f, s, fo + 6, io + 2, c, w, 6, line)
            if emit:
                signal = f[fo + 6]
                out[o, r] = line
                out[o + 1, r] = signal
                out[o + 2, r] = line - signal
            continue
        if emit:
            out[o, r] = f[fo]


@njit(cache=True, nogil=True)
def _fold_wma(
    code: Ints, w: Floats, floats: Floats, ints: Ints, rows: Ints,
    ts: Ints, high: Floats, low: Floats, close: Floats,
    volume: Floats, n: int, out: Floats, emit: bool, p: Floats,
) -> None:
    """WMA: floats [plain sum, weighted sum, ring...], ints [count, head, pushes since the
    refresh]."""
    fo, io, o, a = code[C_F], code[C_I], code[C_OUT], code[C_A]
    ring = fo + 2
    for r in range(n):
        f = floats[rows[r]]
        s = ints[rows[r]]
        x = close[r]
        count, head = s[io], s[io + 1]
        if count == a:
            f[fo + 1] += a * x - f[fo]
            f[fo] += x - f[ring + head]
            f[ring + head] = x
            s[io + 1] = _wrap(head + 1, a)
        else:
            f[fo + 1] += (count + 1) * x
            f[fo] += x
            f[ring + count] = x
            s[io] = count + 1
        s[io + 2] += 1
        if s[io + 2] >= a:
            s[io + 2] = 0
            f[fo] = _fsum_ring(f, ring, s[io + 1], s[io], a, False, p)
            f[fo + 1] = _fsum_ring(f, ring, s[io + 1], s[io], a, True, p)
        if emit:
            out[o, r] = f[fo + 1] * w[0] if s[io] == a else _NAN


@njit(cache=True, nogil=True)
def _fold_rsi(
    code: Ints, w: Floats, floats: Floats, ints: Ints, rows: Ints,
    ts: Ints, high: Floats, low: Floats, close: Floats,
    volume: Floats, n: int, out: Floats, emit: bool, p: Floats,
) -> None:
    """RSI: floats [gain EWM, loss EWM, previous close], ints [changes seen]."""
    fo, io, o, a = code[C_F], code[C_I], code[C_OUT], code[C_A]
    for r in range(n):
        f = floats[rows[r]]
        s = ints[rows[r]]
        prev = f[fo + 2]
        f[fo + 2] = close[r]
        if prev == prev:
            change = close[r] - prev
            _ewm_push(f, fo, w[0], w[1], w[2], change if change > 0.0 else 0.0)
            _ewm_push(f, fo + 1, w[0], w[1], w[2], change if change < 0.0 else 0.0)
            s[io] += 1
        if emit:
            if s[io] < a:
                out[o, r] = _NAN
            else:
                gain = f[fo]
                out[o, r] = _ratio(100 * gain, gain + abs(f[fo + 1]))


@njit(cache=True, nogil=True)
def _fold_stoch(
    code: Ints, w: Floats, floats: Floats, ints: Ints, rows: Ints,
    ts: Ints, high: Floats, low: Floats, close: Floats,
    volume: Floats, n: int, out: Floats, emit: bool, p: Floats,
) -> None:
    """Stochastic: floats [%K, highs ring (k), lows ring (k), %K window (smooth_k), %D window
    (d)], ints [count, head, %K window, %D window]."""
    fo, io, o = code[C_F], code[C_I], code[C_OUT]
    a, b, c = code[C_A], code[C_B], code[C_C]
    highs, lows = fo + 1, fo + 1 + a
    smooth = fo + 1 + 2 * a
    signal = smooth + RW_FLOATS + c
    for r in range(n):
        f = floats[rows[r]]
        s = ints[rows[r]]
        count, head = s[io], s[io + 1]
        if count == a:
            f[highs + head] = high[r]
            f[lows + head] = low[r]
            head = _wrap(head + 1, a)
            s[io + 1] = head
        else:
            f[highs + count] = high[r]
            f[lows + count] = low[r]
            count += 1
            s[io] = count
        if count == a:
            # Python's min and max: the first of the extremes, oldest first.
            lowest = f[lows + head]
            highest = f[highs + head]
            for k in range(1, a):
                x = f[lows + _wrap(head + k, a)]
                if x < lowest:
                    lowest = x
                x = f[highs + _wrap(head + k, a)]
                if x > highest:
                    highest = x
            span = highest - lowest
            raw = 100 * (close[r] - lowest) / span if span != 0.0 else 0.0
            _rw_push(f, s, smooth, io + 2, c, raw, p)
            k_value = _rw_mean(f, s, smooth, io + 2, c)
            f[fo] = k_value
            if k_value == k_value:
                _rw_push(f, s, signal, io + 2 + RW_INTS, b, k_value, p)
        if emit:
            out[o, r] = f[fo]
            out[o + 1, r] = _rw_mean(f, s, signal, io + 2 + RW_INTS, b)


@njit(cache=True, nogil=True)
def _fold_volume(
    code: Ints, w: Floats, floats: Floats, ints: Ints, rows: Ints,
    ts: Ints, high: Floats, low: Floats, close: Floats,
    volume: Floats, n: int, out: Floats, emit: bool, p: Floats,
) -> None:
    """OBV: floats [previous close, total]; VWAP: floats [notional, volume], ints [has a
    day, day]."""
    kind, fo, io, o = code[C_KIND], code[C_F], code[C_I], code[C_OUT]
    for r in range(n):
        f = floats[rows[r]]
        s = ints[rows[r]]
        if kind == OBV:
            prev = f[fo]
            f[fo] = close[r]
            if prev == prev:
                v = volume[r]
                signed = v if close[r] > prev else -v if close[r] < prev else 0.0
                total = f[fo + 1]
                f[fo + 1] = signed if total != total else total + signed
            if emit:
                out[o, r] = f[fo + 1]
        else:
            day = ts[r] // NS_PER_DAY
            if s[io] == 0 or day != s[io + 1]:
                s[io] = 1
                s[io + 1] = day
                f[fo] = 0.0
                f[fo + 1] = 0.0
            f[fo] += (high[r] + low[r] + close[r]) / 3.0 * volume[r]
            f[fo + 1] += volume[r]
            if emit:
                out[o, r] = _ratio(f[fo], f[fo + 1])


@njit(cache=True, nogil=True)
def _fold_roc(
    code: Ints, w: Floats, floats: Floats, ints: Ints, rows: Ints,
    ts: Ints, high: Floats, low: Floats, close: Floats,
    volume: Floats, n: int, out: Floats, emit: bool, p: Floats,
) -> None:
    """ROC: floats [ring of length + 1 closes], ints [count, head]."""
    fo, io, o, a = code[C_F], code[C_I], code[C_OUT], code[C_A]
    size = a + 1
    for r in range(n):
        f = floats[rows[r]]
        s = ints[rows[r]]
        count, head = s[io], s[io + 1]
        if count == size:
            f[fo + head] = close[r]
            s[io + 1] = _wrap(head + 1, size)
        else:
            f[fo + count] = close[r]
            s[io] = count + 1
        if emit:
            if s[io] < size:
                out[o, r] = _NAN
            else:
                then = f[fo + s[io + 1]]
                newest = f[fo + _wrap(s[io + 1] + a, size)]
                out[o, r] = _ratio(100 * (newest - then), then)


# Entry points -------------------------------------------------------------------------------

@njit(cache=True, nogil=True)
def fold_rows(
    codes: Ints, constants: Floats, scratch: int,
    state_f: Floats, state_i: Ints, rows: Ints, ts: Ints,
    high: Floats, low: Floats, close: Floats, volume: Floats,
    out: Floats, emit: bool,
) -> int:
    """Fold candle r into the series of state row `rows[r]`, in order, and (when `emit`)
    write every output after it to `out[:, r]`. A candle not after its series' previous one
    stops the fold: its index is returned (with the candles before it folded), else -1."""
    n = ts.shape[0]
    stopped = -1
    for r in range(n):
        s = state_i[rows[r]]
        if s[H_HAS_LAST] and ts[r] <= s[H_LAST_TS]:
            stopped = r
            n = r
            break
        s[H_HAS_LAST] = 1
        s[H_LAST_TS] = ts[r]
    p = np.empty(scratch)
    for j in range(codes.shape[0]):
        code, w, kind = codes[j], constants[j], codes[j, C_KIND]
        args = (state_f, state_i, rows, ts, high, low, close, volume, n, out, emit, p)
        if kind in (SMA, BBANDS, CCI):
            _fold_window(code, w, *args)
        elif kind in (EMA, ATR, MACD):
            _fold_averages(code, w, *args)
        elif kind == WMA:
            _fold_wma(code, w, *args)
        elif kind == RSI:
            _fold_rsi(code, w, *args)
        elif kind == STOCH:
            _fold_stoch(code, w, *args)
        elif kind == ROC:
            _fold_roc(code, w, *args)
        else:
            _fold_volume(code, w, *args)
    return stopped


@njit(cache=True, nogil=True)
def fold_one(
    codes: Ints, constants: Floats, scratch: int, f: Floats, s: Ints,
    ts: int, high: float, low: float, close: float, volume: float, out: Floats,
) -> bool:
    """Fold one candle into one series' state rows and write its outputs to `out`; False
    (and nothing changed) when it does not come after the series' previous candle."""
    one = np.empty(4)
    one[0], one[1], one[2], one[3] = high, low, close, volume
    stopped = fold_rows(
        codes, constants, scratch, f.reshape(1, -1), s.reshape(1, -1), np.zeros(1, np.int64),
        np.full(1, ts, np.int64), one[0:1], one[1:2], one[2:3], one[3:4], out.reshape(-1, 1),
        True,
    )
    return stopped < 0
