"""scene.py: the request parser accepts the documented format and names the bad field of
anything else; the JSON schema (schemas/request.schema.json) agrees with it."""
from __future__ import annotations

import copy
import json
import math
from pathlib import Path

import jsonschema
import pytest

from world_irp_ros.errors import UnknownObjectError, ValidationError, VerdictCode
from world_irp_ros.scene import DEFAULT_HORIZON_S, DEFAULT_SAMPLES, parse_request

REPO = Path(__file__).resolve().parents[1]
SCHEMA = json.loads((REPO / "world_irp_ros" / "schemas" / "request.schema.json").read_text())
VALIDATOR = jsonschema.Draft202012Validator(SCHEMA)

BASE = {
    "environment": {"obstacles": [{"name": "table", "min": [1.0, -0.5, 0.0], "max": [2.0, 0.5, 0.7]}]},
    "objects": [{"id": "ball", "shape": "sphere", "radius": 0.03, "mass": 0.2, "position": [0.0, 0.0, 1.0]}],
    "actions": [{"id": "t1", "type": "throw", "object_id": "ball", "release_velocity": [3.0, 0.0, 1.0]}],
    "criteria": {"target": {"center": [1.5, 0.0, 0.7], "radius": 0.2},
                 "keep_out": [{"name": "laptop", "min": [1.2, 0.2, 0.7], "max": [1.6, 0.5, 1.0]}]},
    "horizon_s": 2.0,
}


def doc(edit=None):
    d = copy.deepcopy(BASE)
    if edit is not None:
        edit(d)
    return d


def field_of(d) -> str:
    with pytest.raises(ValidationError) as info:
        parse_request(d)
    return info.value.field


def test_base_request_parses_with_defaults():
    r = parse_request(doc())
    assert r.scene.environment.gravity_mps2 == (0.0, 0.0, -9.81)
    ball = r.scene.object("ball")
    assert ball.drag_coefficient == 0.47 and ball.restitution == 0.3 and ball.uncertainty.is_zero
    assert r.criteria.min_success_probability == 0.9 and r.criteria.max_collision_probability == 0.0
    assert r.criteria.target.mode == "first_contact" and r.criteria.target.height_tolerance_m == 0.1
    assert r.num_samples == 1 and r.seed == 0 and r.request_id == ""
    minimal = parse_request({"objects": BASE["objects"], "actions": BASE["actions"]})
    assert minimal.criteria.horizon_s == DEFAULT_HORIZON_S


def test_uncertainty_raises_the_default_sample_count():
    r = parse_request(doc(lambda d: d["objects"][0].update(uncertainty={"velocity_std": [0.1, 0.1, 0.1]})))
    assert not r.is_deterministic and r.num_samples == DEFAULT_SAMPLES


# ------------------------------------------------------------------------- bad values, named
@pytest.mark.parametrize("bad", [float("nan"), float("inf"), -float("inf")])
@pytest.mark.parametrize("where, expected", [
    (lambda d, x: d["objects"][0].update(mass=x), "objects[0].mass"),
    (lambda d, x: d["objects"][0].update(position=[0.0, x, 1.0]), "objects[0].position[1]"),
    (lambda d, x: d["actions"][0].update(release_velocity=[x, 0.0, 0.0]), "actions[0].release_velocity[0]"),
    (lambda d, x: d.update(environment={"air_density": x}), "environment.air_density"),
    (lambda d, x: d["criteria"]["target"].update(radius=x), "criteria.target.radius"),
    (lambda d, x: d.update(horizon_s=x), "horizon_s"),
])
def test_non_finite_numbers_name_the_field(where, expected, bad):
    assert field_of(doc(lambda d: where(d, bad))) == expected


@pytest.mark.parametrize("mass", [0, -1, -0.5])
def test_non_positive_mass(mass):
    with pytest.raises(ValidationError) as info:
        parse_request(doc(lambda d: d["objects"][0].update(mass=mass)))
    assert info.value.field == "objects[0].mass"
    assert str(info.value) == f"objects[0].mass: must be > 0, got {float(mass)}"
    assert info.value.code == VerdictCode.NO_GO_INVALID_REQUEST


@pytest.mark.parametrize("edit", [
    lambda d: d["objects"][0].update(radius=0.0),
    lambda d: d["objects"][0].update(radius=-0.1),
    lambda d: d["objects"].__setitem__(0, {"id": "ball", "shape": "box", "size": [0.1, 0.0, 0.1], "mass": 1}),
    lambda d: d["objects"].__setitem__(0, {"id": "ball", "shape": "cylinder", "radius": 0.1, "height": -1,
                                           "mass": 1}),
])
def test_non_positive_size_is_rejected_within_the_object(edit):
    assert field_of(doc(edit)).startswith("objects[0].")


@pytest.mark.parametrize("edit, expected", [
    (lambda d: d["objects"][0].update(radius=-0.1), "objects[0].radius"),
    (lambda d: d["objects"].__setitem__(0, {"id": "ball", "shape": "box", "size": [0.1, 0.0, 0.1], "mass": 1}),
     "objects[0].size[1]"),
    (lambda d: d["objects"].__setitem__(0, {"id": "ball", "shape": "cylinder", "radius": 0.1, "height": -1,
                                            "mass": 1}), "objects[0].height"),
])
def test_non_positive_size_names_the_json_key(edit, expected):
    assert field_of(doc(edit)) == expected


def test_size_keys_must_fit_the_shape():
    assert field_of(doc(lambda d: d["objects"][0].pop("radius"))) == "objects[0].radius"
    assert field_of(doc(lambda d: d["objects"][0].update(size=[1, 1, 1]))) == "objects[0].size"
    assert field_of(doc(lambda d: d["objects"][0].update(shape="cone"))) == "objects[0].shape"


def test_unknown_object_id():
    with pytest.raises(UnknownObjectError) as info:
        parse_request(doc(lambda d: d["actions"][0].update(object_id="rock")))
    assert info.value.field == "actions[0].object_id"
    assert info.value.code == VerdictCode.NO_GO_UNKNOWN_OBJECT
    assert "'rock'" in info.value.reason and "ball" in info.value.reason


def test_unknown_action_type():
    with pytest.raises(ValidationError) as info:
        parse_request(doc(lambda d: d["actions"][0].update(type="juggle")))
    assert info.value.field == "actions[0].type"
    assert "throw, drop, push" in info.value.reason


def test_action_specific_required_keys():
    assert field_of(doc(lambda d: d["actions"][0].pop("release_velocity"))) == "actions[0].release_velocity"
    assert field_of(doc(lambda d: d["actions"][0].update(type="push"))) == "actions[0].impulse"
    parse_request(doc(lambda d: d["actions"][0].update(type="drop")))  # a drop needs neither


@pytest.mark.parametrize("horizon", [0, -1.0, 10.5, 100])
def test_horizon_out_of_range(horizon):
    with pytest.raises(ValidationError) as info:
        parse_request(doc(lambda d: d.update(horizon_s=horizon)))
    assert info.value.field == "horizon_s"
    assert "(0, 10]" in info.value.reason


def test_horizon_upper_bound_is_inclusive():
    assert parse_request(doc(lambda d: d.update(horizon_s=10))).criteria.horizon_s == 10.0


@pytest.mark.parametrize("edit, expected", [
    (lambda d: d.update(colour="red"), "colour"),
    (lambda d: d["objects"][0].update(colour="red"), "objects[0].colour"),
    (lambda d: d["objects"][0].update(uncertainty={"spin_std": 1.0}), "objects[0].uncertainty.spin_std"),
    (lambda d: d["actions"][0].update(spin=[0, 0, 1]), "actions[0].spin"),
    (lambda d: d["environment"].update(wind=[1, 0, 0]), "environment.wind"),
    (lambda d: d["environment"]["obstacles"][0].update(colour="oak"), "environment.obstacles[0].colour"),
    (lambda d: d["criteria"].update(deadline=1), "criteria.deadline"),
    (lambda d: d["criteria"]["target"].update(shape="disc"), "criteria.target.shape"),
    (lambda d: d["criteria"]["keep_out"][0].update(soft=True), "criteria.keep_out[0].soft"),
])
def test_unknown_keys_are_named(edit, expected):
    with pytest.raises(ValidationError) as info:
        parse_request(doc(edit))
    assert info.value.field == expected
    assert "unknown key" in info.value.reason


def test_missing_required_keys():
    assert field_of({"objects": []}) == "actions"
    assert field_of(doc(lambda d: d["objects"][0].pop("mass"))) == "objects[0].mass"
    assert field_of(doc(lambda d: d["criteria"]["target"].pop("radius"))) == "criteria.target.radius"
    assert field_of(doc(lambda d: d.update(actions=[]))) == "actions"


def test_duplicate_ids_and_bad_counts():
    assert field_of(doc(lambda d: d["actions"].append(dict(d["actions"][0])))) == "actions[1].id"
    assert field_of(doc(lambda d: d["objects"].append(dict(d["objects"][0])))) == "objects[1].id"
    for samples in (0, 4097, 2.5, True):
        assert field_of(doc(lambda d: d.update(samples=samples))) == "samples"
    for seed in (-1, 1.5, True):
        assert field_of(doc(lambda d: d.update(seed=seed))) == "seed"


def test_probabilities_and_gravity():
    assert field_of(doc(lambda d: d["criteria"].update(min_success_probability=1.2))).endswith(
        "min_success_probability")
    assert field_of(doc(lambda d: d.update(environment={"gravity": [0, 0, 9.81]}))) == "environment.gravity"
    assert field_of(doc(lambda d: d["objects"][0].update(restitution=1.5))) == "objects[0].restitution"
    assert field_of(doc(lambda d: d["objects"][0].update(uncertainty={"mass_rel_std": 0.5}))) == \
        "objects[0].uncertainty.mass_rel_std"


def test_thresholds_are_named_within_criteria():
    assert field_of(doc(lambda d: d["criteria"].update(min_success_probability=1.2))) == \
        "criteria.min_success_probability"
    assert field_of(doc(lambda d: d["criteria"].update(max_collision_probability=-0.1))) == \
        "criteria.max_collision_probability"


def test_bad_box_is_named_within_its_obstacle():
    field = field_of(doc(lambda d: d["environment"]["obstacles"][0].update(max=[2.0, 0.5, -1.0])))
    assert field.startswith("environment.obstacles[0].") and field.endswith("max")


def test_bad_box_field_has_no_double_dot():
    assert field_of(doc(lambda d: d["environment"]["obstacles"][0].update(max=[2.0, 0.5, -1.0]))) == \
        "environment.obstacles[0].max"
    assert field_of(doc(lambda d: d["criteria"]["keep_out"][0].update(min=[0, 0, math.nan]))) == \
        "criteria.keep_out[0].min[2]"


def test_numeric_strings_are_not_numbers():
    assert field_of(doc(lambda d: d["objects"][0].update(mass="0.2"))) == "objects[0].mass"


def test_numbers_beyond_float_range_and_wrong_kinds_are_named():
    assert field_of(doc(lambda d: d["objects"][0].update(mass=10 ** 400))) == "objects[0].mass"
    assert field_of(doc(lambda d: d["objects"][0].update(shape=["sphere"]))) == "objects[0].shape"


def test_a_huge_quaternion_is_normalised_not_zeroed():
    """Its norm would overflow to inf, and q / inf is the zero quaternion."""
    r = parse_request(doc(lambda d: d["objects"][0].update(orientation=[1e200, 1e200, 0.0, 0.0])))
    assert r.scene.object("ball").orientation_wxyz == pytest.approx((math.sqrt(0.5), math.sqrt(0.5), 0.0, 0.0))


# ---------------------------------------------------------------------- schema agrees with parser
def test_schema_accepts_the_shipped_request():
    VALIDATOR.validate(json.loads((REPO / "config" / "scenes" / "stone_throw.json").read_text()))
    VALIDATOR.validate(doc())
    parse_request(json.loads((REPO / "config" / "scenes" / "stone_throw.json").read_text()))


@pytest.mark.parametrize("edit", [
    lambda d: d["objects"][0].update(mass=-1),
    lambda d: d["objects"][0].update(colour="red"),
    lambda d: d["objects"][0].update(size=[1, 1, 1]),
    lambda d: d["objects"][0].pop("radius"),
    lambda d: d["actions"][0].update(type="juggle"),
    lambda d: d["actions"][0].pop("release_velocity"),
    lambda d: d.update(horizon_s=11),
    lambda d: d.update(samples=0),
    lambda d: d.update(actions=[]),
    lambda d: d["criteria"]["target"].update(mode="never"),
    lambda d: d["environment"]["obstacles"][0].update(restitution=2),
    lambda d: d["objects"][0].update(uncertainty={"mass_rel_std": 0.5}),
])
def test_schema_and_parser_reject_the_same_documents(edit):
    d = doc(edit)
    assert not VALIDATOR.is_valid(d)
    with pytest.raises(ValidationError):
        parse_request(d)


def test_schema_documents_every_default():
    def walk(node, path):
        if isinstance(node, dict):
            if node.get("type") == "object":
                assert node.get("additionalProperties") is False, path
                for key, sub in node.get("properties", {}).items():
                    assert "description" in sub or "$ref" in sub, f"{path}.{key}"
            for key, sub in node.items():
                walk(sub, f"{path}/{key}")
        elif isinstance(node, list):
            for i, sub in enumerate(node):
                walk(sub, f"{path}[{i}]")

    walk(SCHEMA, "#")
