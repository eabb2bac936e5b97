"""The torch engine of the analytic backend: ``physics.model`` run on float64 tensors.

Used for ``device="cuda"`` and, on a CPU, as ``engine="torch"`` to check that the very functions the
CUDA path runs give the numba kernel's answers. One Python loop over integration steps; inside a
step, ``advance_segment`` is applied to all rollouts still short of the step's end (masked), until
every rollout has handled its events. About one tensor operation per line of the model.

Three ways to run that loop (``mode``):

* ``"eager"``: after each pass over a step the device says whether any rollout is still short of
  the step's end (one sync per pass), and ``any_`` skips masked-off work (one sync each);
* ``"fixed"``: ``GRAPH_PASSES`` passes per step and no value read back (``without_device_sync``);
  a rollout still short of a step's end after them (more events in one step) is flagged, and then
  the whole batch is run ``"eager"`` instead. Same results, no sync: what a CUDA graph can hold;
* ``"graph"`` (CUDA; ``"fixed"`` elsewhere): ``"fixed"`` captured into a CUDA graph once per batch
  structure and replayed, so a rollout is one graph launch instead of one kernel launch per tensor
  operation. A batch's structure is what the graph holds fixed: its array shapes, the step times
  and the world (obstacles, zones, gravity); the first batch of a structure runs ``"fixed"`` and is
  captured.
"""
from __future__ import annotations

import logging
import threading
from collections import OrderedDict
from typing import Any

import numpy as np

from ..physics.model import MAX_SEGMENTS, MODE_FLIGHT, advance_segment, init_rollout
from ..physics.ops import without_device_sync

MODES = ("eager", "fixed", "graph")
# Segment passes per step without syncs: the benchmark scene needs at most 3 (an impact, the
# flight after it and a second impact); a step holding more events makes the batch run eagerly.
GRAPH_PASSES = 4
# Captured graphs kept (least recently used dropped): one per batch structure.
GRAPH_CACHE_SIZE = 4
_INPUTS = ("pos0", "vel0", "hext", "t_rel", "rolls", "kdrag", "rest_c", "fric", "crr", "tsamp")

_log = logging.getLogger(__name__)
_graphs: OrderedDict = OrderedDict()
_graphs_lock = threading.Lock()      # a graph's input and output buffers serve one call at a time


def run(prep: dict[str, Any], out: dict[str, np.ndarray], device: str, mode: str = "eager") -> dict[str, np.ndarray]:
    """Roll the prepared batch forward on ``device`` (see the module doc for ``mode``); returns the
    filled output arrays (NumPy)."""
    import torch

    if mode not in MODES:
        raise ValueError(f"mode must be one of {MODES}, got {mode!r}")
    dev = torch.device(device)
    with torch.inference_mode():
        if mode == "graph" and dev.type == "cuda":
            with _graphs_lock:
                result = _replay(prep, out, dev)
        elif mode == "eager":
            result = _roll(_tensors(prep, out, dev), _world(prep), None)
        else:
            with without_device_sync():
                result = _roll(_tensors(prep, out, dev), _world(prep), GRAPH_PASSES)
        if result is None or bool(result["unfinished"].any()):
            result = _roll(_tensors(prep, out, dev), _world(prep), None)
        return {name: value.cpu().numpy() for name, value in result.items() if name != "unfinished"}


def _tensors(prep: dict[str, Any], out: dict[str, np.ndarray], dev) -> dict[str, Any]:
    """The batch's per-rollout inputs and the output arrays (holding their unset values) on ``dev``."""
    import torch

    def tensor(a):
        return torch.as_tensor(np.asarray(a), dtype=torch.float64, device=dev).clone()

    t = {name: tensor(prep[name]) for name in _INPUTS}
    t.update({name: tensor(arr) for name, arr in out.items()})
    return t


def _world(prep: dict[str, Any]) -> dict[str, Any]:
    """What every rollout shares, as Python numbers: scalars in tensor expressions, no device
    copies inside the loop (and constants of a captured graph)."""
    gx, gy, gz = (float(x) for x in prep["gravity"])
    return {"omin": prep["omin"].tolist(), "omax": prep["omax"].tolist(), "zmin": prep["zmin"].tolist(),
            "zmax": prep["zmax"].tolist(), "oe": prep["oe"].tolist(), "omu": prep["omu"].tolist(),
            "gx": gx, "gy": gy, "gz": gz, "ground": float(prep["ground"]), "e_g": float(prep["e_g"]),
            "mu_g": float(prep["mu_g"]), "horizon": float(prep["horizon"]), "nsmax": int(prep["nsmax"]),
            "offs": tuple(prep["offs"].tolist())}


def _roll(o: dict[str, Any], w: dict[str, Any], passes: int | None) -> dict[str, Any]:
    """The step loop on the tensors ``o`` (outputs written in place) and world ``w``: until every
    rollout reaches each step's end (``passes`` None: one sync per pass), or ``passes`` passes per
    step with the rollouts left short of a step's end flagged in ``"unfinished"``."""
    import torch

    n = o["pos0"].shape[1]
    dev = o["pos0"].device
    col = torch.arange(n, device=dev)
    hx, hy, hz = o["hext"][0], o["hext"][1], o["hext"][2]
    t_r = o["t_rel"]
    zeros = torch.zeros(n, dtype=torch.float64, device=dev)
    omin, omax, zmin, zmax = w["omin"], w["omax"], w["zmin"], w["zmax"]
    px, py, pz, ks, evc = init_rollout(o["pos0"][0], o["pos0"][1], o["pos0"][2], hx, hy, hz, t_r, w["ground"],
                                       omin, omax, zmin, zmax, o["tsamp"], col, o["pos_s"], o["vel_s"], o["ko_t"],
                                       o["ko_c"], o["ev_kind"], o["ev_idx"], o["ev_t"], o["ev_p"])
    px, py, pz, ks, evc = (zeros + x for x in (px, py, pz, ks, evc))
    vx, vy, vz = o["vel0"][0].clone(), o["vel0"][1].clone(), o["vel0"][2].clone()
    w_spin = zeros.clone()
    mode = zeros + MODE_FLIGHT
    sup = zeros - 1.0
    mu_s = zeros.clone()
    t = t_r.clone()
    unfinished = torch.zeros(n, dtype=torch.bool, device=dev)
    for off in w["offs"]:
        t_end = torch.clamp(t_r + off, max=w["horizon"])
        for _ in range(MAX_SEGMENTS if passes is None else passes):
            active = t < t_end
            if passes is None and not bool(active.any()):
                break
            (t, px, py, pz, vx, vy, vz, w_spin, mode, sup, mu_s, ks, evc) = advance_segment(
                active, t, t_end, px, py, pz, vx, vy, vz, w_spin, mode, sup, mu_s, ks, evc,
                hx, hy, hz, o["kdrag"], o["rest_c"], o["fric"], o["crr"], o["rolls"],
                w["gx"], w["gy"], w["gz"], w["ground"], w["e_g"], w["mu_g"], omin, omax, w["oe"], w["omu"],
                zmin, zmax, o["tsamp"], w["nsmax"], col, o["pos_s"], o["vel_s"], o["land_t"], o["land_p"],
                o["rest_t"], o["ko_t"], o["ko_c"], o["ev_kind"], o["ev_idx"], o["ev_t"], o["ev_p"])
        if passes is not None:
            unfinished = unfinished | (t < t_end)
        else:       # as the numba kernel: the rollout is marked failed and carries on
            o["status"].masked_fill_(t < t_end, 1.0)
    result = {name: value for name, value in o.items() if name not in _INPUTS}
    result.update(fin_p=torch.stack((px, py, pz)), fin_v=torch.stack((vx, vy, vz)), fin_mode=mode, ks_out=ks,
                  ev_cnt=evc, unfinished=unfinished)
    return result


def _structure(prep: dict[str, Any], out: dict[str, np.ndarray], w: dict[str, Any], dev) -> tuple:
    """What a captured graph holds fixed: the device, every array's shape and the shared world ``w``."""
    shapes = tuple((name, np.shape(prep[name])) for name in _INPUTS) + tuple(
        (name, arr.shape) for name, arr in sorted(out.items()))
    return (str(dev), shapes, tuple((k, repr(v)) for k, v in sorted(w.items())))


def _replay(prep: dict[str, Any], out: dict[str, np.ndarray], dev) -> dict[str, Any] | None:
    """``"fixed"`` through a CUDA graph of the batch's structure, captured on its first batch.
    None when capturing failed (the caller then runs eagerly; logged once per structure)."""
    import torch

    w = _world(prep)
    key = _structure(prep, out, w, dev)
    entry = _graphs.get(key)
    if entry is None:
        static = _tensors(prep, out, dev)
        # The first batch runs uncaptured on a side stream (as torch asks before a capture) and is
        # this call's answer; the graph then records the same work on copies of the inputs.
        side = torch.cuda.Stream(dev)
        side.wait_stream(torch.cuda.current_stream(dev))
        with torch.cuda.stream(side), without_device_sync():
            first = _roll({k: v.clone() for k, v in static.items()}, w, GRAPH_PASSES)
        torch.cuda.current_stream(dev).wait_stream(side)
        try:
            graph = torch.cuda.CUDAGraph()
            with torch.cuda.graph(graph), without_device_sync():
                _graphs[key] = (graph, static, _roll(static, w, GRAPH_PASSES))
        except Exception as err:      # a capture the driver refuses: answer eagerly, say so once
            _graphs[key] = (None, None, None)
            _log.warning("CUDA graph capture failed (%s: %s); this batch structure runs eagerly",
                         type(err).__name__, err)
        while len(_graphs) > GRAPH_CACHE_SIZE:
            _graphs.popitem(last=False)
        return first
    _graphs.move_to_end(key)
    graph, static, result = entry
    if graph is None:
        return None
    fresh = {**{name: prep[name] for name in _INPUTS}, **out}
    for name, value in static.items():
        value.copy_(torch.as_tensor(np.asarray(fresh[name]), dtype=torch.float64), non_blocking=False)
    graph.replay()
    return {name: value.clone() for name, value in result.items()}
