"""The CPU engine of the analytic backend: one fused numba kernel over blocks of rollouts.

Layout (measured, see docs/physics.md): ``prange`` over blocks of ``BLOCK`` rollouts; inside a
block, time is the outer loop and rollouts the inner loop, with the block's state in local arrays,
so LLVM vectorises the common "nothing happens" step (an RK4 step plus cheap tests) across
rollouts. A rollout whose step may hold an event (a contact, a stop, the start of rolling, leaving
a table, approaching a keep-out zone) takes the scalar slow path, which runs
``physics.model.advance_segment`` -- the same function the torch engine runs on tensors -- until the
step is done. The fast path only ever skips work the slow path would have found to be a no-op
(test_analytic checks that switching it off changes nothing).

The kernel is compiled once per source version and cached on disk under
``~/.cache/world_irp/numba/<hash>`` (or ``$WORLD_IRP_NUMBA_CACHE/<hash>``), the hash covering the
physics, ops and kernel sources: numba itself only watches the kernel's own file, not the inlined
functions it calls.
"""
from __future__ import annotations

import hashlib
import os
import sys
import threading
from pathlib import Path

import numba
import numpy as np
from numba import prange

from ..physics import model, ops
from ..physics.model import (MAX_SEGMENTS, MODE_FLIGHT, MODE_SUPPORTED, V_REST, advance_segment, free_step,
                             init_rollout, write_samples, zone_chord)


# Rows of a block's local work array ``W`` (rows x BLOCK): state, state at the step start, flags,
# and one row per keep-out zone for the distance at the step end. One allocation with a
# compile-time row length lets LLVM prove that rows never overlap; with one array per row it gave
# up vectorising ("too many memory checks needed").
PX, PY, PZ, VX, VY, VZ, WW, MD, SP, MU, KS, EV, TT, T1 = range(14)
OPX, OPY, OPZ, OVX, OVY, OVZ, OWW = range(14, 21)
LIVE, QUIET = 21, 22
TR, ROLLS, CRR, KD, HZ = range(23, 28)     # per-rollout constants the free step reads
OTT, DUE = 28, 29
N_ROWS = 30
# Rollouts per block, fixed at compile time (measured for the free step alone, 1024 x 121 steps, one
# thread: 8 -> 5.0 ms (not vectorised), 32 -> 1.03 ms, 64 -> 0.61 ms, 256 -> 0.57 ms; 64 keeps 16
# blocks for the threads at N = 1024). WORLD_IRP_NUMBA_BLOCK overrides it (benchmarks).
BLOCK = int(os.environ.get("WORLD_IRP_NUMBA_BLOCK", "64"))


def _start_step(W, nb):
    """0. Keep the step's start state (the slow path starts from it)."""
    for i in range(nb):
        W[OPX, i] = W[PX, i]
        W[OPY, i] = W[PY, i]
        W[OPZ, i] = W[PZ, i]
        W[OVX, i] = W[VX, i]
        W[OVY, i] = W[VY, i]
        W[OVZ, i] = W[VZ, i]
        W[OWW, i] = W[WW, i]
        W[OTT, i] = W[TT, i]


def _free_steps(W, nb, off, horizon, gx, gy, gz, ground, use_fast):
    """1. Free step of every rollout, in place (vectorised), and the cheap event tests. Reads only
    ``W`` (its own copies of the per-rollout constants): with the input arrays too, LLVM wanted
    more run-time alias checks than it allows and left the loop scalar."""
    for i in range(nb):
        t1 = min(W[TR, i] + off, horizon)
        h = max(t1 - W[TT, i], 0.0)
        W[T1, i] = t1
        p1x, p1y, p1z, v1x, v1y, v1z, w1, s1, flight, sup_m, stop, slip_end = free_step(
            W[PX, i], W[PY, i], W[PZ, i], W[VX, i], W[VY, i], W[VZ, i], W[WW, i], W[MD, i], W[ROLLS, i], W[MU, i],
            W[CRR, i], W[KD, i], gx, gy, gz, h)
        W[PX, i] = p1x
        W[PY, i] = p1y
        W[PZ, i] = p1z
        W[VX, i] = v1x
        W[VY, i] = v1y
        W[VZ, i] = v1z
        W[WW, i] = w1
        bad = stop | slip_end | (flight & (p1z - W[HZ, i] - ground < 0.0)) | (sup_m & (s1 < V_REST))
        W[LIVE, i] = 1.0 if h > 0.0 else 0.0
        W[QUIET, i] = 1.0 if (use_fast & (h > 0.0) & (not bad)) else 0.0


def _obstacle_checks(W, nb, i0, kk, hext, omin, omax):
    """2. The step's chord must keep its box clear of obstacle ``kk`` expanded by the half extents,
    and a supported object must stay over its support's footprint."""
    for i in range(nb):
        c = i0 + i
        lox = omin[0, kk] - hext[0, c]
        loy = omin[1, kk] - hext[1, c]
        loz = omin[2, kk] - hext[2, c]
        hix = omax[0, kk] + hext[0, c]
        hiy = omax[1, kk] + hext[1, c]
        hiz = omax[2, kk] + hext[2, c]
        x0 = W[OPX, i]
        y0 = W[OPY, i]
        z0 = W[OPZ, i]
        x1 = W[PX, i]
        y1 = W[PY, i]
        z1 = W[PZ, i]
        overlap = ((min(x0, x1) < hix) & (max(x0, x1) > lox) & (min(y0, y1) < hiy) & (max(y0, y1) > loy)
                   & (min(z0, z1) < hiz) & (max(z0, z1) > loz))
        on_k = (W[MD, i] == MODE_SUPPORTED) & (W[SP, i] == kk)
        over = (x1 > lox) & (x1 < hix) & (y1 > loy) & (y1 < hiy)
        W[QUIET, i] = 0.0 if (overlap | (on_k & (not over))) else W[QUIET, i]


def _zone_checks(W, nb, i0, z, hext, zmin, zmax, ko_c):
    """3. No entry into keep-out zone ``z`` and no closest approach inside the step that could lower
    the clearance found so far; keeps the distance at the step end."""
    for i in range(nb):
        c = i0 + i
        dd, interior, lb = zone_chord(W[OPX, i], W[OPY, i], W[OPZ, i], W[PX, i], W[PY, i], W[PZ, i],
                                      zmin[0, z] - hext[0, c], zmin[1, z] - hext[1, c], zmin[2, z] - hext[2, c],
                                      zmax[0, z] + hext[0, c], zmax[1, z] + hext[1, c], zmax[2, z] + hext[2, c])
        W[N_ROWS + z, i] = dd
        best = ko_c[z, c]
        bad = (best > 0.0) & ((dd <= 0.0) | (interior & (lb < best)))
        W[QUIET, i] = 0.0 if bad else W[QUIET, i]


def _finish_quiet(W, nb, n_t, tsamp):
    """4a. Quiet steps are done: advance their time; flag those with a sample time inside."""
    for i in range(nb):
        quiet = W[QUIET, i] != 0.0
        t1 = W[T1, i]
        k = W[KS, i]
        due = quiet & (k < n_t) & (tsamp[int(min(k, n_t - 1.0))] <= t1)
        W[DUE, i] = 1.0 if due else 0.0
        W[TT, i] = t1 if quiet else W[TT, i]


def _quiet_clearance(W, nb, i0, z, ko_c):
    """4b. Clearance to zone ``z`` after a quiet step: the distance at its end (the chord's minimum
    is at an end, or cannot beat the clearance found so far)."""
    for i in range(nb):
        c = i0 + i
        d = W[N_ROWS + z, i]
        best = ko_c[z, c]
        ko_c[z, c] = min(best, d) if W[QUIET, i] != 0.0 else best


def _rollout_block(b, pos0, vel0, t_rel, hext, rolls, kdrag, rest_c, fric, crr,
                   gx, gy, gz, ground, e_g, mu_g, omin, omax, oe, omu, zmin, zmax,
                   tsamp, offs, horizon, nsmax, use_fast,
                   pos_s, vel_s, land_t, land_p, rest_t, ko_t, ko_c,
                   ev_kind, ev_idx, ev_t, ev_p, ev_cnt, fin_p, fin_v, fin_mode, ks_out, status):
    """Rollouts ``b * BLOCK ...`` : local state, time outer, rollouts inner (see the module doc).

    The free step updates the state rows in place; the state at the step start is kept in the
    ``O*`` rows for the slow path.
    """
    n = pos0.shape[1]
    n_k = omin.shape[1]
    n_z = zmin.shape[1]
    n_steps = offs.shape[0]
    n_t = tsamp.shape[0]
    i0 = b * BLOCK
    nb = min(BLOCK, n - i0)
    W = np.zeros((N_ROWS + n_z, BLOCK))
    for i in range(nb):
        c = i0 + i
        x0, y0, z0, k0, e0 = init_rollout(pos0[0, c], pos0[1, c], pos0[2, c], hext[0, c], hext[1, c], hext[2, c],
                                          t_rel[c], ground, omin, omax, zmin, zmax, tsamp, c,
                                          pos_s, vel_s, ko_t, ko_c, ev_kind, ev_idx, ev_t, ev_p)
        W[PX, i] = x0
        W[PY, i] = y0
        W[PZ, i] = z0
        W[VX, i] = vel0[0, c]
        W[VY, i] = vel0[1, c]
        W[VZ, i] = vel0[2, c]
        W[WW, i] = 0.0
        W[MD, i] = MODE_FLIGHT
        W[SP, i] = -1.0
        W[MU, i] = 0.0
        W[KS, i] = k0
        W[EV, i] = e0
        W[TT, i] = t_rel[c]
        W[TR, i] = t_rel[c]
        W[ROLLS, i] = rolls[c]
        W[CRR, i] = crr[c]
        W[KD, i] = kdrag[c]
        W[HZ, i] = hext[2, c]
    for j in range(n_steps):
        _start_step(W, nb)
        _free_steps(W, nb, offs[j], horizon, gx, gy, gz, ground, use_fast)
        for kk in range(n_k):
            _obstacle_checks(W, nb, i0, kk, hext, omin, omax)
        for z in range(n_z):
            _zone_checks(W, nb, i0, z, hext, zmin, zmax, ko_c)
        # 4. finish quiet steps (vectorised), write their samples, run the slow path for the others
        _finish_quiet(W, nb, n_t, tsamp)
        for z in range(n_z):
            _quiet_clearance(W, nb, i0, z, ko_c)
        for i in range(nb):
            if W[LIVE, i] == 0.0:
                continue
            c = i0 + i
            t0 = W[OTT, i]
            t1 = W[T1, i]
            if W[QUIET, i] != 0.0:
                if W[DUE, i] != 0.0:
                    W[KS, i] = write_samples(True, t0, t1, max(t1 - t0, 0.0), W[OPX, i], W[OPY, i], W[OPZ, i],
                                             W[OVX, i], W[OVY, i], W[OVZ, i], W[PX, i], W[PY, i], W[PZ, i],
                                             W[VX, i], W[VY, i], W[VZ, i], W[KS, i], tsamp, nsmax, c, pos_s, vel_s)
            else:
                t = t0
                x, y, zz = W[OPX, i], W[OPY, i], W[OPZ, i]
                ux, uy, uz, wv = W[OVX, i], W[OVY, i], W[OVZ, i], W[OWW, i]
                mv, sv, muv, kv, ev = W[MD, i], W[SP, i], W[MU, i], W[KS, i], W[EV, i]
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
                W[PX, i], W[PY, i], W[PZ, i] = x, y, zz
                W[VX, i], W[VY, i], W[VZ, i], W[WW, i] = ux, uy, uz, wv
                W[MD, i], W[SP, i], W[MU, i], W[KS, i], W[EV, i] = mv, sv, muv, kv, ev
                W[TT, i] = t
    for i in range(nb):
        c = i0 + i
        fin_p[0, c] = W[PX, i]
        fin_p[1, c] = W[PY, i]
        fin_p[2, c] = W[PZ, i]
        fin_v[0, c] = W[VX, i]
        fin_v[1, c] = W[VY, i]
        fin_v[2, c] = W[VZ, i]
        fin_mode[c] = W[MD, i]
        ks_out[c] = W[KS, i]
        ev_cnt[c] = W[EV, i]


def _rollout_kernel(pos0, vel0, t_rel, hext, rolls, kdrag, rest_c, fric, crr,
                    gx, gy, gz, ground, e_g, mu_g, omin, omax, oe, omu, zmin, zmax,
                    tsamp, offs, horizon, nsmax, use_fast,
                    pos_s, vel_s, land_t, land_p, rest_t, ko_t, ko_c,
                    ev_kind, ev_idx, ev_t, ev_p, ev_cnt, fin_p, fin_v, fin_mode, ks_out, status):
    n_blocks = (pos0.shape[1] + BLOCK - 1) // BLOCK
    for b in prange(n_blocks):
        _block_jit(np.int64(b), pos0, vel0, t_rel, hext, rolls, kdrag, rest_c, fric, crr,
                       gx, gy, gz, ground, e_g, mu_g, omin, omax, oe, omu, zmin, zmax,
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
        _block_jit(np.int64(b), pos0, vel0, t_rel, hext, rolls, kdrag, rest_c, fric, crr,
                   gx, gy, gz, ground, e_g, mu_g, omin, omax, oe, omu, zmin, zmax,
                   tsamp, offs, horizon, nsmax, use_fast,
                   pos_s, vel_s, land_t, land_p, rest_t, ko_t, ko_c,
                   ev_kind, ev_idx, ev_t, ev_p, ev_cnt, fin_p, fin_v, fin_mode, ks_out, status)


# Each vectorised pass is its own function: inside the block function, values of one loop stayed
# alive into the next (Python scoping) and LLVM refused to vectorise ("value ... used outside the
# loop").
_start_step = numba.njit(fastmath=True, error_model="numpy")(_start_step)
_free_steps = numba.njit(fastmath=True, error_model="numpy")(_free_steps)
_obstacle_checks = numba.njit(fastmath=True, error_model="numpy")(_obstacle_checks)
_zone_checks = numba.njit(fastmath=True, error_model="numpy")(_zone_checks)
_finish_quiet = numba.njit(fastmath=True, error_model="numpy")(_finish_quiet)
_quiet_clearance = numba.njit(fastmath=True, error_model="numpy")(_quiet_clearance)

# The block body as its own dispatcher: called from the prange loop it is compiled once (an
# overload would be compiled again for the parallel gufunc), and inlined into no one.
_block_jit = numba.njit(fastmath=True, error_model="numpy")(_rollout_block)


# ------------------------------------------------------------------------------ compile and cache
_SOURCES = (model.__file__, ops.__file__, __file__)
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


def kernel(parallel: bool = True):
    """The numba dispatcher of the rollout kernel (``prange`` over blocks, or a plain loop),
    caching into ``cache_dir()``; compiled or loaded from the cache on its first call."""
    with _lock:
        if parallel not in _kernels:
            from numba.core import config

            directory = cache_dir()
            directory.mkdir(parents=True, exist_ok=True)
            previous = config.CACHE_DIR
            config.CACHE_DIR = str(directory)   # numba fixes the cache locator when caching is enabled
            try:
                if parallel:
                    disp = numba.njit(parallel=True, fastmath=True, error_model="numpy", cache=True)(_rollout_kernel)
                else:
                    disp = numba.njit(fastmath=True, error_model="numpy", cache=True)(_rollout_kernel_serial)
            finally:
                config.CACHE_DIR = previous
            _kernels[parallel] = disp
        return _kernels[parallel]
