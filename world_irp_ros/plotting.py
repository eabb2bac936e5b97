"""Plots of rehearsals: side view (x-z) and top view (x-y) of candidate trajectories coloured by
verdict, with the target, keep-out zones and obstacles. Uses matplotlib's Agg canvas directly, so
it needs no display and leaves pyplot's global backend alone."""
from __future__ import annotations

from pathlib import Path
from typing import Sequence

import numpy as np

from .errors import VerdictCode
from .rehearsal import RehearsalOutcome, Trajectory
from .scene import RehearsalRequest

VERDICT_COLOURS = {
    VerdictCode.GO: "#1a9850",
    VerdictCode.NO_GO_COLLISION: "#d73027",
    VerdictCode.NO_GO_MISSES_TARGET: "#fc8d59",
    VerdictCode.NO_GO_UNCERTAIN: "#9e6ebd",
}
OTHER_COLOUR = "#7f7f7f"
PLANNED_COLOUR = "#2166ac"


def _code_label(code: VerdictCode) -> str:
    return "GO" if code == VerdictCode.GO else "NO-GO " + code.name.removeprefix("NO_GO_").lower().replace("_", " ")


def plot_rehearsal(request: RehearsalRequest, outcome: RehearsalOutcome, path: str | Path, *,
                   planned: Trajectory | Sequence[Sequence[float]] | None = None,
                   planned_label: str = "planned (IRP)", title: str = "", dpi: int = 110) -> Path:
    """Write a PNG with a side view (x-z) and a top view (x-y) of every nominal trajectory of
    ``outcome``, coloured by verdict (the chosen one drawn thick), the target, the keep-out zones
    and the obstacles of ``request``; ``planned`` (a trajectory or (T, 3) positions) adds one more
    track (dashed). Returns the path."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure
    from matplotlib.patches import Circle, Rectangle

    fig = Figure(figsize=(12, 5.2))
    FigureCanvasAgg(fig)
    side, top = fig.subplots(1, 2)
    side.set_title("side view (x-z)")
    top.set_title("top view (x-y)")
    side.set_xlabel("x (m)")
    side.set_ylabel("z (m)")
    top.set_xlabel("x (m)")
    top.set_ylabel("y (m)")

    env = request.scene.environment
    for o in env.obstacles:
        lo, hi = o.min_m, o.max_m
        for ax, (i, j) in ((side, (0, 2)), (top, (0, 1))):
            ax.add_patch(Rectangle((lo[i], lo[j]), hi[i] - lo[i], hi[j] - lo[j], facecolor="#d9c8a9",
                                   edgecolor="#8c6d31", alpha=0.6, zorder=1))
        side.text((lo[0] + hi[0]) / 2, lo[2] + 0.02, o.name, ha="center", va="bottom", fontsize=8, color="#5a4520")
    for z in request.criteria.keep_out:
        lo, hi = z.min_m, z.max_m
        for ax, (i, j) in ((side, (0, 2)), (top, (0, 1))):
            ax.add_patch(Rectangle((lo[i], lo[j]), hi[i] - lo[i], hi[j] - lo[j], facecolor="#d73027",
                                   edgecolor="#a50026", alpha=0.25, hatch="//", zorder=2))
        top.text((lo[0] + hi[0]) / 2, hi[1], f"keep-out: {z.name}", ha="center", va="bottom", fontsize=8,
                 color="#a50026")
    target = request.criteria.target
    if target is not None:
        c, r = target.center_m, target.radius_m
        side.plot([c[0] - r, c[0] + r], [c[2], c[2]], color="#006837", lw=5, alpha=0.6, zorder=3, solid_capstyle="butt")
        top.add_patch(Circle((c[0], c[1]), r, facecolor="#a6d96a", edgecolor="#006837", alpha=0.5, zorder=3))
        top.text(c[0], c[1] - r, "target", ha="center", va="top", fontsize=8, color="#006837")
    ground = env.ground_height_m
    side.axhline(ground, color="#555555", lw=1, zorder=0)

    seen: set[VerdictCode] = set()
    chosen = outcome.best_index
    for k, (v, tr) in enumerate(zip(outcome.verdicts, outcome.trajectories)):
        colour = VERDICT_COLOURS.get(v.code, OTHER_COLOUR)
        label = None if v.code in seen else _code_label(v.code)
        seen.add(v.code)
        p = np.asarray(tr.positions_m)
        lw, alpha, zo = (2.8, 1.0, 6) if k == chosen else (1.1, 0.75, 5 if v.go else 4)
        side.plot(p[:, 0], p[:, 2], color=colour, lw=lw, alpha=alpha, label=label, zorder=zo)
        top.plot(p[:, 0], p[:, 1], color=colour, lw=lw, alpha=alpha, zorder=zo)
        if v.landing_point_m is not None:
            lp = v.landing_point_m
            side.plot(lp[0], lp[2], "o", ms=3, color=colour, zorder=zo)
            top.plot(lp[0], lp[1], "o", ms=3, color=colour, zorder=zo)
    if 0 <= chosen < len(outcome.trajectories):
        side.plot([], [], color=VERDICT_COLOURS[VerdictCode.GO], lw=2.8,
                  label=f"chosen: {outcome.verdicts[chosen].action_id}")
    if planned is not None:
        p = np.asarray(planned.positions_m if isinstance(planned, Trajectory) else planned, dtype=float)
        side.plot(p[:, 0], p[:, 2], "--", color=PLANNED_COLOUR, lw=2.2, label=planned_label, zorder=7)
        top.plot(p[:, 0], p[:, 1], "--", color=PLANNED_COLOUR, lw=2.2, zorder=7)

    # Side view: heights are small next to distances, so no equal aspect; never below the ground.
    lo, hi = side.get_ylim()
    side.set_ylim(max(lo, ground - 0.1), hi + 0.1)
    top.set_aspect("equal", adjustable="datalim")
    side.grid(alpha=0.3)
    top.grid(alpha=0.3)
    side.legend(loc="upper right", fontsize=8, framealpha=0.85)
    if title:
        fig.suptitle(title)
    fig.tight_layout()
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=dpi)
    return path


def verdict_counts(codes: Sequence[VerdictCode]) -> dict[str, int]:
    """How many candidates got each code, by code name, in code order."""
    out: dict[str, int] = {}
    for code in sorted(set(codes)):
        out[code.name] = sum(1 for c in codes if c == code)
    return out
