"""The torch engine of the analytic backend: ``physics.model`` run on float64 tensors.

Used for ``device="cuda"`` and, on a CPU, as ``engine="torch"`` to check that the very functions the
CUDA path runs give the numba kernel's answers. One Python loop over integration steps; inside a
step, ``advance_segment`` is applied to all rollouts still short of the step's end (masked), until
every rollout has handled its events. Eager: about one tensor operation per line of the model.
"""
from __future__ import annotations

from typing import Any

import numpy as np

from ..errors import BackendError
from ..physics.model import MAX_SEGMENTS, MODE_FLIGHT, advance_segment, init_rollout


def run(prep: dict[str, Any], out: dict[str, np.ndarray], device: str) -> dict[str, np.ndarray]:
    """Roll the prepared batch forward on ``device``; returns the filled output arrays (NumPy)."""
    import torch

    dev = torch.device(device)
    with torch.inference_mode():
        def tensor(a):
            return torch.as_tensor(np.asarray(a), dtype=torch.float64, device=dev).clone()

        n = prep["pos0"].shape[1]
        o = {name: tensor(arr) for name, arr in out.items()}
        col = torch.arange(n, device=dev)
        tsamp = tensor(prep["tsamp"])
        pos0, vel0, hext = tensor(prep["pos0"]), tensor(prep["vel0"]), tensor(prep["hext"])
        t_r = tensor(prep["t_rel"])
        rolls, kdrag, rest_c = tensor(prep["rolls"]), tensor(prep["kdrag"]), tensor(prep["rest_c"])
        fric, crr = tensor(prep["fric"]), tensor(prep["crr"])
        hx, hy, hz = hext[0], hext[1], hext[2]
        # The shared world as Python floats: scalars in tensor expressions, no device copies.
        omin, omax = prep["omin"].tolist(), prep["omax"].tolist()
        zmin, zmax = prep["zmin"].tolist(), prep["zmax"].tolist()
        oe, omu = prep["oe"].tolist(), prep["omu"].tolist()
        gx, gy, gz = (float(x) for x in prep["gravity"])
        ground, e_g, mu_g = float(prep["ground"]), float(prep["e_g"]), float(prep["mu_g"])
        horizon, nsmax = float(prep["horizon"]), int(prep["nsmax"])
        zeros = torch.zeros(n, dtype=torch.float64, device=dev)

        px, py, pz, ks, evc = init_rollout(pos0[0], pos0[1], pos0[2], hx, hy, hz, t_r, ground, omin, omax,
                                           zmin, zmax, tsamp, col, o["pos_s"], o["vel_s"], o["ko_t"], o["ko_c"],
                                           o["ev_kind"], o["ev_idx"], o["ev_t"], o["ev_p"])
        px, py, pz, ks, evc = (zeros + x for x in (px, py, pz, ks, evc))
        vx, vy, vz = vel0[0].clone(), vel0[1].clone(), vel0[2].clone()
        w = zeros.clone()
        mode = zeros + MODE_FLIGHT
        sup = zeros - 1.0
        mu_s = zeros.clone()
        t = t_r.clone()
        for off in prep["offs"].tolist():
            t_end = torch.clamp(t_r + off, max=horizon)
            for _ in range(MAX_SEGMENTS):
                active = t < t_end
                if not bool(active.any()):
                    break
                (t, px, py, pz, vx, vy, vz, w, mode, sup, mu_s, ks, evc) = advance_segment(
                    active, t, t_end, px, py, pz, vx, vy, vz, w, mode, sup, mu_s, ks, evc,
                    hx, hy, hz, kdrag, rest_c, fric, crr, rolls,
                    gx, gy, gz, ground, e_g, mu_g, omin, omax, oe, omu, zmin, zmax,
                    tsamp, nsmax, col, o["pos_s"], o["vel_s"], o["land_t"], o["land_p"], o["rest_t"],
                    o["ko_t"], o["ko_c"], o["ev_kind"], o["ev_idx"], o["ev_t"], o["ev_p"])
            else:
                if bool((t < t_end).any()):
                    raise BackendError(f"more than {MAX_SEGMENTS} events inside one step", "analytic")
        o["fin_p"] = torch.stack((px, py, pz))
        o["fin_v"] = torch.stack((vx, vy, vz))
        o["fin_mode"] = mode
        o["ks_out"] = ks
        o["ev_cnt"] = evc
        return {name: value.cpu().numpy() for name, value in o.items()}
