"""The paper's dm_control tasks: the suite's own task classes on a physics built from edited MJCF.

Rewards, observations and episode initialisation come from `dm_control.suite` unchanged; the
context is written into the model XML before the physics is compiled (the authors' approach),
so every derived constant is consistent. Edits per task (the authors' `update_physics`):

| task | key | edit |
|---|---|---|
| cartpole | length | pole geom `fromto` = 0 0 0 0 0 2*length, its mass pinned to 0.1, hinge damping 2e-6 |
| ball_in_cup | gravity, distance | option gravity z = -g; string tendon range [0, d]; ball body z += 0.3 - d |
| walker | gravity, actuator_strength | option gravity z = -g; every actuator gear x s |
| cheetah | length | x and z of `pos` and the half-length of the 6 leg geoms; x and z of the shin/foot body `pos` |
| reacher_* | length | x of the hand/finger body `pos`; x of the arm/hand geom end point (`fromto[3]`) |

Binary keys never touch the XML: `action_factor` multiplies the whole action and `action_order`
swaps the two actions (reacher_perm) before the task's `before_step` (see `paper_mujoco.py`).
Numbers are written with Python's shortest round-trip repr, so MuJoCo parses exactly the double
computed here. The observation dict is flattened in sorted key order, as gymnasium's
`FlattenObservation` does in the authors' stack (e.g. walker: height, orientations, velocity).
"""

from __future__ import annotations

import importlib
import xml.etree.ElementTree as ET
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np

from lit_dmash.envs.simulators import DMControlSimulator, quiet_absl

Edit = Callable[[ET.Element, dict[str, float]], None]


def _scaled(text: str, factors: dict[int, float]) -> str:
    """A space-separated vector with entries `i` multiplied by `factors[i]` (others kept verbatim)."""
    parts = text.split(" ")
    return " ".join(repr(float(p) * factors[i]) if i in factors else p for i, p in enumerate(parts))


def _named(root: ET.Element, tag: str, names: set[str]) -> list[ET.Element]:
    return [element for element in root.iter(tag) if element.get("name") in names]


def _set_gravity(root: ET.Element, gravity: float) -> None:
    option = root.find(".//option")
    if option is None:
        option = ET.SubElement(root, "option")
    current = option.get("gravity")
    xy = current.split(" ")[:2] if current is not None else ["0", "0"]
    option.set("gravity", " ".join([*xy, repr(-gravity)]))


def edit_cartpole(root: ET.Element, context: dict[str, float]) -> None:
    for pole in root.findall("./worldbody/body/body"):
        if pole.get("name") != "pole_1":
            continue
        for joint in _named(pole, "joint", {"hinge_1"}):
            joint.set("damping", repr(2e-6))
        for geom in _named(pole, "geom", {"pole_1"}):
            geom.set("mass", repr(0.1))
            geom.set("fromto", f"0 0 0 0 0 {abs(2 * context['length'])!r}")


def edit_ball_in_cup(root: ET.Element, context: dict[str, float]) -> None:
    _set_gravity(root, context["gravity"])
    tendon = root.find("./tendon/spatial")
    default_distance = float(tendon.get("range").split(" ")[1])
    tendon.set("range", f"0 {context['distance']!r}")
    for ball in root.findall("./worldbody/body"):
        if ball.get("name") == "ball":
            x, y, z = ball.get("pos").split(" ")
            ball.set("pos", f"{x} {y} {float(z) + (default_distance - context['distance'])!r}")


def edit_walker(root: ET.Element, context: dict[str, float]) -> None:
    _set_gravity(root, context["gravity"])
    for actuator in root.findall("./actuator/"):
        actuator.set("gear", repr(float(actuator.get("gear", 1)) * context["actuator_strength"]))


def edit_cheetah(root: ET.Element, context: dict[str, float]) -> None:
    length = context["length"]
    for geom in _named(root, "geom", {"bthigh", "bshin", "bfoot", "fthigh", "fshin", "ffoot"}):
        geom.set("pos", _scaled(geom.get("pos"), {0: length, 2: length}))
        geom.set("size", _scaled(geom.get("size"), {1: length}))
    for body in _named(root, "body", {"bshin", "bfoot", "fshin", "ffoot"}):
        body.set("pos", _scaled(body.get("pos"), {0: length, 2: length}))


def edit_reacher(root: ET.Element, context: dict[str, float]) -> None:
    length = context["length"]
    for body in _named(root, "body", {"hand", "finger"}):
        body.set("pos", _scaled(body.get("pos"), {0: length}))
    for geom in _named(root, "geom", {"arm", "hand"}):
        geom.set("fromto", _scaled(geom.get("fromto"), {3: length}))


@dataclass(frozen=True)
class DMCTask:
    """A suite domain, its XML edit, how to make its task object, and its control timestep."""

    domain: str
    edit: Edit
    make_task: Callable[[Any, np.random.RandomState], Any]
    control_timestep: float | None = None  # None: one physics step per action


_REACHER_EASY = DMCTask("reacher", edit_reacher, lambda m, rng: m.Reacher(target_size=m._BIG_TARGET, random=rng))
DMC_TASKS: dict[str, DMCTask] = {
    "cartpole": DMCTask("cartpole", edit_cartpole, lambda m, rng: m.Balance(swing_up=False, sparse=False, random=rng)),
    "ball_in_cup": DMCTask("ball_in_cup", edit_ball_in_cup, lambda m, rng: m.BallInCup(random=rng), 0.02),
    "walker": DMCTask(
        "walker", edit_walker, lambda m, rng: m.PlanarWalker(move_speed=m._WALK_SPEED, random=rng), 0.025
    ),
    "cheetah": DMCTask("cheetah", edit_cheetah, lambda m, rng: m.Cheetah(random=rng)),
    "reacher_easy": _REACHER_EASY,
    "reacher_hard": DMCTask("reacher", edit_reacher, lambda m, rng: m.Reacher(target_size=m._SMALL_TARGET, random=rng)),
    "reacher_perm": _REACHER_EASY,
}


def context_xml(task: str, context: dict[str, float]) -> tuple[bytes, dict[str, Any]]:
    """The task's model XML with `context` written in, and the suite's assets."""
    spec = DMC_TASKS[task]
    module = importlib.import_module(f"dm_control.suite.{spec.domain}")
    xml, assets = module.get_model_and_assets()
    root = ET.fromstring(xml)
    spec.edit(root, context)
    return ET.tostring(root), assets


def make_dmc_simulator(task: str, context: dict[str, float], seed: int) -> DMControlSimulator:
    """One simulation of paper task `task` in `context`; its task draws episodes from RandomState(seed)."""
    from dm_control.rl import control

    spec = DMC_TASKS[task]
    module = importlib.import_module(f"dm_control.suite.{spec.domain}")
    xml, assets = context_xml(task, context)
    with quiet_absl():
        physics = module.Physics.from_xml_string(xml, assets)
    env = control.Environment(
        physics,
        spec.make_task(module, np.random.RandomState(seed)),
        time_limit=float("inf"),
        control_timestep=spec.control_timestep,
    )
    return DMControlSimulator(env, sort_keys=True)
