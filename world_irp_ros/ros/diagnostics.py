"""Request statistics of the node and the ``/diagnostics`` message made from them."""
from __future__ import annotations

import collections
import threading
import time
from dataclasses import dataclass

import numpy as np
from diagnostic_msgs.msg import DiagnosticArray, DiagnosticStatus, KeyValue

from ..errors import VerdictCode

RATE_WINDOW_S = 10.0      # request rate is counted over this many seconds
LATENCY_WINDOW = 1000     # p50/p99 over this many most recent requests
STATUS_NAME = "world_irp: rehearsal"


class RequestStats:
    """Thread-safe counters: requests (time and latency), plans, verdict codes."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._times: collections.deque[float] = collections.deque()
        self._latencies: collections.deque[float] = collections.deque(maxlen=LATENCY_WINDOW)
        self.requests = 0
        self.plans = 0
        self.codes: collections.Counter[str] = collections.Counter()

    def record(self, latency_ms: float, codes: list[VerdictCode]) -> None:
        """Count one answered request: its latency and the codes of its verdicts."""
        now = time.monotonic()
        with self._lock:
            self.requests += 1
            self._times.append(now)
            self._latencies.append(latency_ms)
            self.codes.update(VerdictCode(c).name for c in codes)

    def record_plan(self) -> None:
        """Count one plan goal."""
        with self._lock:
            self.plans += 1

    def snapshot(self) -> dict:
        """Counts, request rate over the last ``RATE_WINDOW_S`` and latency p50/p99 (ms), now."""
        now = time.monotonic()
        with self._lock:
            while self._times and self._times[0] < now - RATE_WINDOW_S:
                self._times.popleft()
            lat = np.array(self._latencies, dtype=np.float64)
            return {"requests": self.requests, "plans": self.plans,
                    "rate_hz": len(self._times) / RATE_WINDOW_S,
                    "p50": float(np.percentile(lat, 50)) if lat.size else float("nan"),
                    "p99": float(np.percentile(lat, 99)) if lat.size else float("nan"),
                    "codes": dict(self.codes)}


@dataclass
class NodeStatus:
    """What the node knows besides the statistics, for one diagnostics message."""

    lifecycle_state: str
    backend: str
    device: str
    objects_known: int
    newest_state_age_s: float | None   # None: no state received yet
    state_timeout_s: float
    problem: str = ""                  # e.g. why the last configure failed


def _fmt(x: float) -> str:
    return "nan" if not np.isfinite(x) else f"{x:.3f}"


def diagnostic_array(stamp, hardware_id: str, stats: dict, status: NodeStatus) -> DiagnosticArray:
    """One ``DiagnosticStatus``: OK while active with fresh states, WARN when not active or the
    newest state is stale or missing, ERROR after a failed configure."""
    s = DiagnosticStatus(name=STATUS_NAME, hardware_id=hardware_id)
    age = status.newest_state_age_s
    if status.problem:
        s.level, s.message = DiagnosticStatus.ERROR, status.problem
    elif status.lifecycle_state != "active":
        s.level, s.message = DiagnosticStatus.WARN, f"node is {status.lifecycle_state}: answering NO_GO_NOT_ACTIVE"
    elif age is None:
        s.level, s.message = DiagnosticStatus.WARN, "no object state received yet"
    elif age > status.state_timeout_s:
        s.level, s.message = DiagnosticStatus.WARN, f"newest object state is {age:.2f} s old (stale)"
    else:
        s.level, s.message = DiagnosticStatus.OK, "active"
    values = {
        "lifecycle_state": status.lifecycle_state,
        "backend": status.backend,
        "device": status.device,
        "requests_total": str(stats["requests"]),
        "plans_total": str(stats["plans"]),
        "request_rate_hz": _fmt(stats["rate_hz"]),
        "latency_p50_ms": _fmt(stats["p50"]),
        "latency_p99_ms": _fmt(stats["p99"]),
        "objects_known": str(status.objects_known),
        "newest_state_age_s": "none" if age is None else _fmt(age),
    }
    for code in VerdictCode:
        values[f"verdicts_{code.name}"] = str(stats["codes"].get(code.name, 0))
    s.values = [KeyValue(key=k, value=v) for k, v in values.items()]
    out = DiagnosticArray()
    out.header.stamp = stamp
    out.status = [s]
    return out
