"""Robustness perturbations in the test back-end (reach_env.py), applied by a reset that carries `perturb`
(PROTOCOL.md), after the initial state and the fixture jitter are set and before any step.

The values arrive drawn by the harness (src/eval/perturb.ts); only the layout is drawn here, from the seed sent,
because an invalid placement is re-drawn. What each dimension means in this scene (numpy only):
  camera      the agentview camera looks straight down from CAMERA_HEIGHT above the table: pos_offset moves it
              (x, y pan the view; z zooms, the field width scaling with the height), axis_angle turns it (the
              tilt moves the view's centre by CAMERA_HEIGHT x tan(tilt); the turn about the vertical rotates the
              view). The wrist camera is left alone.
  lighting    one light from above: intensity_scale multiplies every pixel, direction_axis_angle tilts the light
              so the table gets a brightness gradient along the tilt, ambient_add adds ambient_add x 128 grey.
              Both cameras.
  texture     table rgb (in [0, 1]) added to the table colour; the scene has no floor or walls (reported as such).
  layout      every block moved by shift_m in its own random direction (the blocks are axis-aligned squares, so
              yaw_deg is reported as not applicable); a placement with two blocks closer than BLOCK_SIZE + 1 cm or a
              block off the table is re-drawn, up to MAX_DRAWS times, then the reset fails (never silently run).
  robot_init  the scene has no arm: the gripper's start moves by ARM_M metres per rad of the first three joints'
              noise (clipped to the workspace).
"""
import numpy as np

from rotation import aa2mat
from sidecar_errors import RequestError

CAMERA_HEIGHT = 0.6
ARM_M = 0.5
MAX_DRAWS = 100
TABLE_HALF = 0.27  # a block's centre stays this far from the middle: the whole block on the table
MIN_GAP = 0.01


def _vec(p, key, n, where):
    v = p.get(key)
    if not isinstance(v, list) or len(v) != n or not all(isinstance(x, (int, float)) for x in v):
        raise RequestError(f"field 'perturb.{where}.{key}' must be a list of {n} numbers, got {v!r}")
    return np.asarray(v, float)


class View:
    """How agentview maps upright pixels to the table, and the light and table colour both cameras see."""

    def __init__(self):
        self.centre = np.zeros(2)  # view centre offset (m)
        self.zoom = 1.0
        self.yaw = 0.0
        self.intensity = 1.0
        self.light_dir = np.zeros(2)
        self.ambient = 0.0
        self.table_delta = np.zeros(3)

    def grid(self, n):
        """World (x, y) of each upright agentview pixel."""
        c = (np.arange(n) + 0.5) / n
        u = (-0.3 + c[None, :] * 0.6) * self.zoom
        v = (0.3 - c[:, None] * 0.6) * self.zoom
        cs, sn = np.cos(self.yaw), np.sin(self.yaw)
        return self.centre[0] + cs * u - sn * v, self.centre[1] + sn * u + cs * v

    def light(self, img, gx, gy):
        """The light's effect on an upright render seeing world grid (gx, gy)."""
        if self.intensity == 1.0 and not self.light_dir.any() and self.ambient == 0.0:
            return img
        shade = self.intensity * (1.0 + 2.0 * (self.light_dir[0] * gx + self.light_dir[1] * gy))
        out = img.astype(np.float64) * np.broadcast_to(shade, img.shape[:2])[..., None] + 128.0 * self.ambient
        return np.clip(np.rint(out), 0, 255).astype(np.uint8)


def apply(env, p):
    """Apply `p` (the reset's `perturb` field, or None) to a freshly reset ReachEnv; returns (View, report)."""
    view = View()
    if p is None:
        return view, None
    if not isinstance(p, dict):
        raise RequestError(f"field 'perturb' must be an object, got {p!r}")
    unknown = set(p) - {"camera", "lighting", "texture", "layout", "robot_init"}
    if unknown:
        raise RequestError(f"field 'perturb': unknown dimension(s) {sorted(unknown)} (camera, lighting, texture, layout, robot_init)")
    report = {}
    if "camera" in p:
        c = p["camera"]
        pos, aa = _vec(c, "pos_offset", 3, "camera"), _vec(c, "axis_angle", 3, "camera")
        R = aa2mat(aa)
        down = R @ np.array([0.0, 0.0, -1.0])
        view.centre = pos[0:2] + CAMERA_HEIGHT * down[0:2] / -down[2]
        view.zoom = (CAMERA_HEIGHT + pos[2]) / CAMERA_HEIGHT
        view.yaw = float(np.arctan2(R[1, 0], R[0, 0]))
        report["camera"] = {"view_centre_m": view.centre.tolist(), "zoom": view.zoom, "yaw_rad": view.yaw}
    if "lighting" in p:
        li = p["lighting"]
        view.intensity = float(li.get("intensity_scale", 1.0))
        d = aa2mat(_vec(li, "direction_axis_angle", 3, "lighting")) @ np.array([0.0, 0.0, -1.0])
        view.light_dir = d[0:2]
        view.ambient = float(li.get("ambient_add", 0.0))
        report["lighting"] = {"intensity": view.intensity, "light_dir_xy": view.light_dir.tolist(), "ambient": view.ambient}
    if "texture" in p:
        view.table_delta = _vec(p["texture"], "table", 3, "texture") * 255.0
        report["texture"] = {"table_rgb_delta": view.table_delta.tolist(), "floor": "no floor in the test scene", "walls": "no walls in the test scene"}
    if "layout" in p:
        report["layout"] = _layout(env, p["layout"])
    if "robot_init" in p:
        jn = _vec(p["robot_init"], "joint_noise", 7, "robot_init")
        before = env.pos.copy()
        import reach_env

        env.pos = np.clip(env.pos + ARM_M * jn[0:3], reach_env.WORKSPACE_LO, reach_env.WORKSPACE_HI)
        report["robot_init"] = {"gripper_start_offset_m": (env.pos - before).tolist()}
    return view, report


def _valid(blocks, block_size):
    xy = blocks[:, 0:2]
    if np.any(np.abs(xy) > TABLE_HALF):
        return False
    for i in range(len(xy)):
        for j in range(i + 1, len(xy)):
            if np.max(np.abs(xy[i] - xy[j])) < block_size + MIN_GAP:
                return False
    return True


def _layout(env, lay):
    from reach_env import BLOCK_SIZE

    shift = float(lay.get("shift_m", 0.0))
    seed = lay.get("seed")
    if not isinstance(seed, int):
        raise RequestError(f"field 'perturb.layout.seed' must be an integer, got {seed!r}")
    rng = np.random.default_rng(seed)
    start = env.blocks.copy()
    for draw in range(1, MAX_DRAWS + 1):
        ang = rng.uniform(0, 2 * np.pi, len(start))
        cand = start.copy()
        cand[:, 0] += shift * np.cos(ang)
        cand[:, 1] += shift * np.sin(ang)
        if _valid(cand, BLOCK_SIZE):
            env.blocks = cand
            return {"shift_m": shift, "draws": draw, "moved_xy_m": (cand - start)[:, 0:2].tolist(),
                    "yaw": "not applicable (square blocks)"}
    raise RuntimeError(f"layout: no valid placement (blocks apart and on the table) in {MAX_DRAWS} draws of a {shift} m shift; "
                       "use a lower layout level")
