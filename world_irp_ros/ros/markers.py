"""``~/markers``: a rehearsal drawn for RViz (only published when ``visualize`` is true).

One array per rehearsal: a DELETEALL first (the previous drawing goes), the target region as a
translucent cylinder, every keep-out zone as a red box, and the nominal track of up to
``MAX_TRACKS`` candidates as a line strip (green GO, red NO-GO, thicker when chosen) with its
release velocity as an arrow and its landing point as a sphere.
"""
from __future__ import annotations

from typing import Sequence

import numpy as np
import transforms3d.quaternions as tq
from geometry_msgs.msg import Point, Vector3
from std_msgs.msg import ColorRGBA
from visualization_msgs.msg import Marker, MarkerArray

from ..rehearsal import Trajectory
from ..scene import CandidateAction, Criteria
from ..verdicts import Verdict
from .conversions import point, quaternion_msg

MAX_TRACKS = 64
GO_COLOR = ColorRGBA(r=0.1, g=0.8, b=0.2, a=0.9)
NO_GO_COLOR = ColorRGBA(r=0.9, g=0.15, b=0.1, a=0.6)
TARGET_COLOR = ColorRGBA(r=0.2, g=0.4, b=1.0, a=0.35)
ZONE_COLOR = ColorRGBA(r=1.0, g=0.0, b=0.0, a=0.3)


def _marker(ns: str, mid: int, kind: int, stamp, frame_id: str) -> Marker:
    m = Marker(ns=ns, id=mid, type=kind, action=Marker.ADD)
    m.header.stamp = stamp
    m.header.frame_id = frame_id
    m.pose.orientation.w = 1.0
    return m


def _arrow_orientation(v: Sequence[float]):
    """Quaternion turning the marker's +x axis onto ``v`` (identity for a zero vector)."""
    v = np.asarray(v, dtype=np.float64)
    n = float(np.linalg.norm(v))
    if n < 1e-9:
        return quaternion_msg((1.0, 0.0, 0.0, 0.0))
    u = v / n
    axis = np.cross([1.0, 0.0, 0.0], u)
    s = float(np.linalg.norm(axis))
    angle = float(np.arctan2(s, u[0]))
    if s < 1e-9:  # parallel or anti-parallel to +x
        return quaternion_msg((1.0, 0.0, 0.0, 0.0) if u[0] > 0 else (0.0, 0.0, 0.0, 1.0))
    return quaternion_msg(tq.axangle2quat(axis / s, angle))


def rehearsal_markers(*, stamp, frame_id: str, criteria: Criteria | None,
                      actions: Sequence[CandidateAction | None], verdicts: Sequence[Verdict],
                      trajectories: Sequence[Trajectory | None]) -> MarkerArray:
    """The markers of one rehearsal (see the module docstring)."""
    out = MarkerArray()
    clear = Marker(action=Marker.DELETEALL)
    clear.header.frame_id = frame_id
    out.markers.append(clear)
    if criteria is not None and criteria.target is not None:
        t = criteria.target
        m = _marker("target", 0, Marker.CYLINDER, stamp, frame_id)
        m.pose.position = point(t.center_m)
        m.scale = Vector3(x=2 * t.radius_m, y=2 * t.radius_m, z=max(2 * t.height_tolerance_m, 1e-3))
        m.color = TARGET_COLOR
        out.markers.append(m)
    if criteria is not None:
        for i, z in enumerate(criteria.keep_out):
            m = _marker("keep_out", i, Marker.CUBE, stamp, frame_id)
            lo, hi = np.asarray(z.min_m), np.asarray(z.max_m)
            m.pose.position = point((lo + hi) / 2.0)
            m.scale = Vector3(x=float(hi[0] - lo[0]), y=float(hi[1] - lo[1]), z=float(hi[2] - lo[2]))
            m.color = ZONE_COLOR
            m.text = z.name
            out.markers.append(m)
    order = sorted(range(len(verdicts)), key=lambda i: (not verdicts[i].chosen, not verdicts[i].go, i))
    for i in order[:MAX_TRACKS]:
        traj, v = trajectories[i], verdicts[i]
        if traj is None or len(traj.positions_m) == 0:
            continue
        color = GO_COLOR if v.go else NO_GO_COLOR
        line = _marker("tracks", i, Marker.LINE_STRIP, stamp, frame_id)
        line.scale.x = 0.02 if v.chosen else 0.006
        line.color = color
        line.points = [Point(x=a, y=b, z=c) for a, b, c in np.asarray(traj.positions_m).tolist()]
        line.text = f"{v.action_id}: {v.code.name}"
        out.markers.append(line)
        action = actions[i] if i < len(actions) else None
        if action is not None and action.type == "throw":
            arrow = _marker("release_velocity", i, Marker.ARROW, stamp, frame_id)
            arrow.pose.position = point(traj.positions_m[0])
            arrow.pose.orientation = _arrow_orientation(action.release_velocity_mps)
            speed = float(np.linalg.norm(action.release_velocity_mps))
            arrow.scale = Vector3(x=max(0.05 * speed, 0.01), y=0.01, z=0.01)
            arrow.color = color
            out.markers.append(arrow)
        if v.lands and v.landing_point_m is not None:
            s = _marker("landing", i, Marker.SPHERE, stamp, frame_id)
            s.pose.position = point(v.landing_point_m)
            s.scale = Vector3(x=0.04, y=0.04, z=0.04)
            s.color = color
            out.markers.append(s)
    return out
