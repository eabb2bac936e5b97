"""The CPU engine of the analytic backend: one fused numba kernel over blocks of rollouts.

Layout (measured, see docs/physics.md): ``prange`` over blocks of ``BLOCK`` rollouts; inside a
block, time is the outer loop and rollouts the inner loop, with the block's state in one local
work array, so LLVM vectorises the common "nothing happens" step (an RK4 step plus cheap tests)
across rollouts. A rollout whose step may hold an event (a contact, a stop, the start of rolling,
leaving a table, approaching a keep-out zone) takes the scalar slow path, which runs
``physics.model.advance_segment`` -- the same function the torch engine runs on tensors -- until the
step is done. The fast path only ever skips work the slow path would have found to be a no-op
(test_analytic checks that switching it off changes nothing).

What made it fast (N = 1024, 2 s, the benchmark scene, one thread, this 2-core AMD EPYC; min and
median of 3 processes): no reference counting in the block function (10.5-10.7 -> 6.2 ms); a flat
work array with compile-time row offsets, passes that read before they write and read nothing but
the work array per rollout, a flight-only free step for blocks without supported rollouts and the
first sample of a step evaluated vectorised (-> 4.5-5.0 ms); keep-out rows passed as views of their
own (-> 3.7-3.9 ms); ``insert_event`` writing only the slots that change (-> 3.4-4.3 ms). Flight
alone (no events): 3.8 -> 0.7 ms. What is left is mostly the scalar slow path (about 5 eventful
steps per rollout, 1.8 segments each: RK4, root finding, keep-out clearance, event bookkeeping) and
the calls into ``advance_segment``, whose ~190 argument words (18 arrays passed by value) are copied
on every call. The kernels call the block function as compiled on its own, not their re-optimised
copies of it (``_load_block``: 4.2-4.4 -> 3.2-3.4 ms from the cache).

The kernel is compiled once per source version and cached on disk under
``~/.cache/world_irp/numba/<hash>`` (or ``$WORLD_IRP_NUMBA_CACHE/<hash>``), the hash covering the
physics, ops and kernel sources: numba itself only watches the kernel's own file, not the inlined
functions it calls.
"""
from __future__ import annotations

import contextlib
import hashlib
import os
import sys
import threading
from pathlib import Path

import numba
import numpy as np
from numba import prange
from numba.core.caching import NullCache

from ..physics import model, ops
from . import base
from ..physics.model import (BIG, MAX_SEGMENTS, MODE_FLIGHT, MODE_SUPPORTED, TINY, V_REST, advance_segment,
                             box_distance, free_step, gap3, grown_box, init_rollout, rk4, sample_point, write_samples)


# Rollouts per block, fixed at compile time. With 8 the passes were not vectorised; 32, 64, 128 and
# 256 came within 10 % of each other (whole kernel, N = 1024 scene: 1.7-1.9 ms on two threads), and
# 64 keeps 16 blocks for the threads at N = 1024. WORLD_IRP_NUMBA_BLOCK overrides it (benchmarks).
BLOCK = int(os.environ.get("WORLD_IRP_NUMBA_BLOCK", "64"))

# A block's local work array ``W`` is flat: row r of BLOCK values starts at ``r * BLOCK``, and the
# names below are those offsets (``W[PX + i]`` is lane i's x). Rows: state, state at the step
# start, flags, per-rollout constants, the first sample due in the step; then, from ``ZONES``, two
# rows per keep-out zone z: the distance to it (``ZONES + 2 z BLOCK``) and the clearance so far
# (``ZONES + (2 z + 1) BLOCK``, the block's copy of ``ko_c``). With compile-time offsets LLVM
# proves that rows never overlap and vectorises the passes below without run-time alias checks
# (a 2-D array with a run-time row length needed about 100 of them per pass: the flight step took
# 8.9 instead of 4.1 ns per rollout). The passes read nothing else per rollout: an input array
# indexed by ``b * BLOCK + i`` was read with gather instructions.
(PX, PY, PZ, VX, VY, VZ, WW, MD, SP, MU, KS, EV, TT, T1,
 OPX, OPY, OPZ, OVX, OVY, OVZ, OWW, OTT,                 # state at the step start
 LIVE, QUIET, WORK,                                      # flags of the step
 TR, ROLLS, CRR, KD, HX, HY, HZ,                         # per-rollout constants
 TS, SPX, SPY, SPZ, SVX, SVY, SVZ,                       # next sample time (BIG: none left), its values
 ZONES) = range(0, 40 * BLOCK, BLOCK)


# The clearance row of a zone already entered: below every clearance (0 once entered), so the
# minimum in ``_quiet_clearance`` keeps it; read back as 0.
ENTERED = -1.0


def _zone_at(z):
    """Where the two rows of keep-out zone ``z`` (distance, then clearance so far) start in ``W``."""
    return ZONES + 2 * z * BLOCK


def _work_array(n_z):
    """A block's zeroed work array for ``n_z`` keep-out zones."""
    return np.zeros(_zone_at(n_z))


def _start_step(W, nb):
    """0. Keep the step's start state (the slow path starts from it). A loop of its own: fused into
    the free step, LLVM left that loop scalar."""
    for i in range(nb):
        W[OPX + i] = W[PX + i]
        W[OPY + i] = W[PY + i]
        W[OPZ + i] = W[PZ + i]
        W[OVX + i] = W[VX + i]
        W[OVY + i] = W[VY + i]
        W[OVZ + i] = W[VZ + i]
        W[OWW + i] = W[WW + i]
        W[OTT + i] = W[TT + i]


def _free_steps(W, nb, off, horizon, gx, gy, gz, ground, use_fast):
    """1. Free step of every rollout, in place (vectorised), and the cheap event tests. (Like every
    pass here it reads all it needs before its first write: a load after a store to another row
    made LLVM keep the loop scalar.)"""
    for i in range(nb):
        t1 = min(W[TR + i] + off, horizon)
        h = max(t1 - W[TT + i], 0.0)
        hz = W[HZ + i]
        p1x, p1y, p1z, v1x, v1y, v1z, w1, s1, flight, sup_m, stop, slip_end = free_step(
            W[PX + i], W[PY + i], W[PZ + i], W[VX + i], W[VY + i], W[VZ + i], W[WW + i], W[MD + i], W[ROLLS + i],
            W[MU + i], W[CRR + i], W[KD + i], gx, gy, gz, h)
        bad = stop | slip_end | (flight & (p1z - hz - ground < 0.0)) | (sup_m & (s1 < V_REST))
        W[T1 + i] = t1
        W[PX + i] = p1x
        W[PY + i] = p1y
        W[PZ + i] = p1z
        W[VX + i] = v1x
        W[VY + i] = v1y
        W[VZ + i] = v1z
        W[WW + i] = w1
        W[LIVE + i] = 1.0 if h > 0.0 else 0.0
        W[QUIET + i] = 1.0 if (use_fast & (h > 0.0) & (not bad)) else 0.0


def _flight_steps(W, nb, off, horizon, gx, gy, gz, ground, use_fast):
    """1'. ``_free_steps`` for a block without supported rollouts. In flight ``free_step`` is
    ``rk4`` with full gravity, drag k and no Coulomb term (c = 0), whose support ends cannot
    happen; a resting rollout keeps its state. Without the supported-motion terms the step needs 4
    square roots and no division instead of 6 and 4."""
    for i in range(nb):
        px = W[PX + i]
        py = W[PY + i]
        pz = W[PZ + i]
        vx = W[VX + i]
        vy = W[VY + i]
        vz = W[VZ + i]
        t1 = min(W[TR + i] + off, horizon)
        h = max(t1 - W[TT + i], 0.0)
        hz = W[HZ + i]
        flight = W[MD + i] == MODE_FLIGHT
        p1x, p1y, p1z, v1x, v1y, v1z = rk4(px, py, pz, vx, vy, vz, gx, gy, gz, 0.0, W[KD + i], h)
        bad = flight & (p1z - hz - ground < 0.0)
        W[T1 + i] = t1
        W[PX + i] = p1x if flight else px
        W[PY + i] = p1y if flight else py
        W[PZ + i] = p1z if flight else pz
        W[VX + i] = v1x if flight else vx
        W[VY + i] = v1y if flight else vy
        W[VZ + i] = v1z if flight else vz
        W[LIVE + i] = 1.0 if h > 0.0 else 0.0
        W[QUIET + i] = 1.0 if (use_fast & (h > 0.0) & (not bad)) else 0.0


def _lane_chord_and_box(W, i, ax, ay, az, bx, by, bz):
    """Lane ``i``'s box (a, b) grown by its half extents, and its chord of the step (start, end)."""
    return (ax - W[HX + i], ay - W[HY + i], az - W[HZ + i], bx + W[HX + i], by + W[HY + i], bz + W[HZ + i],
            W[OPX + i], W[OPY + i], W[OPZ + i], W[PX + i], W[PY + i], W[PZ + i])


def _obstacle_checks(W, nb, kk, omin, omax):
    """2. The step's chord must keep its box clear of obstacle ``kk`` expanded by the half extents,
    and a supported object must stay over its support's footprint."""
    ax, ay, az = omin[0, kk], omin[1, kk], omin[2, kk]
    bx, by, bz = omax[0, kk], omax[1, kk], omax[2, kk]
    for i in range(nb):
        quiet = W[QUIET + i]
        lox, loy, loz, hix, hiy, hiz, x0, y0, z0, x1, y1, z1 = _lane_chord_and_box(W, i, ax, ay, az, bx, by, bz)
        overlap = ((min(x0, x1) < hix) & (max(x0, x1) > lox) & (min(y0, y1) < hiy) & (max(y0, y1) > loy)
                   & (min(z0, z1) < hiz) & (max(z0, z1) > loz))
        on_k = (W[MD + i] == MODE_SUPPORTED) & (W[SP + i] == kk)
        over = (x1 > lox) & (x1 < hix) & (y1 > loy) & (y1 < hiy)
        W[QUIET + i] = 0.0 if (overlap | (on_k & (not over))) else quiet


def _zone_checks(W, Z, nb, z, zmin, zmax):
    """3. No entry into keep-out zone ``z`` and no closest approach inside the step that could lower
    the clearance found so far (``zone_chord``'s test: its lower bound (D0 + D1 - L)/2 below the
    clearance). ``Z`` is the zone's two rows of ``W`` (distance, clearance): a view of its own, as
    a run-time offset into ``W`` needed more run-time alias checks than LLVM allows. D0, the
    distance at the step start, is the row's value from the step before; the bound is compared
    without the chord's square root (D0 + D1 - 2 clearance < L). Leaves D1 in the row. A zone
    already entered (clearance row ``ENTERED``) needs no test; one touched but not entered
    (clearance 0) takes the slow path."""
    ax, ay, az = zmin[0, z], zmin[1, z], zmin[2, z]
    bx, by, bz = zmax[0, z], zmax[1, z], zmax[2, z]
    for i in range(nb):
        quiet = W[QUIET + i]
        d0 = Z[i]
        best = Z[BLOCK + i]
        lox, loy, loz, hix, hiy, hiz, x0, y0, z0, x1, y1, z1 = _lane_chord_and_box(W, i, ax, ay, az, bx, by, bz)
        e0x, e0y, e0z = gap3(x0, y0, z0, lox, loy, loz, hix, hiy, hiz)
        e1x, e1y, e1z = gap3(x1, y1, z1, lox, loy, loz, hix, hiy, hiz)
        dx = x1 - x0
        dy = y1 - y0
        dz = z1 - z0
        d1 = np.sqrt(e1x * e1x + e1y * e1y + e1z * e1z)
        interior = (e0x * dx + e0y * dy + e0z * dz > 0.0) & (e1x * dx + e1y * dy + e1z * dz < 0.0)
        gap = d0 + d1 - 2.0 * best
        below = (gap < 0.0) | (gap * gap < dx * dx + dy * dy + dz * dz)
        # Touched but not entered (clearance 0): the interior test is blind from the touching point.
        bad = (best == 0.0) | ((best > 0.0) & ((d1 <= 0.0) | (interior & below)))
        Z[i] = d1
        W[QUIET + i] = 0.0 if bad else quiet


def _finish_quiet(W, nb):
    """4a. Quiet steps are done: advance their time. Marks the rollouts the scalar loop must visit
    (a sample due inside the step, or the slow path); returns how many there are and how many
    rollouts the step moved at all."""
    n_work = 0.0
    n_live = 0.0
    for i in range(nb):
        quiet = W[QUIET + i] != 0.0
        live = W[LIVE + i]
        tt = W[TT + i]
        t1 = W[T1 + i]
        due = quiet & (W[TS + i] <= t1)
        work = 1.0 if due else (0.0 if quiet else live)
        W[WORK + i] = work
        n_work += work
        n_live += live
        W[TT + i] = t1 if quiet else tt
    return n_work, n_live


def _step_samples(W, nb):
    """4b. The first sample due inside each step (``TS``) on its Hermite cubic, vectorised, for the
    scalar loop to store (a loop of its own: with 4a it stayed scalar)."""
    for i in range(nb):
        t0 = W[OTT + i]
        seg_h = max(W[T1 + i] - t0, 0.0)
        qx, qy, qz, ux, uy, uz = sample_point(t0, seg_h, 1.0 / max(seg_h, TINY), W[TS + i], W[OPX + i], W[OPY + i],
                                              W[OPZ + i], W[OVX + i], W[OVY + i], W[OVZ + i], W[PX + i], W[PY + i],
                                              W[PZ + i], W[VX + i], W[VY + i], W[VZ + i])
        W[SPX + i] = qx
        W[SPY + i] = qy
        W[SPZ + i] = qz
        W[SVX + i] = ux
        W[SVY + i] = uy
        W[SVZ + i] = uz


def _quiet_clearance(W, Z, nb):
    """4c. Clearance to a zone (its rows ``Z``) after a quiet step: the distance at its end (the
    chord's minimum is at an end, or cannot beat the clearance found so far)."""
    for i in range(nb):
        quiet = W[QUIET + i] != 0.0
        d = Z[i]
        best = Z[BLOCK + i]
        Z[BLOCK + i] = min(best, d) if quiet else best


def _rollout_block(b, W, pos0, vel0, t_rel, hext, rolls, kdrag, rest_c, fric, crr,
                   gx, gy, gz, ground, e_g, mu_g, omin, omax, oe, omu, zmin, zmax,
                   tsamp, offs, horizon, nsmax, use_fast,
                   pos_s, vel_s, land_t, land_p, rest_t, ko_t, ko_c,
                   ev_kind, ev_idx, ev_t, ev_p, ev_cnt, fin_p, fin_v, fin_mode, ks_out, status):
    """Rollouts ``b * BLOCK ...`` : local state in ``W`` (zeros), time outer, rollouts inner (see
    the module doc).

    The free step updates the state rows in place; the state at the step start is kept in the
    ``O*`` rows for the slow path.
    """
    n = pos0.shape[1]
    n_z = zmin.shape[1]
    n_steps = offs.shape[0]
    n_t = tsamp.shape[0]
    i0 = b * BLOCK
    nb = min(BLOCK, n - i0)
    for i in range(nb):
        c = i0 + i
        x0, y0, z0, k0, e0 = init_rollout(pos0[0, c], pos0[1, c], pos0[2, c], hext[0, c], hext[1, c], hext[2, c],
                                          t_rel[c], ground, omin, omax, zmin, zmax, tsamp, c,
                                          pos_s, vel_s, ko_t, ko_c, ev_kind, ev_idx, ev_t, ev_p)
        W[PX + i] = x0
        W[PY + i] = y0
        W[PZ + i] = z0
        W[VX + i] = vel0[0, c]
        W[VY + i] = vel0[1, c]
        W[VZ + i] = vel0[2, c]
        W[WW + i] = 0.0
        W[MD + i] = MODE_FLIGHT
        W[SP + i] = -1.0
        W[MU + i] = 0.0
        W[KS + i] = k0
        W[EV + i] = e0
        W[TT + i] = t_rel[c]
        W[TR + i] = t_rel[c]
        W[ROLLS + i] = rolls[c]
        W[CRR + i] = crr[c]
        W[KD + i] = kdrag[c]
        W[HX + i] = hext[0, c]
        W[HY + i] = hext[1, c]
        W[HZ + i] = hext[2, c]
        W[TS + i] = tsamp[int(k0)] if k0 < n_t else BIG
        _load_zones(W, i, c, x0, y0, z0, zmin, zmax, ko_t, ko_c)
    n_sup = 0      # supported rollouts in the block (only the slow path changes modes)
    for j in range(n_steps):
        _start_step(W, nb)
        if n_sup == 0:
            _flight_steps(W, nb, offs[j], horizon, gx, gy, gz, ground, use_fast)
        else:
            _free_steps(W, nb, offs[j], horizon, gx, gy, gz, ground, use_fast)
        for kk in range(omin.shape[1]):
            _obstacle_checks(W, nb, kk, omin, omax)
        for z in range(n_z):
            _zone_checks(W, W[_zone_at(z):_zone_at(z + 1)], nb, z, zmin, zmax)
        # 4. finish quiet steps (vectorised); store their samples, run the slow path for the others
        n_work, n_live = _finish_quiet(W, nb)
        if n_live == 0.0:       # every rollout of the block is at the horizon (step ends only grow)
            break
        for z in range(n_z):
            _quiet_clearance(W, W[_zone_at(z):_zone_at(z + 1)], nb)
        if n_work == 0.0:
            continue
        _step_samples(W, nb)
        for i in range(nb):
            if W[WORK + i] == 0.0:
                continue
            c = i0 + i
            t0 = W[OTT + i]
            t1 = W[T1 + i]
            if W[QUIET + i] != 0.0:
                k = int(W[KS + i])
                pos_s[k, 0, c] = W[SPX + i]
                pos_s[k, 1, c] = W[SPY + i]
                pos_s[k, 2, c] = W[SPZ + i]
                vel_s[k, 0, c] = W[SVX + i]
                vel_s[k, 1, c] = W[SVY + i]
                vel_s[k, 2, c] = W[SVZ + i]
                kv = k + 1.0
                if nsmax > 2:       # more samples than one may fall inside a step
                    kv = write_samples(True, t0, t1, max(t1 - t0, 0.0), W[OPX + i], W[OPY + i], W[OPZ + i],
                                       W[OVX + i], W[OVY + i], W[OVZ + i], W[PX + i], W[PY + i], W[PZ + i],
                                       W[VX + i], W[VY + i], W[VZ + i], kv, tsamp, nsmax, c, pos_s, vel_s)
                W[KS + i] = kv
                W[TS + i] = tsamp[int(kv)] if kv < n_t else BIG
            else:
                t = t0
                x, y, zz = W[OPX + i], W[OPY + i], W[OPZ + i]
                ux, uy, uz, wv = W[OVX + i], W[OVY + i], W[OVZ + i], W[OWW + i]
                mv, sv, muv, kv, ev = W[MD + i], W[SP + i], W[MU + i], W[KS + i], W[EV + i]
                n_sup -= 1 if mv == MODE_SUPPORTED else 0
                for z in range(n_z):
                    ko_c[z, c] = max(W[_zone_at(z) + BLOCK + i], 0.0)
                it = 0
                while t < t1 and it < MAX_SEGMENTS:
                    (t, x, y, zz, ux, uy, uz, wv, mv, sv, muv, kv, ev) = advance_segment(
                        True, t, t1, x, y, zz, ux, uy, uz, wv, mv, sv, muv, kv, ev,
                        hext[0, c], hext[1, c], hext[2, c], kdrag[c], rest_c[c], fric[c], crr[c], rolls[c],
                        gx, gy, gz, ground, e_g, mu_g, omin, omax, oe, omu, zmin, zmax,
                        tsamp, nsmax, c, pos_s, vel_s, land_t, land_p, rest_t, ko_t, ko_c,
                        ev_kind, ev_idx, ev_t, ev_p)
                    it += 1
                if t < t1:
                    status[c] = 1.0
                n_sup += 1 if mv == MODE_SUPPORTED else 0
                W[PX + i], W[PY + i], W[PZ + i] = x, y, zz
                W[VX + i], W[VY + i], W[VZ + i], W[WW + i] = ux, uy, uz, wv
                W[MD + i], W[SP + i], W[MU + i], W[KS + i], W[EV + i] = mv, sv, muv, kv, ev
                W[TT + i] = t
                W[TS + i] = tsamp[int(kv)] if kv < n_t else BIG
                _load_zones(W, i, c, x, y, zz, zmin, zmax, ko_t, ko_c)
    for i in range(nb):
        c = i0 + i
        fin_p[0, c] = W[PX + i]
        fin_p[1, c] = W[PY + i]
        fin_p[2, c] = W[PZ + i]
        fin_v[0, c] = W[VX + i]
        fin_v[1, c] = W[VY + i]
        fin_v[2, c] = W[VZ + i]
        fin_mode[c] = W[MD + i]
        ks_out[c] = W[KS + i]
        ev_cnt[c] = W[EV + i]
        for z in range(n_z):
            ko_c[z, c] = max(W[_zone_at(z) + BLOCK + i], 0.0)


def _load_zones(W, i, c, x, y, z, zmin, zmax, ko_t, ko_c):
    """Zone rows of lane ``i`` (rollout ``c``) at ``(x, y, z)``, after the release or the slow
    path: the distance to each keep-out zone (the start distance of the next step's test) and
    the clearance so far from ``ko_c``, or ``ENTERED`` once ``ko_t`` holds an entry."""
    for zi in range(zmin.shape[1]):
        lox, loy, loz, hix, hiy, hiz = grown_box(zmin, zmax, zi, W[HX + i], W[HY + i], W[HZ + i])
        W[_zone_at(zi) + i] = box_distance(x, y, z, lox, loy, loz, hix, hiy, hiz)
        W[_zone_at(zi) + BLOCK + i] = ENTERED if ko_t[zi, c] >= 0.0 else ko_c[zi, c]


def _rollout_kernel(pos0, vel0, t_rel, hext, rolls, kdrag, rest_c, fric, crr,
                    gx, gy, gz, ground, e_g, mu_g, omin, omax, oe, omu, zmin, zmax,
                    tsamp, offs, horizon, nsmax, use_fast,
                    pos_s, vel_s, land_t, land_p, rest_t, ko_t, ko_c,
                    ev_kind, ev_idx, ev_t, ev_p, ev_cnt, fin_p, fin_v, fin_mode, ks_out, status):
    n_blocks = (pos0.shape[1] + BLOCK - 1) // BLOCK
    for b in prange(n_blocks):
        _block_jit(np.int64(b), _work_array(zmin.shape[1]), pos0, vel0, t_rel, hext, rolls, kdrag,
                   rest_c, fric, crr, gx, gy, gz, ground, e_g, mu_g, omin, omax, oe, omu, zmin, zmax,
                   tsamp, offs, horizon, nsmax, use_fast,
                   pos_s, vel_s, land_t, land_p, rest_t, ko_t, ko_c,
                   ev_kind, ev_idx, ev_t, ev_p, ev_cnt, fin_p, fin_v, fin_mode, ks_out, status)


def _rollout_kernel_serial(pos0, vel0, t_rel, hext, rolls, kdrag, rest_c, fric, crr,
                           gx, gy, gz, ground, e_g, mu_g, omin, omax, oe, omu, zmin, zmax,
                           tsamp, offs, horizon, nsmax, use_fast,
                           pos_s, vel_s, land_t, land_p, rest_t, ko_t, ko_c,
                           ev_kind, ev_idx, ev_t, ev_p, ev_cnt, fin_p, fin_v, fin_mode, ks_out, status):
    """The same loop without threads, for batches of one block (no thread start-up or wake-up)."""
    n_blocks = (pos0.shape[1] + BLOCK - 1) // BLOCK
    for b in range(n_blocks):
        _block_jit(np.int64(b), _work_array(zmin.shape[1]), pos0, vel0, t_rel, hext, rolls, kdrag,
                   rest_c, fric, crr, gx, gy, gz, ground, e_g, mu_g, omin, omax, oe, omu, zmin, zmax,
                   tsamp, offs, horizon, nsmax, use_fast,
                   pos_s, vel_s, land_t, land_p, rest_t, ko_t, ko_c,
                   ev_kind, ev_idx, ev_t, ev_p, ev_cnt, fin_p, fin_v, fin_mode, ks_out, status)


# Each vectorised pass is its own function: inside the block function, values of one loop stayed
# alive into the next (Python scoping) and LLVM refused to vectorise ("value ... used outside the
# loop").
_work_array = numba.njit(_work_array)
_zone_at = numba.njit(_zone_at)
_start_step = numba.njit(fastmath=True, error_model="numpy")(_start_step)
_free_steps = numba.njit(fastmath=True, error_model="numpy")(_free_steps)
_flight_steps = numba.njit(fastmath=True, error_model="numpy")(_flight_steps)
# Inlined at the IR level into the passes, like the model's hot equations, so they stay vectorised.
_lane_chord_and_box = model.physics(_lane_chord_and_box)
_obstacle_checks = numba.njit(fastmath=True, error_model="numpy")(_obstacle_checks)
_zone_checks = numba.njit(fastmath=True, error_model="numpy")(_zone_checks)
_finish_quiet = numba.njit(fastmath=True, error_model="numpy")(_finish_quiet)
_step_samples = numba.njit(fastmath=True, error_model="numpy")(_step_samples)
_quiet_clearance = numba.njit(fastmath=True, error_model="numpy")(_quiet_clearance)
_load_zones = numba.njit(fastmath=True, error_model="numpy")(_load_zones)

# The block body as its own dispatcher: called from the prange loop it is compiled once (an
# overload would be compiled again for the parallel gufunc), and inlined into no one. It runs
# without numba's reference counting (``_nrt=False``; the code it calls then has none either, and
# its work array comes from the caller): every call passing arrays increfed and decrefed each one,
# with an atomic instruction on memory the threads share, and that took about half of the kernel's
# time (N = 1024, one thread: 10.8 -> 6.4 ms).
_block_jit = numba.njit(fastmath=True, error_model="numpy", _nrt=False)(_rollout_block)


# ------------------------------------------------------------------------------ compile and cache
# base.py too: the model compiles its event and mode numbers into the kernel as constants.
_SOURCES = (model.__file__, ops.__file__, base.__file__, __file__)
_lock = threading.Lock()
_kernels: dict[bool, object] = {}
# numba's parallel kernels are not re-entrant across threads: every call goes through this lock.
CALL_LOCK = threading.Lock()


def source_hash() -> str:
    """Hash of everything compiled into the kernel (sources, numba and Python versions)."""
    digest = hashlib.sha256()
    for path in _SOURCES:
        digest.update(Path(path).read_bytes())
    digest.update(f"numba {numba.__version__} numpy {np.__version__} py {sys.version} block {BLOCK}".encode())
    return digest.hexdigest()[:16]


def cache_dir() -> Path:
    """Where the compiled kernel of this source version lives."""
    base = os.environ.get("WORLD_IRP_NUMBA_CACHE") or os.path.join(
        os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache"), "world_irp", "numba")
    return Path(base) / source_hash()


def kernel(parallel: bool = True, args: tuple | None = None):
    """The numba dispatcher of the rollout kernel (``prange`` over blocks, or a plain loop),
    caching into ``cache_dir()``; compiled or loaded from the cache on its first call. ``args``,
    the kernel's arguments, give the block function's signature (see ``_load_block``)."""
    with _lock:
        if parallel not in _kernels:
            directory = cache_dir()
            directory.mkdir(parents=True, exist_ok=True)
            with _numba_cache_dir(directory):
                if args is not None:
                    _load_block(args)
                if parallel:
                    disp = numba.njit(parallel=True, fastmath=True, error_model="numpy", cache=True)(_rollout_kernel)
                else:
                    disp = numba.njit(fastmath=True, error_model="numpy", cache=True)(_rollout_kernel_serial)
            _kernels[parallel] = disp
        return _kernels[parallel]


def _load_block(args: tuple) -> None:
    """Compile the block function on its own, or load that compile from the cache, before a kernel.

    Why: a kernel's library holds a copy of the block function linked in and optimised again with
    it, and that copy ran 20-25 % slower (N = 1024 scene, one thread: 4.2-4.4 vs 3.4-3.5 ms). The
    copy is a weak definition, and LLVM's JIT links a weak definition to a strong one of the same
    name already loaded: the block function compiled alone, when it is loaded first. The names
    match because the block function's cache entry and the kernels' come from the same compiling
    process (numba's symbol names carry a per-process id). When they do not (an entry missing),
    the kernel calls its own copy: slower, same results.
    """
    if isinstance(_block_jit._cache, NullCache):
        _block_jit.enable_caching()
    _block_jit.compile((numba.int64, numba.float64[::1]) + tuple(numba.typeof(a) for a in args))


@contextlib.contextmanager
def _numba_cache_dir(directory: Path):
    """numba fixes a dispatcher's cache locator when caching is enabled: point it at ``directory``."""
    from numba.core import config

    previous = config.CACHE_DIR
    config.CACHE_DIR = str(directory)
    try:
        yield
    finally:
        config.CACHE_DIR = previous


def run(parallel: bool, *args) -> None:
    """Run the kernel (``parallel``: threads over blocks) on ``args``, in ``_rollout_kernel``'s
    order; loads or compiles it on first use."""
    kern = kernel(parallel, args)
    with CALL_LOCK:
        kern(*args)
