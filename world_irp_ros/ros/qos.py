"""QoS profile of every topic of the ``world_irp`` node, chosen per stream.

- Perception in (``~/object_states``): best effort, keep last 30, volatile: the newest state is
  what a rehearsal uses, and the queue keeps the observed track whole while the node is busy.
- Requests in (``~/candidate_actions``): reliable, keep last ``REQUEST_DEPTH``: a request must
  not be lost; a burst deeper than that is not expected from one motor controller.
- Verdicts out (``~/verdict``): reliable, keep last ``VERDICT_QUEUE_DEPTH`` (one message per
  candidate: the largest answer fits the queue).
- Trajectories and markers out: reliable, keep last 10 (RViz subscribes reliable by default).
- ``/diagnostics``: reliable, keep last 10, as diagnostic aggregators expect.
- A counter a late joiner must see at once (the demo's ``~/laptop_contacts``): reliable,
  transient local, keep last 1.
"""
from __future__ import annotations

from rclpy.qos import DurabilityPolicy, HistoryPolicy, QoSProfile, ReliabilityPolicy

from .params import VERDICT_QUEUE_DEPTH

REQUEST_DEPTH = 50


def _reliable(depth: int) -> QoSProfile:
    return QoSProfile(history=HistoryPolicy.KEEP_LAST, depth=depth,
                      reliability=ReliabilityPolicy.RELIABLE, durability=DurabilityPolicy.VOLATILE)


# Best effort like qos_profile_sensor_data, but a deeper queue (0.5 s at 60 Hz): when a long
# rehearsal holds the interpreter, states wait in the queue instead of being dropped, so the
# error signal still sees the whole observed track.
OBJECT_STATES = QoSProfile(history=HistoryPolicy.KEEP_LAST, depth=30, reliability=ReliabilityPolicy.BEST_EFFORT,
                           durability=DurabilityPolicy.VOLATILE)
CANDIDATE_ACTIONS = _reliable(REQUEST_DEPTH)
VERDICT = _reliable(VERDICT_QUEUE_DEPTH)
PREDICTED_TRAJECTORIES = _reliable(10)
MARKERS = _reliable(10)
DIAGNOSTICS = _reliable(10)
LAPTOP_CONTACTS = QoSProfile(history=HistoryPolicy.KEEP_LAST, depth=1, reliability=ReliabilityPolicy.RELIABLE,
                             durability=DurabilityPolicy.TRANSIENT_LOCAL)


def describe(profile: QoSProfile) -> str:
    """Short text of a profile for the documentation table, e.g. 'reliable, keep last 10'."""
    rel = "best effort" if profile.reliability == ReliabilityPolicy.BEST_EFFORT else "reliable"
    hist = "keep all" if profile.history == HistoryPolicy.KEEP_ALL else f"keep last {profile.depth}"
    dur = ", transient local" if profile.durability == DurabilityPolicy.TRANSIENT_LOCAL else ""
    return f"{rel}, {hist}{dur}"
