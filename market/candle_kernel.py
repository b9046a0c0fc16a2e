"""The compiled inner loop of `CandleAggregator`: a sequential fold over columns of trades.

Everything here is plain numba over numpy arrays, with no fast-math, so each addition and
product rounds exactly as Python's float arithmetic does, in the same order: the candles equal
a plain Python fold of the same trades, to the last bit.

State layout (owned and pickled by `CandleAggregator`; S symbols, T timeframes, K slots):

- `slot_f[s, t, k, 0:6]` open, high, low, close, volume, notional (Σ price·size) of a candle;
- `slot_i[s, t, k, 0:3]` bucket start (`EMPTY` when the slot is free), trade count, flags
  (`CLOSED`); a bucket lives in slot `(start // width) % K`, and K is large enough that a slot
  is only reused once its previous bucket is final (its end is at or before the watermark);
- `series_i[s, t, 0:2]` start of the latest bucket seen, and 1 while that bucket still forms;
- `clock[0:3]` latest accepted event time, allowed lateness, and the number of live trade ids;
- the trade-id table: open addressing over (symbol, integer id) with the trade's time, so ids
  older than the watermark can be forgotten when the table is rebuilt;
- the spike filter: per symbol, the last accepted log price, an exponentially weighted
  variance of log returns, the number of returns seen and the run of flagged trades.

A trade's fate is one of `ACCEPTED`, `LATE` (older than the watermark), `DUPLICATE` (its id
was already accepted for that symbol) or `SPIKE` (flagged by the optional spike filter).
"""

from __future__ import annotations

import math

import numpy as np
from numba import njit

from market.arrays import Bools, Floats, Int8s, Int32s, Ints

EMPTY = np.iinfo(np.int64).min
CLOSED = 1

ACCEPTED = 0
LATE = 1
DUPLICATE = 2
SPIKE = 3

# Output columns of updated and final candles, in `out_i` / `out_f`. `OUT_LIVE` is 1 while an
# update's values are still to be read from its slot (at the end of the call), 0 once filled.
OUT_SLOT, OUT_TS, OUT_TRADES, OUT_CLOSED, OUT_LIVE = 0, 1, 2, 3, 4
OUT_I_WIDTH = 5
OUT_F_WIDTH = 6  # open, high, low, close, volume, notional

# Spike filter state columns.
SP_LAST, SP_VAR = 0, 1
SP_COUNT, SP_RUN = 0, 1

ID_BLOCK_BITS = 3
_MIX1 = np.uint64(0xBF58476D1CE4E5B9)
_MIX2 = np.uint64(0x94D049BB133111EB)


@njit(cache=True, nogil=True)
def _home(sym: int, tid: int, mask: np.uint64) -> np.uint64:
    # Ids of one symbol that differ only in their low bits share a block of slots, so a run
    # of consecutive ids (what exchanges send) touches few cache lines; blocks are spread by
    # a splitmix64 finaliser over the symbol and the id's high bits.
    x = np.uint64(tid >> ID_BLOCK_BITS) ^ (np.uint64(sym) * np.uint64(0x9E3779B97F4A7C15))
    x = (x ^ (x >> np.uint64(30))) * _MIX1
    x = (x ^ (x >> np.uint64(27))) * _MIX2
    x = x ^ (x >> np.uint64(31))
    low = np.uint64(tid & ((1 << ID_BLOCK_BITS) - 1))
    return ((x << np.uint64(ID_BLOCK_BITS)) | low) & mask


@njit(cache=True, nogil=True)
def id_table_rebuild(table: Ints, watermark: int, capacity: int) -> tuple[Ints, int]:
    """A new table of `capacity` (a power of two) holding the ids whose time >= watermark.

    Rows are (symbol, id, trade time); a free row has time `EMPTY`."""
    new = np.zeros((capacity, 3), np.int64)
    new[:, 2] = EMPTY
    mask = np.uint64(capacity - 1)
    live = 0
    for j in range(table.shape[0]):
        ts = table[j, 2]
        if ts == EMPTY or ts < watermark:
            continue
        pos = _home(table[j, 0], table[j, 1], mask)
        while new[pos, 2] != EMPTY:
            pos = (pos + np.uint64(1)) & mask
        new[pos, 0] = table[j, 0]
        new[pos, 1] = table[j, 1]
        new[pos, 2] = ts
        live += 1
    return new, live


@njit(cache=True, nogil=True)
def _id_seen_or_insert(table: Ints, sym: int, tid: int, ts: int) -> bool:
    mask = np.uint64(table.shape[0] - 1)
    pos = _home(sym, tid, mask)
    while table[pos, 2] != EMPTY:
        if table[pos, 1] == tid and table[pos, 0] == sym:
            return True
        pos = (pos + np.uint64(1)) & mask
    table[pos, 0] = sym
    table[pos, 1] = tid
    table[pos, 2] = ts
    return False


@njit(cache=True, nogil=True)
def _emit(
    slot_f: Floats, slot_i: Ints, s: int, t: int, k: int, flat: int,
    out_i: Ints, out_f: Floats, n_out: int,
) -> int:
    out_i[n_out, OUT_SLOT] = flat
    out_i[n_out, OUT_TS] = slot_i[s, t, k, 0]
    out_i[n_out, OUT_TRADES] = slot_i[s, t, k, 1]
    out_i[n_out, OUT_CLOSED] = slot_i[s, t, k, 2] & CLOSED
    out_i[n_out, OUT_LIVE] = 0
    for j in range(OUT_F_WIDTH):
        out_f[n_out, j] = slot_f[s, t, k, j]
    return n_out + 1


@njit(cache=True, nogil=True)
def _close_series(
    s: int, t: int, watermark: int, tf_ns: Ints,
    slot_f: Floats, slot_i: Ints, series_i: Ints, touched: Ints,
    upd_i: Ints, upd_f: Floats, n_upd: int,
    fin_i: Ints, fin_f: Floats, n_fin: int,
) -> tuple[int, int]:
    """Make final, in time order, every candle of one series that ends at or before the
    watermark: emit it (closed) as an update and as a final candle, then free its slot."""
    n_slots = slot_i.shape[2]
    width = tf_ns[t]
    while True:
        best = -1
        for k in range(n_slots):
            start = slot_i[s, t, k, 0]
            if start != EMPTY and start + width <= watermark and (
                best < 0 or start < slot_i[s, t, best, 0]
            ):
                best = k
        if best < 0:
            return n_upd, n_fin
        k = best
        flat = (s * slot_i.shape[1] + t) * n_slots + k
        if slot_i[s, t, k, 0] == series_i[s, t, 0]:
            series_i[s, t, 1] = 0
        was_closed = slot_i[s, t, k, 2] & CLOSED
        slot_i[s, t, k, 2] |= CLOSED
        pos = touched[flat]
        if pos > 0:
            # Touched earlier in this call: its final values go in its place now.
            _emit(slot_f, slot_i, s, t, k, flat, upd_i, upd_f, pos - 1)
            touched[flat] = 0
        elif not was_closed:
            n_upd = _emit(slot_f, slot_i, s, t, k, flat, upd_i, upd_f, n_upd)
        n_fin = _emit(slot_f, slot_i, s, t, k, flat, fin_i, fin_f, n_fin)
        slot_i[s, t, k, 0] = EMPTY


@njit(cache=True, nogil=True)
def close_passed(
    tf_ns: Ints, clock: Ints, next_due: Ints,
    slot_f: Floats, slot_i: Ints, series_i: Ints, touched: Ints,
    upd_i: Ints, upd_f: Floats, n_upd: int,
    fin_i: Ints, fin_f: Floats, n_fin: int, n_symbols: int,
) -> tuple[int, int]:
    """Close and finalise every candle the watermark has passed, then fill in the values of
    updates still pointing at live slots. Returns the number of updates and finals.

    The caller leaves room for `S * T * K` more rows in both outputs.
    """
    watermark = clock[0] - clock[1]
    n_tf = tf_ns.shape[0]
    n_slots = slot_i.shape[2]
    for t in range(n_tf):
        if watermark < next_due[t]:
            continue
        due = np.iinfo(np.int64).max
        for s in range(n_symbols):
            n_upd, n_fin = _close_series(
                s, t, watermark, tf_ns, slot_f, slot_i, series_i, touched,
                upd_i, upd_f, n_upd, fin_i, fin_f, n_fin,
            )
            for k in range(n_slots):
                start = slot_i[s, t, k, 0]
                if start != EMPTY and start + tf_ns[t] < due:
                    due = start + tf_ns[t]
        next_due[t] = due
    for j in range(n_upd):
        if upd_i[j, OUT_LIVE] == 0:
            continue
        flat = upd_i[j, OUT_SLOT]
        touched[flat] = 0
        k = flat % n_slots
        st = flat // n_slots
        _emit(slot_f, slot_i, st // n_tf, st % n_tf, k, flat, upd_i, upd_f, j)
    return n_upd, n_fin


@njit(cache=True, nogil=True)
def _touch(flat: int, touched: Ints, upd_i: Ints, n_upd: int) -> int:
    if touched[flat] == 0:
        upd_i[n_upd, OUT_SLOT] = flat
        upd_i[n_upd, OUT_LIVE] = 1
        n_upd += 1
        touched[flat] = n_upd
    return n_upd


@njit(cache=True, nogil=True)
def fold(
    start_at: int,
    sym: Int32s, ts: Ints, price: Floats, size: Floats, ids: Ints,
    str_seen: Bools, str_prev: Ints, known: Bools, status: Int8s,
    tf_ns: Ints, clock: Ints, next_due: Ints,
    slot_f: Floats, slot_i: Ints, series_i: Ints, touched: Ints,
    id_table: Ints,
    spike_f: Floats, spike_i: Ints, spike_params: Floats,
    upd_i: Ints, upd_f: Floats, n_upd: int,
    fin_i: Ints, fin_f: Floats, n_fin: int,
) -> tuple[int, int, int]:
    """Fold trades `start_at...` in arrival order, writing each trade's fate to `status`.

    Returns (index of the next trade to fold, updates, finals): it stops early when the output
    arrays could overflow, so the caller grows them and calls again from that index.

    `ids[i] >= 0` is an integer trade id, deduplicated in the id table. A negative id marks a
    string id, deduplicated by the caller's flags: `str_seen[i]` (accepted in an earlier call)
    and `str_prev[i]` (the previous trade of this batch with the same id, or -1). `known[i]`
    records that trade i's id is known once it is folded, for later repeats in the batch.
    """
    n_tf = tf_ns.shape[0]
    n_slots = slot_i.shape[2]
    headroom = n_tf * (n_slots + 2)
    lateness = clock[1]
    sigmas = spike_params[0]
    alpha = spike_params[1]
    warmup = spike_params[2]
    confirm = spike_params[3]
    for i in range(start_at, ts.shape[0]):
        if n_upd + headroom > upd_i.shape[0] or n_fin + headroom > fin_i.shape[0]:
            return i, n_upd, n_fin
        s = sym[i]
        t_ns = ts[i]
        if t_ns < clock[0] - lateness:
            status[i] = LATE
            continue
        if ids[i] >= 0:
            if _id_seen_or_insert(id_table, s, ids[i], t_ns):
                status[i] = DUPLICATE
                continue
            clock[2] += 1
        else:
            known[i] = True
            prev = str_prev[i]
            if str_seen[i] or (prev >= 0 and known[prev]):
                status[i] = DUPLICATE
                continue
        p = price[i]
        q = size[i]
        if sigmas > 0.0:
            logp = math.log(p)
            if spike_i[s, SP_COUNT] < 0:
                spike_i[s, SP_COUNT] = 0
                spike_f[s, SP_LAST] = logp
            else:
                r = logp - spike_f[s, SP_LAST]
                flagged = (
                    spike_i[s, SP_COUNT] >= warmup
                    and r * r > sigmas * sigmas * spike_f[s, SP_VAR]
                )
                if flagged and spike_i[s, SP_RUN] + 1 < confirm:
                    spike_i[s, SP_RUN] += 1
                    status[i] = SPIKE
                    continue
                if not flagged:
                    spike_f[s, SP_VAR] = (1.0 - alpha) * spike_f[s, SP_VAR] + alpha * r * r
                    spike_i[s, SP_COUNT] += 1
                spike_i[s, SP_RUN] = 0
                spike_f[s, SP_LAST] = logp
        status[i] = ACCEPTED
        if t_ns > clock[0]:
            clock[0] = t_ns
        watermark = clock[0] - lateness
        for t in range(n_tf):
            width = tf_ns[t]
            # Most trades land in their series' latest bucket: look for its slot first,
            # which costs no division (the same slot the division finds).
            latest = series_i[s, t, 0]
            k = -1
            if latest != EMPTY and t_ns >= latest and t_ns - latest < width:
                for j in range(n_slots):
                    if slot_i[s, t, j, 0] == latest:
                        k = j
                        break
            if k >= 0:
                start = latest
            else:
                start = t_ns - t_ns % width
                k = (start // width) % n_slots
            flat = (s * n_tf + t) * n_slots + k
            if slot_i[s, t, k, 0] == start:
                if p > slot_f[s, t, k, 1]:
                    slot_f[s, t, k, 1] = p
                if p < slot_f[s, t, k, 2]:
                    slot_f[s, t, k, 2] = p
                slot_f[s, t, k, 3] = p
                slot_f[s, t, k, 4] += q
                slot_f[s, t, k, 5] += p * q
                slot_i[s, t, k, 1] += 1
            else:
                if slot_i[s, t, k, 0] != EMPTY:
                    # The slot's old bucket is final by now (see the module docstring):
                    # finalise its series, so final candles come out in time order.
                    n_upd, n_fin = _close_series(
                        s, t, watermark, tf_ns, slot_f, slot_i, series_i, touched,
                        upd_i, upd_f, n_upd, fin_i, fin_f, n_fin,
                    )
                    if slot_i[s, t, k, 0] != EMPTY:
                        raise RuntimeError("candle slot reused before its bucket was final")
                latest = series_i[s, t, 0]
                flags = 0
                if latest == EMPTY or start > latest:
                    if latest != EMPTY and series_i[s, t, 1] == 1:
                        # A trade of a later bucket closes the forming candle.
                        lk = (latest // width) % n_slots
                        slot_i[s, t, lk, 2] |= CLOSED
                        n_upd = _touch((s * n_tf + t) * n_slots + lk, touched, upd_i, n_upd)
                    series_i[s, t, 0] = start
                    series_i[s, t, 1] = 1
                else:
                    flags = CLOSED  # a late trade opening a bucket that had none: closed
                slot_i[s, t, k, 0] = start
                slot_i[s, t, k, 1] = 1
                slot_i[s, t, k, 2] = flags
                slot_f[s, t, k, 0] = p
                slot_f[s, t, k, 1] = p
                slot_f[s, t, k, 2] = p
                slot_f[s, t, k, 3] = p
                slot_f[s, t, k, 4] = q
                slot_f[s, t, k, 5] = p * q
                if start + width < next_due[t]:
                    next_due[t] = start + width
            n_upd = _touch(flat, touched, upd_i, n_upd)
    return ts.shape[0], n_upd, n_fin
