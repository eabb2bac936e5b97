"""The one written-down physics model of world_irp_ros (docs/physics.md explains it in words).

Every equation, threshold and rule of the forward model lives here, once. The functions are
"operator style": they take and return per-rollout numbers (no arrays of rollouts) and use only the
helpers of ``physics.ops`` for choices, so the same source runs

* inlined into the numba CPU kernel (``backends/_numba_kernel.py``) on float64 scalars, and
* as plain Python on float64 torch tensors of shape ``(N,)`` (``backends/_torch_rollout.py``; CPU
  or CUDA), which proves on a CPU that the CUDA path computes the same equations.

Per-rollout state (all float64): time ``t``, centre position ``p`` and velocity ``v`` (world frame,
z up), ``w`` the forward surface speed of a sphere's spin (omega x r along the horizontal
direction of motion; rolling without slip means ``w == |v_xy|``), ``mode`` (``MODE_*``), ``sup``
the supporting surface (-1 ground, k obstacle k) and ``mu_s`` its effective friction, ``ks`` the
next sample index and ``evc`` the number of events so far. Output arrays are written through
``[index, col]`` where ``col`` is the rollout (an int in numba, ``arange(N)`` in torch); "unset"
times hold ``UNSET`` (-1) and become NaN outside the kernel.
"""
from __future__ import annotations

import numpy as np
from numba.extending import register_jitable

from ..backends.base import (EVENT_GROUND, EVENT_KEEP_OUT, EVENT_OBSTACLE, EVENT_REST, MODE_FLIGHT,
                             MODE_REST, MODE_SUPPORTED)
from .ops import any_, any_cheap, as_index, clip, maximum, minimum, not_, sqrt, where


def physics(fn):
    """A hot equation: inlined by numba into the vectorised kernel loop; plain function on tensors.

    numba only vectorises the kernel's inner loop when these are inlined at the IR level
    (``inline="always"``); measured: 3 ns instead of 69 ns per rollout-step without it.
    """
    return register_jitable(inline="always", fastmath=True, error_model="numpy")(fn)


def physics_call(fn):
    """An event-handling function: compiled once and called from the kernel's rare slow path.

    Not inlined at the IR level: numba's inliner re-types the callee at every call site, which made
    the kernel's cold compile several times longer for no speed gain on the scalar slow path.
    """
    return register_jitable(inline="never", fastmath=True, error_model="numpy")(fn)


# ------------------------------------------------------------------------------------ constants
V_BOUNCE_STOP = 0.15    # m/s: rebound speed below which an impact on an upward face ends bouncing
V_REST = 1e-3           # m/s: a supported object slower than this is at rest
SLIP_EPS = 1e-9         # m/s: a sphere whose contact point slips slower than this rolls
ROLL_DRAG = 5.0 / 7.0   # share of drag that decelerates a rolling solid sphere's centre (m / (m + I/r^2))
SPIN_RATE = 5.0 / 2.0   # surface-speed gain per unit of centre-speed lost to friction (m r^2 / I)
SPIN_IMPULSE = 2.0 / 7.0  # largest centre-speed change of an impact that just stops the contact slipping
TINY = 1e-30            # guards divisions
BIG = 1e300             # "never" (finite: the kernel runs with fastmath, no inf/NaN allowed)
MOVE_EPS = 1e-12        # m: a displacement below this along an axis counts as not moving along it
ROOT_ITERS = 6          # safeguarded Newton iterations locating an event inside a step
CLEAR_ITERS = 32        # bisection iterations locating the closest approach to a keep-out zone
MAX_SEGMENTS = 16       # sub-steps (events) allowed inside one integration step before giving up
SHORT_SEGMENT = 1e-6    # s: samples inside a shorter segment take its end state
UNSET = -1.0            # "no time yet" in the kernel; NaN in RolloutResult

# Kinds of contact found inside a step.
CK_NONE = 0.0
CK_GROUND = 1.0
CK_OBSTACLE = 2.0
CK_EXIT = 3.0           # leaving the top face footprint of the supporting obstacle


# ----------------------------------------------------------------------------- flight equations
@physics_call
def select3(ax, a0, a1, a2):
    """Component ``ax`` (0, 1, 2 as float) of the vector ``(a0, a1, a2)``."""
    return where(ax == 0.0, a0, where(ax == 1.0, a1, a2))


@physics
def accel(vx, vy, vz, gx, gy, gz, c, ke):
    """a = g - c v/|v| - ke |v| v: gravity, Coulomb deceleration ``c`` along the motion, quadratic drag."""
    s = sqrt(vx * vx + vy * vy + vz * vz)
    f = c / maximum(s, TINY) + ke * s
    return gx - f * vx, gy - f * vy, gz - f * vz


@physics
def rk4(px, py, pz, vx, vy, vz, gx, gy, gz, c, ke, h):
    """One classic Runge-Kutta 4 step of length ``h`` of p' = v, v' = accel(v).

    Stages k1..k4 at v, v + h/2 a1, v + h/2 a2, v + h a3; weights 1, 2, 2, 1 (/6). Written as a
    loop so that numba inlines ``accel`` once (LLVM unrolls the four stages again).
    """
    ux = vx
    uy = vy
    uz = vz
    spx = 0.0
    spy = 0.0
    spz = 0.0
    svx = 0.0
    svy = 0.0
    svz = 0.0
    for stage in range(4):
        ax, ay, az = accel(ux, uy, uz, gx, gy, gz, c, ke)
        wgt = where((stage == 0) | (stage == 3), 1.0, 2.0)
        spx = spx + wgt * ux
        spy = spy + wgt * uy
        spz = spz + wgt * uz
        svx = svx + wgt * ax
        svy = svy + wgt * ay
        svz = svz + wgt * az
        step = where(stage == 2, h, 0.5 * h)
        ux = vx + step * ax
        uy = vy + step * ay
        uz = vz + step * az
    h6 = h / 6.0
    return px + h6 * spx, py + h6 * spy, pz + h6 * spz, vx + h6 * svx, vy + h6 * svy, vz + h6 * svz


@physics
def motion_params(mode, rolls, w, vx, vy, mu_s, crr, k, gx, gy, gz):
    """Forces of the current mode: effective gravity, Coulomb deceleration ``c`` and drag ``ke``.

    Flight: full gravity, drag k. Supported (on a horizontal face, v_z = 0): no gravity in the
    plane, deceleration ``mu_s |g_z|`` while sliding (boxes, cylinders, slipping spheres) or
    ``crr |g_z|`` while rolling, drag k (5/7 k on a rolling sphere). Rest: nothing moves.
    """
    flight = mode == MODE_FLIGHT
    sup = mode == MODE_SUPPORTED
    s0 = sqrt(vx * vx + vy * vy)
    sphere = rolls > 0.5
    slipping = sup & sphere & (s0 - w > SLIP_EPS)
    rolling = sup & sphere & not_(slipping)
    c = where(sup, where(rolling, crr, mu_s) * abs(gz), 0.0)
    ke = where(flight | sup, where(rolling, ROLL_DRAG * k, k), 0.0)
    return (flight, sup, sphere, slipping, rolling, s0, c, ke,
            where(flight, gx, 0.0), where(flight, gy, 0.0), where(flight, gz, 0.0))


@physics
def phase_ends(mode, rolls, w, vx, vy, mu_s, crr, k, gx, gy, gz, h):
    """Forces of the mode (``motion_params``) plus the supported-phase ends inside a step ``h``.

    ``stop``: a supported object stops within ``h`` at ``t_stop = s0/a0`` (constant deceleration
    ``a0 = c + ke s0^2``, its value at the step start). ``slip_end``: a slipping sphere starts to
    roll at ``t_slip = u0/((1 + 5/2) c + k s0^2)``, u0 = s0 - w the slip speed (the slip speed falls
    at that rate: the centre loses c + k s^2, the surface speed gains 5/2 c).
    """
    (flight, sup, sphere, slipping, rolling, s0, c, ke,
     gex, gey, gez) = motion_params(mode, rolls, w, vx, vy, mu_s, crr, k, gx, gy, gz)
    a0 = c + ke * s0 * s0
    stop = sup & (s0 <= a0 * h)
    t_stop = s0 / maximum(a0, TINY)
    rate_u = (1.0 + SPIN_RATE) * c + ke * s0 * s0
    u0 = s0 - w
    slip_end = slipping & (u0 <= rate_u * h)
    t_slip = u0 / maximum(rate_u, TINY)
    return (flight, sup, sphere, slipping, rolling, s0, c, ke, gex, gey, gez,
            a0, stop, t_stop, slip_end, t_slip)


@physics
def free_step(px, py, pz, vx, vy, vz, w, mode, rolls, mu_s, crr, k, gx, gy, gz, h):
    """A step of length ``h`` with nothing happening, and whether a supported phase ends in it.

    Returns p1, v1, the spin surface speed ``w1`` after ``h`` (grows by 5/2 c h while slipping,
    equals the speed while rolling), the horizontal speed ``s1``, and ``phase_ends``' flags.
    """
    (flight, sup, sphere, slipping, rolling, s0, c, ke, gex, gey, gez,
     a0, stop, t_stop, slip_end, t_slip) = phase_ends(mode, rolls, w, vx, vy, mu_s, crr, k, gx, gy, gz, h)
    p1x, p1y, p1z, v1x, v1y, v1z = rk4(px, py, pz, vx, vy, vz, gex, gey, gez, c, ke, h)
    s1 = sqrt(v1x * v1x + v1y * v1y)
    w1 = where(slipping, w + SPIN_RATE * c * h, where(rolling, s1, w))
    return p1x, p1y, p1z, v1x, v1y, v1z, w1, s1, flight, sup, stop, slip_end


# Non-inlined copies for the slow path (one compiled body instead of one per call site).
@physics_call
def phase_ends_call(mode, rolls, w, vx, vy, mu_s, crr, k, gx, gy, gz, h):
    """``phase_ends``, compiled once."""
    return phase_ends(mode, rolls, w, vx, vy, mu_s, crr, k, gx, gy, gz, h)


@physics_call
def rk4_call(px, py, pz, vx, vy, vz, gx, gy, gz, c, ke, h):
    """``rk4``, compiled once."""
    return rk4(px, py, pz, vx, vy, vz, gx, gy, gz, c, ke, h)


# ------------------------------------------------------------------ locating events in a step
@physics
def hermite(q0, u0, q1, u1, s):
    """Cubic Hermite interpolation at fraction ``s`` of values q0, q1 and slopes u = dq/ds."""
    s2 = s * s
    s3 = s2 * s
    return ((2.0 * s3 - 3.0 * s2 + 1.0) * q0 + (s3 - 2.0 * s2 + s) * u0
            + (3.0 * s2 - 2.0 * s3) * q1 + (s3 - s2) * u1)


@physics_call
def hermite_ds(q0, u0, q1, u1, s):
    """d/ds of ``hermite``."""
    s2 = s * s
    return (6.0 * s2 - 6.0 * s) * (q0 - q1) + (3.0 * s2 - 4.0 * s + 1.0) * u0 + (3.0 * s2 - 2.0 * s) * u1


@physics_call
def hermite_root(f0, d0, f1, d1):
    """First s in [0, 1] where the Hermite cubic of (f0, d0, f1, d1) reaches 0 (f0 >= 0 >= f1).

    Safeguarded Newton from the secant guess: the bracket [a, b] keeps f(a) > 0 >= f(b), a Newton
    step leaving it is replaced by bisection (converges to ~1e-16 in 3-4 iterations on a step's
    cubic). A start at or below zero means "at the start".
    """
    f0c = maximum(f0, 0.0)
    den = f0c - f1
    s = clip(f0c / maximum(den, TINY), 0.0, 1.0)
    a = 0.0
    b = 1.0
    for _ in range(ROOT_ITERS):
        f = hermite(f0, d0, f1, d1, s)
        df = hermite_ds(f0, d0, f1, d1, s)
        pos = f > 0.0
        a = where(pos, s, a)
        b = where(pos, b, s)
        sn = s - f / where(abs(df) > TINY, df, -TINY)
        s = where((sn >= a) & (sn <= b), sn, 0.5 * (a + b))
    return where(f0 <= 0.0, 0.0, s)


@physics_call
def slab(q0, q1, lo, hi):
    """Fractions of the chord q0 -> q1 at which it is inside the open interval (lo, hi)."""
    d = q1 - q0
    moving = abs(d) > MOVE_EPS
    inv = 1.0 / where(moving, d, 1.0)
    ta = (lo - q0) * inv
    tb = (hi - q0) * inv
    inside = (q0 > lo) & (q0 < hi)
    t_in = where(moving, minimum(ta, tb), where(inside, -BIG, BIG))
    t_out = where(moving, maximum(ta, tb), where(inside, BIG, -BIG))
    return t_in, t_out


@physics_call
def box_entry(p0x, p0y, p0z, p1x, p1y, p1z, lox, loy, loz, hix, hiy, hiz):
    """Slab test of the chord p0 -> p1 against an open box: (s_in, s_out, entry axis).

    The chord is inside the box for s in (s_in, s_out); it enters during the step when
    ``0 <= s_in <= 1`` and ``s_in < s_out``; ``s_in < 0 < s_out`` means it starts inside.
    """
    ix, ox = slab(p0x, p1x, lox, hix)
    iy, oy = slab(p0y, p1y, loy, hiy)
    iz, oz = slab(p0z, p1z, loz, hiz)
    take_y = iy > ix
    s_in = where(take_y, iy, ix)
    ax = where(take_y, 1.0, 0.0)
    take_z = iz > s_in
    s_in = where(take_z, iz, s_in)
    ax = where(take_z, 2.0, ax)
    return s_in, minimum(ox, minimum(oy, oz)), ax


@physics
def chord_box_overlap(p0x, p0y, p0z, p1x, p1y, p1z, lox, loy, loz, hix, hiy, hiz):
    """Whether the bounding box of the chord p0 -> p1 overlaps the open box (a cheap pre-test)."""
    return ((minimum(p0x, p1x) < hix) & (maximum(p0x, p1x) > lox) & (minimum(p0y, p1y) < hiy)
            & (maximum(p0y, p1y) > loy) & (minimum(p0z, p1z) < hiz) & (maximum(p0z, p1z) > loz))


@physics_call
def locate_on_axis(ax, face, nsg, p0x, p0y, p0z, u0x, u0y, u0z, p1x, p1y, p1z, u1x, u1y, u1z):
    """Fraction where the Hermite curve of the step crosses the plane ``q_ax = face``.

    ``nsg`` is the sign that makes ``nsg (q - face)`` positive before the crossing; u = v * step.
    """
    q0 = select3(ax, p0x, p0y, p0z)
    q1 = select3(ax, p1x, p1y, p1z)
    u0 = select3(ax, u0x, u0y, u0z)
    u1 = select3(ax, u1x, u1y, u1z)
    return hermite_root(nsg * (q0 - face), nsg * u0, nsg * (q1 - face), nsg * u1)


# -------------------------------------------------------------------------------- keep-out zones
@physics
def grown_box(bmin, bmax, k, hx, hy, hz):
    """Box ``k`` of the (3, K) corner arrays grown by the half extents: the set of centres at
    which an object of that extent touches or overlaps it. Returns lo x, y, z, hi x, y, z."""
    return (bmin[0][k] - hx, bmin[1][k] - hy, bmin[2][k] - hz,
            bmax[0][k] + hx, bmax[1][k] + hy, bmax[2][k] + hz)


@physics
def gap3(px, py, pz, lox, loy, loz, hix, hiy, hiz):
    """Signed per-axis gaps of a point outside a box (positive below ``lo``, negative above ``hi``)."""
    return (maximum(lox - px, 0.0) - maximum(px - hix, 0.0),
            maximum(loy - py, 0.0) - maximum(py - hiy, 0.0),
            maximum(loz - pz, 0.0) - maximum(pz - hiz, 0.0))


@physics
def box_distance(px, py, pz, lox, loy, loz, hix, hiy, hiz):
    """Euclidean distance from a point to a box (0 inside)."""
    ex, ey, ez = gap3(px, py, pz, lox, loy, loz, hix, hiy, hiz)
    return sqrt(ex * ex + ey * ey + ez * ez)


@physics
def zone_chord(p0x, p0y, p0z, p1x, p1y, p1z, lox, loy, loz, hix, hiy, hiz):
    """Distance at the chord's end, whether its closest approach is interior, and a lower bound.

    The distance along a straight chord is convex; its minimum lies inside (0, 1) exactly when the
    chord approaches at s = 0 and recedes at s = 1. ``lb = (D0 + D1 - L)/2`` bounds it from below.
    """
    e0x, e0y, e0z = gap3(p0x, p0y, p0z, lox, loy, loz, hix, hiy, hiz)
    e1x, e1y, e1z = gap3(p1x, p1y, p1z, lox, loy, loz, hix, hiy, hiz)
    dx = p1x - p0x
    dy = p1y - p0y
    dz = p1z - p0z
    d0 = sqrt(e0x * e0x + e0y * e0y + e0z * e0z)
    d1 = sqrt(e1x * e1x + e1y * e1y + e1z * e1z)
    g0 = -(e0x * dx + e0y * dy + e0z * dz)
    g1 = -(e1x * dx + e1y * dy + e1z * dz)
    chord = sqrt(dx * dx + dy * dy + dz * dz)
    return d1, (g0 < 0.0) & (g1 > 0.0), 0.5 * (d0 + d1 - chord)


@physics_call
def zone_chord_call(p0x, p0y, p0z, p1x, p1y, p1z, lox, loy, loz, hix, hiy, hiz):
    """``zone_chord``, compiled once."""
    return zone_chord(p0x, p0y, p0z, p1x, p1y, p1z, lox, loy, loz, hix, hiy, hiz)


@physics_call
def chord_min_distance(p0x, p0y, p0z, p1x, p1y, p1z, lox, loy, loz, hix, hiy, hiz):
    """Smallest distance from the chord to the box: bisection on the sign of the convex slope."""
    dx = p1x - p0x
    dy = p1y - p0y
    dz = p1z - p0z
    a = 0.0
    b = 1.0
    for _ in range(CLEAR_ITERS):
        m = 0.5 * (a + b)
        ex, ey, ez = gap3(p0x + m * dx, p0y + m * dy, p0z + m * dz, lox, loy, loz, hix, hiy, hiz)
        down = -(ex * dx + ey * dy + ez * dz) < 0.0
        a = where(down, m, a)
        b = where(down, b, m)
    m = 0.5 * (a + b)
    return box_distance(p0x + m * dx, p0y + m * dy, p0z + m * dz, lox, loy, loz, hix, hiy, hiz)


# ---------------------------------------------------------------------------------- impacts
@physics_call
def impact_up(vx, vy, vz, w, e, mu, sphere):
    """Impact on an upward face: restitution, Coulomb impact friction, spin-up, end of bouncing.

    v_z -> -e v_z; the tangential speed drops by at most mu (1 + e)|v_z| (a slider never reverses);
    for a sphere by at most 2/7 of the slip speed (the contact point cannot reverse) while the spin
    surface speed gains 5/2 of that drop. A sphere with enough backspin reverses; its spin is then
    measured along the new direction of motion, as always. Returns ``settle`` when the rebound is
    below ``V_BOUNCE_STOP`` (then v_z = 0 and the object becomes supported).
    """
    vn = minimum(vz, 0.0)
    impulse = (1.0 + e) * (-vn)
    vz1 = -e * vn
    s = sqrt(vx * vx + vy * vy)
    wc = minimum(w, s)
    dv = minimum(mu * impulse, where(sphere, SPIN_IMPULSE * (s - wc), s))
    scale = (s - dv) / maximum(s, TINY)
    w1 = where(sphere, where(scale < 0.0, -1.0, 1.0) * (wc + SPIN_RATE * dv), w)
    settle = vz1 < V_BOUNCE_STOP
    return vx * scale, vy * scale, where(settle, 0.0, vz1), w1, settle


@physics_call
def reflect(vq, nsg, e):
    """Side (or bottom) face with outward normal sign ``nsg``: v_n -> -e v_n if approaching."""
    return where(vq * nsg < 0.0, -e * vq, vq)


# -------------------------------------------------------------------------------- bookkeeping
@physics
def sample_point(t0, seg_h, inv, ts, p0x, p0y, p0z, v0x, v0y, v0z, p1x, p1y, p1z, v1x, v1y, v1z):
    """Position and velocity at time ``ts`` on the Hermite cubic of the segment [t0, t0 + seg_h]
    (``inv = 1/max(seg_h, TINY)``)."""
    # A segment shorter than SHORT_SEGMENT (e.g. between an event and the step's end) reports
    # its end state: its end points differ by rounding and face snapping, not by v * h.
    s = where(seg_h > SHORT_SEGMENT, clip((ts - t0) * inv, 0.0, 1.0), 1.0)
    s2 = s * s
    s3 = s2 * s
    a0 = 2.0 * s3 - 3.0 * s2 + 1.0         # Hermite basis, the same as ``hermite``
    a1 = (s3 - 2.0 * s2 + s) * seg_h
    a2 = 3.0 * s2 - 2.0 * s3
    a3 = (s3 - s2) * seg_h
    b0 = (6.0 * s2 - 6.0 * s) * inv          # and its time derivative
    b1 = 3.0 * s2 - 4.0 * s + 1.0
    b3 = 3.0 * s2 - 2.0 * s
    return (a0 * p0x + a1 * v0x + a2 * p1x + a3 * v1x, a0 * p0y + a1 * v0y + a2 * p1y + a3 * v1y,
            a0 * p0z + a1 * v0z + a2 * p1z + a3 * v1z, b0 * (p0x - p1x) + b1 * v0x + b3 * v1x,
            b0 * (p0y - p1y) + b1 * v0y + b3 * v1y, b0 * (p0z - p1z) + b1 * v0z + b3 * v1z)


@physics
def write_samples(active, t0, t1, seg_h, p0x, p0y, p0z, v0x, v0y, v0z, p1x, p1y, p1z, v1x, v1y, v1z,
                  ks, tsamp, nsmax, col, pos_s, vel_s):
    """Write the samples with time <= t1 from the Hermite cubic of the segment [t0, t1]."""
    n_t = len(tsamp)
    inv = 1.0 / maximum(seg_h, TINY)
    for _ in range(nsmax):
        kc = minimum(ks, n_t - 1.0)
        ki = as_index(kc)
        ts = tsamp[ki]
        cond = active & (ks < n_t) & (ts <= t1)
        if any_(cond):
            qx, qy, qz, ux, uy, uz = sample_point(t0, seg_h, inv, ts, p0x, p0y, p0z, v0x, v0y, v0z,
                                                  p1x, p1y, p1z, v1x, v1y, v1z)
            pos_s[ki, 0, col] = where(cond, qx, pos_s[ki, 0, col])
            pos_s[ki, 1, col] = where(cond, qy, pos_s[ki, 1, col])
            pos_s[ki, 2, col] = where(cond, qz, pos_s[ki, 2, col])
            vel_s[ki, 0, col] = where(cond, ux, vel_s[ki, 0, col])
            vel_s[ki, 1, col] = where(cond, uy, vel_s[ki, 1, col])
            vel_s[ki, 2, col] = where(cond, uz, vel_s[ki, 2, col])
            ks = ks + where(cond, 1.0, 0.0)
        else:
            break
    return ks


@physics_call
def insert_event(cond, kind, index, t, px, py, pz, evc, ev_kind, ev_idx, ev_t, ev_p, col):
    """Insert an event in time order (after equal times); keep the first E, count all."""
    if any_(cond):
        n_e = ev_t.shape[0]
        pos = 0.0
        for e in range(n_e):
            pos = pos + where((e < evc) & (ev_t[e, col] <= t), 1.0, 0.0)
        for e in range(n_e - 1, 0, -1):
            # Slots above the last event hold the unset values: shifting them would change nothing.
            shift = cond & (e > pos) & (e <= evc)
            put = cond & (e == pos)
            if any_cheap(shift | put):
                ev_kind[e, col] = where(shift, ev_kind[e - 1, col], where(put, kind, ev_kind[e, col]))
                ev_idx[e, col] = where(shift, ev_idx[e - 1, col], where(put, index, ev_idx[e, col]))
                ev_t[e, col] = where(shift, ev_t[e - 1, col], where(put, t, ev_t[e, col]))
                ev_p[e, 0, col] = where(shift, ev_p[e - 1, 0, col], where(put, px, ev_p[e, 0, col]))
                ev_p[e, 1, col] = where(shift, ev_p[e - 1, 1, col], where(put, py, ev_p[e, 1, col]))
                ev_p[e, 2, col] = where(shift, ev_p[e - 1, 2, col], where(put, pz, ev_p[e, 2, col]))
        put = cond & (pos == 0.0)
        ev_kind[0, col] = where(put, kind, ev_kind[0, col])
        ev_idx[0, col] = where(put, index, ev_idx[0, col])
        ev_t[0, col] = where(put, t, ev_t[0, col])
        ev_p[0, 0, col] = where(put, px, ev_p[0, 0, col])
        ev_p[0, 1, col] = where(put, py, ev_p[0, 1, col])
        ev_p[0, 2, col] = where(put, pz, ev_p[0, 2, col])
        evc = evc + where(cond, 1.0, 0.0)
    return evc


# ------------------------------------------------------------------------------ release state
@physics_call
def init_rollout(px, py, pz, hx, hy, hz, t_r, ground, omin, omax, zmin, zmax, tsamp, col,
                 pos_s, vel_s, ko_t, ko_c, ev_kind, ev_idx, ev_t, ev_p):
    """Release state: overlaps resolved, samples before release, keep-out status at t = 0.

    An object released below the ground is lifted onto it; one released overlapping an obstacle
    is moved out through the nearest face (so a pushed object sampled slightly inside its table
    sits on it). Before ``release_time_s`` it sits still there. Returns (p, ks, evc).
    """
    pz = maximum(pz, ground + hz)
    n_k = len(omin[0])
    for kk in range(n_k):
        lox, loy, loz, hix, hiy, hiz = grown_box(omin, omax, kk, hx, hy, hz)
        inside = (px > lox) & (px < hix) & (py > loy) & (py < hiy) & (pz > loz) & (pz < hiz)
        best = hiz - pz                    # ties go to the top face
        face = 5.0
        for j in range(5):
            dj = where(j == 0, px - lox, where(j == 1, hix - px, where(j == 2, py - loy,
                       where(j == 3, hiy - py, pz - loz))))
            # Not out through the bottom into the ground (a box standing on it): the lift back up
            # would put the object inside the box again.
            better = (dj < best) & ((j != 4) | (loz >= ground + hz))
            best = where(better, dj, best)
            face = where(better, j * 1.0, face)
        px = where(inside & (face == 0.0), lox, where(inside & (face == 1.0), hix, px))
        py = where(inside & (face == 2.0), loy, where(inside & (face == 3.0), hiy, py))
        pz = where(inside & (face == 4.0), loz, where(inside & (face == 5.0), hiz, pz))
    pz = maximum(pz, ground + hz)
    n_t = len(tsamp)
    ks = 0.0
    for s in range(n_t):
        before = tsamp[s] < t_r
        if any_(before):
            pos_s[s, 0, col] = where(before, px, pos_s[s, 0, col])
            pos_s[s, 1, col] = where(before, py, pos_s[s, 1, col])
            pos_s[s, 2, col] = where(before, pz, pos_s[s, 2, col])
            vel_s[s, 0, col] = where(before, 0.0, vel_s[s, 0, col])
            vel_s[s, 1, col] = where(before, 0.0, vel_s[s, 1, col])
            vel_s[s, 2, col] = where(before, 0.0, vel_s[s, 2, col])
            ks = ks + where(before, 1.0, 0.0)
        else:
            break                         # sample times ascend: none later is before release
    evc = 0.0
    n_z = len(zmin[0])
    for z in range(n_z):
        lox, loy, loz, hix, hiy, hiz = grown_box(zmin, zmax, z, hx, hy, hz)
        inside = (px > lox) & (px < hix) & (py > loy) & (py < hiy) & (pz > loz) & (pz < hiz)
        ko_c[z, col] = where(inside, 0.0, box_distance(px, py, pz, lox, loy, loz, hix, hiy, hiz))
        ko_t[z, col] = where(inside, 0.0, UNSET)
        evc = insert_event(inside, EVENT_KEEP_OUT, z * 1.0, 0.0, px, py, pz, evc, ev_kind, ev_idx, ev_t, ev_p, col)
    return px, py, pz, ks, evc


# ------------------------------------------------------------------------------------ a segment
@physics_call
def advance_segment(active, t, t_end, px, py, pz, vx, vy, vz, w, mode, sup, mu_s, ks, evc,
                    hx, hy, hz, k, e_o, mu_o, crr, rolls,
                    gx, gy, gz, ground, e_g, mu_g, omin, omax, oe, omu, zmin, zmax,
                    tsamp, nsmax, col, pos_s, vel_s, land_t, land_p, rest_t, ko_t, ko_c,
                    ev_kind, ev_idx, ev_t, ev_p):
    """Advance from ``t`` towards ``t_end`` up to and through the first event inside the step.

    1. Integrate the free motion (``free_step``) to the end of the step or to the end of the
       supported phase (stop: constant deceleration; start of rolling).
    2. Find the earliest contact on the chord of that motion: ground crossing (flight), entry
       into an obstacle box expanded by the half extents (any face in flight, side faces while
       supported), leaving the supporting top face's footprint. Locate it on the Hermite cubic of
       the step (Newton on the entry axis) and recompute the state there by an RK4 step of that
       length from the segment start (constant deceleration for a stopping object); snap the
       entry coordinate onto the face.
    3. Record keep-out entries and clearance along the segment, samples inside it.
    4. Apply the event: bounce/settle, reflect, leave the support, start rolling, rest.
    Returns the new state; rollouts with ``active`` False keep theirs and write nothing.
    """
    h = maximum(t_end - t, 0.0)
    (flight, sup_m, sphere, slipping, rolling, s0, c, ke, gex, gey, gez,
     a0, stop, t_stop, slip_end, t_slip) = phase_ends_call(mode, rolls, w, vx, vy, mu_s, crr, k, gx, gy, gz, h)
    moving = flight | sup_m
    by_stop = stop & (not_(slip_end) | (t_stop <= t_slip))
    by_slip = slip_end & not_(by_stop)
    h_end = where(by_stop, t_stop, where(by_slip, t_slip, h))
    # RK4 to the end of the step or of the slipping phase (the same step as ``free_step``'s).
    pex, pey, pez, vex, vey, vez = rk4_call(px, py, pz, vx, vy, vz, gex, gey, gez, c, ke,
                                            where(by_stop, h, h_end))
    # Constant deceleration to the stop: p = p0 + v0 t_stop / 2, v = 0.
    pex = where(by_stop, px + 0.5 * vx * t_stop, pex)
    pey = where(by_stop, py + 0.5 * vy * t_stop, pey)
    vex = where(by_stop, 0.0, vex)
    vey = where(by_stop, 0.0, vey)
    vez = where(by_stop, 0.0, vez)

    # --- earliest contact on the chord p -> pe
    best = 2.0
    kind = CK_NONE
    ax = 2.0
    face = 0.0
    nsg = 1.0
    kidx = -1.0
    e_hit = e_g
    mu_hit = mu_g
    fb0 = maximum(pz - hz - ground, 0.0)
    fb1 = pez - hz - ground
    s_g = clip(fb0 / maximum(fb0 - fb1, TINY), 0.0, 1.0)
    take = flight & (fb1 < 0.0)
    best = where(take, s_g, best)
    kind = where(take, CK_GROUND, kind)
    face = where(take, ground + hz, face)
    slox = 0.0
    sloy = 0.0
    shix = 0.0
    shiy = 0.0
    n_k = len(omin[0])
    for kk in range(n_k):
        lox, loy, loz, hix, hiy, hiz = grown_box(omin, omax, kk, hx, hy, hz)
        near = moving & chord_box_overlap(px, py, pz, pex, pey, pez, lox, loy, loz, hix, hiy, hiz)
        if any_(near):
            s_in, s_out, a_in = box_entry(px, py, pz, pex, pey, pez, lox, loy, loz, hix, hiy, hiz)
            take = near & (s_in < s_out) & (s_in >= 0.0) & (s_in <= 1.0) & (s_in < best)
            if any_(take):
                d_a = select3(a_in, pex - px, pey - py, pez - pz)
                best = where(take, s_in, best)
                kind = where(take, CK_OBSTACLE, kind)
                ax = where(take, a_in, ax)
                face = where(take, where(d_a > 0.0, select3(a_in, lox, loy, loz), select3(a_in, hix, hiy, hiz)), face)
                nsg = where(take, where(d_a > 0.0, -1.0, 1.0), nsg)
                kidx = where(take, kk * 1.0, kidx)
                e_hit = where(take, oe[kk], e_hit)
                mu_hit = where(take, omu[kk], mu_hit)
        is_sup = sup == kk
        slox = where(is_sup, lox, slox)
        sloy = where(is_sup, loy, sloy)
        shix = where(is_sup, hix, shix)
        shiy = where(is_sup, hiy, shiy)
    on_top = sup_m & (sup >= 0.0)
    if n_k > 0 and any_(on_top):
        _ix, ox = slab(px, pex, slox, shix)
        _iy, oy = slab(py, pey, sloy, shiy)
        ox = maximum(ox, 0.0)
        oy = maximum(oy, 0.0)
        exit_y = oy < ox
        s_x = where(exit_y, oy, ox)
        d_a = where(exit_y, pey - py, pex - px)
        take = on_top & (s_x <= 1.0) & (s_x < best)
        best = where(take, s_x, best)
        kind = where(take, CK_EXIT, kind)
        ax = where(take, where(exit_y, 1.0, 0.0), ax)
        face = where(take, where(exit_y, where(d_a > 0.0, shiy, sloy), where(d_a > 0.0, shix, slox)), face)
        nsg = where(take, where(d_a > 0.0, -1.0, 1.0), nsg)
    has = active & (best <= 1.0)

    # --- locate it on the step's cubic and recompute the state there
    pcx = pex
    pcy = pey
    pcz = pez
    vcx = vex
    vcy = vey
    vcz = vez
    seg_h = h_end
    if any_(has):
        s_c = locate_on_axis(ax, face, nsg, px, py, pz, vx * h_end, vy * h_end, vz * h_end,
                             pex, pey, pez, vex * h_end, vey * h_end, vez * h_end)
        t_c = s_c * h_end
        q0, q1, q2, q3, q4, q5 = rk4_call(px, py, pz, vx, vy, vz, gex, gey, gez, c, ke, t_c)
        lin = 1.0 - 0.5 * a0 * t_c / maximum(s0, TINY)      # constant deceleration (stopping)
        vfac = 1.0 - a0 * t_c / maximum(s0, TINY)
        q0 = where(by_stop, px + vx * t_c * lin, q0)
        q1 = where(by_stop, py + vy * t_c * lin, q1)
        q3 = where(by_stop, vx * vfac, q3)
        q4 = where(by_stop, vy * vfac, q4)
        q0 = where(ax == 0.0, face, q0)
        q1 = where(ax == 1.0, face, q1)
        q2 = where(ax == 2.0, face, q2)
        pcx = where(has, q0, pcx)
        pcy = where(has, q1, pcy)
        pcz = where(has, q2, pcz)
        vcx = where(has, q3, vcx)
        vcy = where(has, q4, vcy)
        vcz = where(has, q5, vcz)
        seg_h = where(has, t_c, seg_h)
    t_new = where(has | by_stop | by_slip, minimum(t + seg_h, t_end), t_end)

    # --- keep-out zones along the segment (never deflect anything)
    n_z = len(zmin[0])
    for z in range(n_z):
        lox, loy, loz, hix, hiy, hiz = grown_box(zmin, zmax, z, hx, hy, hz)
        ent = active & (ko_t[z, col] < 0.0) & chord_box_overlap(px, py, pz, pcx, pcy, pcz,
                                                                 lox, loy, loz, hix, hiy, hiz)
        if any_(ent):
            s_in, s_out, a_in = box_entry(px, py, pz, pcx, pcy, pcz, lox, loy, loz, hix, hiy, hiz)
            ent = ent & (s_in < s_out) & (s_in <= 1.0) & (s_out > 0.0)
            if any_(ent):
                d_a = select3(a_in, pcx - px, pcy - py, pcz - pz)
                zface = where(d_a > 0.0, select3(a_in, lox, loy, loz), select3(a_in, hix, hiy, hiz))
                znsg = where(d_a > 0.0, -1.0, 1.0)
                u0x = vx * seg_h
                u0y = vy * seg_h
                u0z = vz * seg_h
                u1x = vcx * seg_h
                u1y = vcy * seg_h
                u1z = vcz * seg_h
                s_e = locate_on_axis(a_in, zface, znsg, px, py, pz, u0x, u0y, u0z, pcx, pcy, pcz, u1x, u1y, u1z)
                s_e = where(s_in > 0.0, s_e, 0.0)
                t_z = t + s_e * seg_h
                ko_t[z, col] = where(ent, t_z, ko_t[z, col])
                evc = insert_event(ent, EVENT_KEEP_OUT, z * 1.0, t_z, hermite(px, u0x, pcx, u1x, s_e),
                                   hermite(py, u0y, pcy, u1y, s_e), hermite(pz, u0z, pcz, u1z, s_e),
                                   evc, ev_kind, ev_idx, ev_t, ev_p, col)
        d1, interior, lb = zone_chord_call(px, py, pz, pcx, pcy, pcz, lox, loy, loz, hix, hiy, hiz)
        old = ko_c[z, col]
        new = minimum(old, d1)
        need = active & interior & (lb < new)
        if any_(need):
            new = where(need, minimum(new, chord_min_distance(px, py, pz, pcx, pcy, pcz,
                                                              lox, loy, loz, hix, hiy, hiz)), new)
        ko_c[z, col] = where(active, where(ent, 0.0, new), old)

    n_t = len(tsamp)
    if any_(active & (ks < n_t) & (tsamp[as_index(minimum(ks, n_t - 1.0))] <= t_new)):
        ks = write_samples(active, t, t_new, seg_h, px, py, pz, vx, vy, vz, pcx, pcy, pcz, vcx, vcy, vcz,
                           ks, tsamp, nsmax, col, pos_s, vel_s)

    # --- apply the event
    sc = sqrt(vcx * vcx + vcy * vcy)
    wc = where(slipping, w + SPIN_RATE * c * seg_h, where(rolling, sc, w))
    wc = where(by_slip & not_(has), sc, wc)
    nvx = vcx
    nvy = vcy
    nvz = vcz
    nw = wc
    nmode = mode
    nsup = sup
    nmu = mu_s
    up = has
    side = has
    if any_(has):
        up = has & ((kind == CK_GROUND) | ((kind == CK_OBSTACLE) & (ax == 2.0) & (nsg > 0.0)))
        side = has & (kind == CK_OBSTACLE) & not_(up)
        leave = has & (kind == CK_EXIT)
        e_eff = e_o * e_hit
        mu_eff = mu_o * mu_hit
        ivx, ivy, ivz, iw, settle = impact_up(vcx, vcy, vcz, wc, e_eff, mu_eff, sphere)
        vq = reflect(select3(ax, vcx, vcy, vcz), nsg, e_eff)
        svx = where(ax == 0.0, vq, vcx)
        svy = where(ax == 1.0, vq, vcy)
        svz = where(ax == 2.0, vq, vcz)
        s_side = sqrt(svx * svx + svy * svy)
        sw = wc * (vcx * svx + vcy * svy) / maximum(sc * s_side, TINY)
        nvx = where(up, ivx, where(side, svx, vcx))
        nvy = where(up, ivy, where(side, svy, vcy))
        nvz = where(up, ivz, where(side, svz, vcz))
        nw = where(up, iw, where(side, sw, wc))
        nmode = where(up, where(settle, MODE_SUPPORTED, MODE_FLIGHT), where(leave, MODE_FLIGHT, mode))
        nsup = where(up & settle, where(kind == CK_GROUND, -1.0, kidx), sup)
        nmu = where(up & settle, mu_eff, mu_s)
    rest_now = active & (mode != MODE_REST) & (
        (by_stop & not_(has)) | ((nmode == MODE_SUPPORTED) & (nvx * nvx + nvy * nvy < V_REST * V_REST)))
    nmode = where(rest_now, MODE_REST, nmode)
    nvx = where(rest_now, 0.0, nvx)
    nvy = where(rest_now, 0.0, nvy)
    nvz = where(rest_now, 0.0, nvz)
    nw = where(rest_now, 0.0, nw)

    contact = has & (up | side)
    if any_(contact):
        first = contact & (land_t[col] < 0.0)
        land_t[col] = where(first, t_new, land_t[col])
        land_p[0, col] = where(first, pcx, land_p[0, col])
        land_p[1, col] = where(first, pcy, land_p[1, col])
        land_p[2, col] = where(first, pcz, land_p[2, col])
        evc = insert_event(contact, where(kind == CK_GROUND, EVENT_GROUND * 1.0, EVENT_OBSTACLE * 1.0),
                           where(kind == CK_GROUND, -1.0, kidx), t_new, pcx, pcy, pcz,
                           evc, ev_kind, ev_idx, ev_t, ev_p, col)
    if any_(rest_now):
        rest_t[col] = where(rest_now, t_new, rest_t[col])
        evc = insert_event(rest_now, EVENT_REST * 1.0, -1.0, t_new, pcx, pcy, pcz,
                           evc, ev_kind, ev_idx, ev_t, ev_p, col)

    return (where(active, t_new, t), where(active, pcx, px), where(active, pcy, py), where(active, pcz, pz),
            where(active, nvx, vx), where(active, nvy, vy), where(active, nvz, vz), where(active, nw, w),
            where(active, nmode, mode), where(active, nsup, sup), where(active, nmu, mu_s), ks, evc)


def max_step_s(gravity_z_mps2: float) -> float:
    """The longest integration step the model allows under vertical gravity ``gravity_z_mps2``:
    the shortest hop, 2 V_BOUNCE_STOP / |g_z|. A hop shorter than a step would be lost inside
    it, its landing taken for its start."""
    return 2.0 * V_BOUNCE_STOP / abs(gravity_z_mps2)


def max_samples_per_step(tsamp, dt):
    """How many sample times one step of length ``dt`` can hold (bounds a fixed loop); NumPy."""
    t = np.asarray(tsamp, dtype=np.float64)
    if t.size == 0:
        return 1
    last = np.searchsorted(t, t + dt * (1.0 + 1e-9), side="right")
    return int((last - np.arange(t.size)).max()) + 1


__all__ = [
    "V_BOUNCE_STOP", "V_REST", "SLIP_EPS", "ROLL_DRAG", "SPIN_RATE", "SPIN_IMPULSE", "MAX_SEGMENTS", "UNSET",
    "max_step_s", "accel", "rk4", "motion_params", "phase_ends", "free_step", "hermite", "hermite_ds",
    "hermite_root", "slab", "box_entry", "chord_box_overlap", "locate_on_axis", "gap3", "box_distance",
    "zone_chord", "chord_min_distance", "impact_up", "reflect", "sample_point", "write_samples", "insert_event",
    "init_rollout", "advance_segment", "max_samples_per_step",
]
