"""verdicts.py: GO only when success and collision probabilities meet the criteria; every other
outcome is a NO-GO with the right code and a readable reason. Rollout results are built by hand
(no backend), with the batch layout rollout ``s * C + c`` = sample s of candidate c."""
from __future__ import annotations

import math

import numpy as np
import pytest

from world_irp_ros.backends.base import MAX_EVENTS, MODE_FLIGHT, MODE_REST, RolloutResult
from world_irp_ros.errors import VerdictCode
from world_irp_ros.scene import Criteria, KeepOutZone, TargetRegion
from world_irp_ros.verdicts import Verdict, choose_best, judge, no_go, no_go_all, sample_outcomes

TARGET = TargetRegion(center_m=(2.0, 0.0, 0.0), radius_m=0.2, height_tolerance_m=0.05)
ZONE = KeepOutZone("laptop", (1.0, 1.0, 0.0), (1.5, 1.5, 0.5))
HALF = 0.03  # sphere radius: the centre lands 3 cm above the surface


def make_result(landing, *, landing_time=None, final=None, final_mode=None, entry=None, clearance=None):
    """A RolloutResult for N = len(landing) rollouts; ``landing`` rows are (x, y, z) or None (no
    landing within the horizon). ``entry``/``clearance``: (Z, N) per keep-out zone."""
    n = len(landing)
    lp = np.full((3, n), np.nan)
    lt = np.full(n, np.nan)
    for i, p in enumerate(landing):
        if p is not None:
            lp[:, i] = p
            lt[i] = 0.5 if landing_time is None else landing_time[i]
    fin = np.where(np.isfinite(lp), lp, 0.0) if final is None else np.asarray(final, dtype=float).T
    mode = np.full(n, MODE_REST) if final_mode is None else np.asarray(final_mode)
    rest = np.where(mode == MODE_REST, 1.0, np.nan)
    z_entry = np.zeros((0, n)) if entry is None else np.asarray(entry, dtype=float)
    z_clear = (np.zeros((0, n)) if clearance is None else np.asarray(clearance, dtype=float))
    t = np.linspace(0.0, 1.0, 4)
    return RolloutResult(
        sample_times_s=t, positions_m=np.zeros((4, 3, n)), velocities_mps=np.zeros((4, 3, n)),
        landing_time_s=lt, landing_point_m=lp, rest_time_s=rest, final_position_m=fin, final_mode=mode,
        keep_out_entry_time_s=z_entry, keep_out_clearance_m=z_clear, event_count=np.zeros(n, dtype=np.int64),
        event_kind=np.full((MAX_EVENTS, n), -1), event_index=np.full((MAX_EVENTS, n), -1),
        event_time_s=np.full((MAX_EVENTS, n), np.nan), event_position_m=np.full((MAX_EVENTS, 3, n), np.nan))


def hit(dx=0.0, dy=0.0):
    """A landing point near the target centre, at the right height for a 3 cm sphere."""
    return (2.0 + dx, 0.0 + dy, HALF)


def criteria(**kw):
    kw.setdefault("target", TARGET)
    return Criteria(**kw)


def run(landing, samples=1, candidates=None, crit=None, zone_names=(), **kw):
    n = len(landing)
    c = candidates or n // samples
    ids = [f"a{i}" for i in range(c)]
    margin = kw.pop("margin", 0.0)
    return judge(ids, make_result(landing, **kw), np.full(n, HALF), margin, crit or criteria(), samples,
                 list(zone_names))


# ------------------------------------------------------------------------------------ codes
def test_go_when_every_sample_lands_in_the_target():
    (v,) = run([hit(0.05, 0.0)])
    assert v.code == VerdictCode.GO and v.go
    assert v.success_probability == 1.0 and v.collision_probability == 0.0
    assert v.miss_distance_m == pytest.approx(0.05)
    assert v.clearance_m == math.inf  # no keep-out zones
    assert v.lands and v.landing_point_m == pytest.approx(hit(0.05, 0.0))
    assert "lands 0.050 m from the target centre" in v.reasons[0]


def test_collision_is_no_go_even_when_the_target_is_hit():
    (v,) = run([hit()], crit=criteria(keep_out=(ZONE,)), zone_names=["laptop"], entry=[[0.3]], clearance=[[0.0]])
    assert v.code == VerdictCode.NO_GO_COLLISION and not v.go
    assert v.collision_probability == 1.0
    assert "laptop" in v.reasons[0] and "t=0.300 s" in v.reasons[0]
    assert v.clearance_m == 0.0


def test_collision_probability_threshold():
    # 4 samples of one candidate, one enters the zone: P(collision) = 0.25.
    landing = [hit()] * 4
    entry = [[np.nan, 0.4, np.nan, np.nan]]
    clear = [[0.1, 0.0, 0.1, 0.1]]
    strict = run(landing, samples=4, crit=criteria(keep_out=(ZONE,)), zone_names=["laptop"], entry=entry,
                 clearance=clear)[0]
    assert strict.code == VerdictCode.NO_GO_COLLISION and strict.collision_probability == 0.25
    lenient = run(landing, samples=4, crit=criteria(keep_out=(ZONE,), max_collision_probability=0.3),
                  zone_names=["laptop"], entry=entry, clearance=clear)[0]
    assert lenient.code == VerdictCode.GO
    assert lenient.clearance_m == pytest.approx(0.1)  # nominal (sample 0) clearance


def test_miss_outside_the_radius():
    (v,) = run([hit(0.5, 0.0)])
    assert v.code == VerdictCode.NO_GO_MISSES_TARGET
    assert v.miss_distance_m == pytest.approx(0.5)
    assert "first lands 0.500 m from the target centre" in v.reasons[0]


def test_miss_at_the_wrong_height():
    (v,) = run([(2.0, 0.0, 0.5)])
    assert v.code == VerdictCode.NO_GO_MISSES_TARGET
    assert v.miss_distance_m == pytest.approx(0.0)
    assert "height" in v.reasons[0]


def test_no_landing_within_the_horizon_misses():
    (v,) = run([None], final_mode=[MODE_FLIGHT])
    assert v.code == VerdictCode.NO_GO_MISSES_TARGET
    assert not v.lands and v.landing_point_m is None and math.isnan(v.landing_time_s)
    assert "does not touch any surface" in v.reasons[0]


def test_uncertain_when_the_nominal_hits_but_too_few_samples_do():
    landing = [hit(), hit(0.3), hit(0.05), hit(0.4)]  # sample 0 (nominal) hits, 2 of 4 do
    (v,) = run(landing, samples=4)
    assert v.code == VerdictCode.NO_GO_UNCERTAIN
    assert v.success_probability == 0.5
    assert "P(success)=0.50" in v.reasons[0]


def test_min_success_probability_is_inclusive():
    landing = [hit()] * 9 + [hit(1.0)]
    (v,) = run(landing, samples=10, crit=criteria(min_success_probability=0.9))
    assert v.code == VerdictCode.GO and v.success_probability == pytest.approx(0.9)


def test_rest_mode_needs_the_object_at_rest_in_the_target():
    crit = criteria(target=TargetRegion((2.0, 0.0, 0.0), 0.2, 0.05, mode="rest"))
    at_rest = run([hit()], crit=crit, final=[hit(0.1)], final_mode=[MODE_REST])[0]
    assert at_rest.code == VerdictCode.GO
    assert at_rest.miss_distance_m == pytest.approx(0.1)  # judged where it rests, not where it landed
    rolled_off = run([hit()], crit=crit, final=[hit(0.5)], final_mode=[MODE_REST])[0]
    assert rolled_off.code == VerdictCode.NO_GO_MISSES_TARGET
    moving = run([hit()], crit=crit, final=[hit(0.1)], final_mode=[MODE_FLIGHT])[0]
    assert moving.code == VerdictCode.NO_GO_MISSES_TARGET


def test_passing_a_zone_closer_than_the_path_is_resolved_is_a_collision():
    """Entries are found on each step's chord, which may lie up to the margin from the curved
    path: a clearance below the margin cannot rule an entry out."""
    crit = criteria(keep_out=(ZONE,))
    clear, graze = run([hit(), hit()], crit=crit, zone_names=["laptop"], entry=[[np.nan, np.nan]],
                       clearance=[[4e-4, 1.4e-4]], margin=np.array([3.4e-4, 3.4e-4]))
    assert clear.code == VerdictCode.GO
    assert graze.code == VerdictCode.NO_GO_COLLISION and graze.collision_probability == 1.0
    assert "passes keep-out zone 'laptop' closer than the path is resolved to" in graze.reasons[0]
    assert "0.14 mm away, resolution 0.34 mm" in graze.reasons[0]


def test_keep_out_margin_is_the_chord_bound_of_one_step():
    from world_irp_ros.rehearsal import build_batch
    from world_irp_ros.scene import parse_request
    from world_irp_ros.verdicts import keep_out_margin_m

    def batch(air_density, speed):
        return build_batch(parse_request({
            "environment": {"air_density": air_density},
            "objects": [{"id": "ball", "shape": "sphere", "radius": 0.02, "mass": 0.0027, "position": [0, 0, 1]}],
            "actions": [{"id": "a", "type": "throw", "object_id": "ball", "release_velocity": [speed, 0, 0]}],
            "horizon_s": 2.0}), 1)
    dt2_8 = (1.0 / 60.0) ** 2 / 8.0
    # No drag: gravity alone bends the path (0.34 mm at dt = 1/60 s).
    assert keep_out_margin_m(batch(0.0, 20.0)) == pytest.approx([9.81 * dt2_8])
    # A ping-pong ball at 20 m/s: drag k v^2 (~53 m/s^2) dominates; slower than terminal speed
    # (~8.6 m/s here) the bound uses the terminal speed, where drag equals gravity.
    fast = batch(1.225, 20.0)
    k = fast.drag_k_per_m[0]
    assert keep_out_margin_m(fast) == pytest.approx([(9.81 + k * 400.0) * dt2_8])
    assert keep_out_margin_m(batch(1.225, 1.0)) == pytest.approx([2 * 9.81 * dt2_8])


def test_without_a_target_any_collision_free_outcome_is_go():
    crit = Criteria(keep_out=(ZONE,))
    go, bad = run([(5.0, 5.0, HALF), (1.2, 1.2, HALF)], crit=crit, zone_names=["laptop"],
                  entry=[[np.nan, 0.2]], clearance=[[2.0, 0.0]])
    assert go.code == VerdictCode.GO and math.isnan(go.miss_distance_m)
    assert bad.code == VerdictCode.NO_GO_COLLISION


def test_candidates_are_the_inner_batch_axis():
    # 2 candidates x 3 samples: rollout s * 2 + c. Candidate 0 always hits; candidate 1 only in sample 0.
    landing = [hit(), hit(), hit(), hit(0.5), hit(), hit(0.6)]
    v0, v1 = run(landing, samples=3, candidates=2)
    assert v0.code == VerdictCode.GO and v0.success_probability == 1.0
    assert v1.code == VerdictCode.NO_GO_UNCERTAIN and v1.success_probability == pytest.approx(1 / 3)
    out = sample_outcomes(make_result(landing), np.full(6, HALF), 0.0, criteria(), 3, 2)
    assert out.success.shape == (3, 2)
    assert out.success[:, 1].tolist() == [True, False, False]


# --------------------------------------------------------------------------------- choosing
def verdict(i, code=VerdictCode.GO, ps=1.0, pc=0.0, miss=0.0, clearance=math.inf):
    return Verdict(f"a{i}", code, ["r"], ps, pc, True, (0.0, 0.0, 0.0), 0.5, (0.0, 0.0, 0.0), miss, clearance)


def test_choose_best_prefers_success_then_miss_then_clearance():
    vs = [verdict(0, ps=0.9), verdict(1, ps=1.0, miss=0.1), verdict(2, ps=1.0, miss=0.05, clearance=0.1),
          verdict(3, ps=1.0, miss=0.05, clearance=0.3), verdict(4, VerdictCode.NO_GO_COLLISION, ps=1.0)]
    assert choose_best(vs) == 3
    assert [v.chosen for v in vs] == [False, False, False, True, False]


def test_choose_best_is_minus_one_without_a_go():
    vs = [verdict(0, VerdictCode.NO_GO_MISSES_TARGET), verdict(1, VerdictCode.NO_GO_UNCERTAIN)]
    vs[0].chosen = True
    assert choose_best(vs) == -1
    assert not any(v.chosen for v in vs)


def test_choose_best_treats_a_missing_miss_distance_as_zero():
    vs = [verdict(0, miss=0.1), verdict(1, miss=float("nan"))]
    assert choose_best(vs) == 1


# --------------------------------------------------------------------------- NO-GO helpers
def test_no_go_refuses_the_go_code():
    with pytest.raises(ValueError):
        no_go("a", VerdictCode.GO, "never")


def test_no_go_all_is_conservative():
    vs = no_go_all(["a", "b"], VerdictCode.NO_GO_BACKEND_ERROR, "backend down")
    assert [v.action_id for v in vs] == ["a", "b"]
    for v in vs:
        assert not v.go and v.code == VerdictCode.NO_GO_BACKEND_ERROR
        assert v.reasons == ["backend down"]
        assert v.success_probability == 0.0 and v.collision_probability == 1.0


def test_to_dict_is_strict_json():
    import json

    d = run([None], final_mode=[MODE_FLIGHT])[0].to_dict()
    json.dumps(d, allow_nan=False)
    assert d["code"] == "NO_GO_MISSES_TARGET" and d["go"] is False
    assert d["landing_point"] is None and d["landing_time_s"] is None
    assert d["clearance_m"] is None  # inf: no zones
    assert set(d) == {"action_id", "go", "code", "reasons", "landing_point", "landing_time_s", "rest_point",
                      "success_probability", "collision_probability", "chosen", "miss_distance_m", "clearance_m"}


def test_rest_mode_reason_for_an_object_still_moving():
    crit = criteria(target=TargetRegion((2.0, 0.0, 0.0), 0.2, 0.05, mode="rest"))
    (v,) = run([hit()], crit=crit, final=[hit(0.5)], final_mode=[MODE_FLIGHT])
    assert v.code == VerdictCode.NO_GO_MISSES_TARGET
    assert "does not come to rest" in v.reasons[0]
