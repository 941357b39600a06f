"""Robustness perturbations in the LIBERO back-end (libero_env.py), applied through MuJoCo's model and data by a reset
that carries `perturb` (PROTOCOL.md), after set_init_state and before any step (so before the harness's wait steps).

The values arrive drawn by the harness (src/eval/perturb.ts); the layout is drawn here from the seed sent, because
an invalid placement is re-drawn. Every model field touched is put back to the value recorded when the task's env was
opened at the start of every reset, so nothing leaks from one episode into the next (robosuite's hard reset rebuilds
the model anyway; this also covers an env made with hard_reset=False).
  camera      model.cam_pos[agentview] += pos_offset (world metres: agentview hangs from the world body);
              model.cam_quat[agentview] = q(axis_angle) * cam_quat, a turn about world axes through the camera.
              The wrist camera is left alone.
  lighting    every light: light_diffuse *= intensity_scale (and light_specular), light_dir turned by
              direction_axis_angle, light_ambient += ambient_add.
  texture     the materials of the table, floor and wall geoms (geom_matid; geom_rgba where a geom has none):
              rgb + delta, reflected at the [0, 1] bounds (x > 1 -> rgb - delta) so every change has its full size.
              MuJoCo multiplies a material's texture by its rgba, so textured surfaces are tinted.
  layout      every movable object (the task's objects_dict: free joints; fixtures stay) shifted by shift_m in its
              own random direction and turned about z by up to yaw_deg, one object after the other, each one's
              direction re-drawn (up to PER_OBJECT_TRIES) until it penetrates nothing. A placement is valid when no object
              penetrates another object, a fixture or the robot by more than PENETRATION_M beyond what that pair
              already does in the unperturbed scene (LIBERO's own initial states have a bowl sunk 3-7 mm into its
              plate in this build) after mj_forward, and,
              after SETTLE_S of physics with the arm pinned, no object moved more than SETTLE_MOVE_M or tilted more
              than SETTLE_TILT_DEG beyond what it does in the unperturbed scene; the state is then put back to the placement (the
              wait steps settle it as they settle the standard scene). Invalid: re-drawn, up to MAX_DRAWS times, then
              the reset fails with the reason (the episode is recorded as a failure carrying it, never run silently).
  robot_init  robot joint qpos += joint_noise (7 arm joints), clipped to the joint ranges, velocities zeroed.
"""
import numpy as np

from rotation import aa2mat, aa2quat, qmul
from sidecar_errors import RequestError

MAX_DRAWS = 20
PER_OBJECT_TRIES = 20
PENETRATION_M = 0.002
SETTLE_S = 0.5
SETTLE_MOVE_M = 0.02
SETTLE_TILT_DEG = 30.0
TEXTURE_GEOMS = {"table": ("table_visual",), "floor": ("floor",), "walls": ("wall_",)}


def _vec(p, key, n, where):
    v = p.get(key)
    if not isinstance(v, list) or len(v) != n or not all(isinstance(x, (int, float)) for x in v):
        raise RequestError(f"field 'perturb.{where}.{key}' must be a list of {n} numbers, got {v!r}")
    return np.asarray(v, float)


def _reflect(rgb, d):
    x = rgb + d
    return np.clip(np.where((x > 1) | (x < 0), rgb - d, x), 0, 1)


class LiberoPerturber:
    """Records the model's defaults when a task's env is opened; applies a reset's `perturb`."""

    FIELDS = ("cam_pos", "cam_quat", "light_diffuse", "light_specular", "light_dir", "light_ambient", "mat_rgba", "geom_rgba")

    def __init__(self, env):
        import mujoco

        self.mj = mujoco
        self.env = env  # LIBERO's OffScreenRenderEnv
        m = self._model()
        self.defaults = {f: np.array(getattr(m, f), copy=True) for f in self.FIELDS}

    def _model(self):
        return self.env.env.sim.model._model

    def _data(self):
        return self.env.env.sim.data._data

    def _name(self, kind, i):
        return self.mj.mj_id2name(self._model(), kind, i) or ""

    def restore(self):
        m = self._model()
        for f, v in self.defaults.items():
            if getattr(m, f).shape == v.shape:
                getattr(m, f)[:] = v

    def apply(self, p):
        """Apply the reset's `perturb` (None: restore only); returns the report for the reply, or None."""
        self.restore()
        if p is None:
            return None
        if not isinstance(p, dict):
            raise RequestError(f"field 'perturb' must be an object, got {p!r}")
        unknown = set(p) - {"camera", "lighting", "texture", "layout", "robot_init"}
        if unknown:
            raise RequestError(f"field 'perturb': unknown dimension(s) {sorted(unknown)} (camera, lighting, texture, layout, robot_init)")
        mj, m, d = self.mj, self._model(), self._data()
        report = {}
        if "camera" in p:
            c = p["camera"]
            pos, aa = _vec(c, "pos_offset", 3, "camera"), _vec(c, "axis_angle", 3, "camera")
            i = mj.mj_name2id(m, mj.mjtObj.mjOBJ_CAMERA, "agentview")
            m.cam_pos[i] = m.cam_pos[i] + pos
            q = qmul(aa2quat(aa), m.cam_quat[i])
            m.cam_quat[i] = q / np.linalg.norm(q)
            report["camera"] = {"agentview_pos": m.cam_pos[i].tolist(), "agentview_quat_wxyz": m.cam_quat[i].tolist()}
        if "lighting" in p:
            li = p["lighting"]
            s = float(li.get("intensity_scale", 1.0))
            R = aa2mat(_vec(li, "direction_axis_angle", 3, "lighting"))
            a = float(li.get("ambient_add", 0.0))
            m.light_diffuse[:] = m.light_diffuse * s
            m.light_specular[:] = m.light_specular * s
            m.light_dir[:] = (R @ np.asarray(m.light_dir).T).T
            m.light_ambient[:] = m.light_ambient + a
            report["lighting"] = {"lights": int(m.nlight), "diffuse": m.light_diffuse.tolist(), "dir": m.light_dir.tolist(), "ambient": m.light_ambient.tolist()}
        if "texture" in p:
            t = p["texture"]
            rep = {}
            for part, prefixes in TEXTURE_GEOMS.items():
                delta = _vec(t, part, 3, "texture")
                geoms = [g for g in range(m.ngeom) if any(self._name(mj.mjtObj.mjOBJ_GEOM, g).startswith(x) for x in prefixes)]
                mats = sorted({int(m.geom_matid[g]) for g in geoms if m.geom_matid[g] >= 0})
                for k in mats:
                    m.mat_rgba[k, 0:3] = _reflect(m.mat_rgba[k, 0:3], delta)
                for g in geoms:
                    if m.geom_matid[g] < 0:
                        m.geom_rgba[g, 0:3] = _reflect(m.geom_rgba[g, 0:3], delta)
                rep[part] = {"geoms": len(geoms), "materials": [self._name(mj.mjtObj.mjOBJ_MATERIAL, k) for k in mats]}
            report["texture"] = rep
        if "layout" in p:
            report["layout"] = self._layout(p["layout"])
        if "robot_init" in p:
            noise = _vec(p["robot_init"], "joint_noise", 7, "robot_init")
            robot = self.env.env.robots[0]
            idx = list(robot._ref_joint_pos_indexes)
            vidx = list(robot._ref_joint_vel_indexes)
            jids = [mj.mj_name2id(m, mj.mjtObj.mjOBJ_JOINT, n) for n in robot.robot_joints]
            before = d.qpos[idx].copy()
            lo, hi = m.jnt_range[jids, 0], m.jnt_range[jids, 1]
            d.qpos[idx] = np.clip(before + noise[: len(idx)], lo, hi)
            d.qvel[vidx] = 0
            report["robot_init"] = {"joint_offset_rad": (d.qpos[idx] - before).tolist()}
        mj.mj_forward(m, d)
        return report

    def _objects(self):
        """(name, qpos address, qvel address, geom ids) of every movable object (a free joint of objects_dict)."""
        mj, m = self.mj, self._model()
        out = []
        for name, obj in self.env.env.objects_dict.items():
            joints = [j for j in obj.joints if j]
            if not joints:
                continue
            j = mj.mj_name2id(m, mj.mjtObj.mjOBJ_JOINT, joints[0])
            if j < 0 or m.jnt_type[j] != mj.mjtJoint.mjJNT_FREE:
                continue
            body = m.jnt_bodyid[j]
            geoms = [g for g in range(m.ngeom) if self._root_child(m.geom_bodyid[g], body)]
            out.append((name, int(m.jnt_qposadr[j]), int(m.jnt_dofadr[j]), set(geoms)))
        return out

    def _root_child(self, b, root):
        m = self._model()
        while b > 0:
            if b == root:
                return True
            b = m.body_parentid[b]
        return False

    def _layout(self, lay):
        mj, m, d = self.mj, self._model(), self._data()
        shift = float(lay.get("shift_m", 0.0))
        yaw = np.radians(float(lay.get("yaw_deg", 0.0)))
        seed = lay.get("seed")
        if not isinstance(seed, int):
            raise RequestError(f"field 'perturb.layout.seed' must be an integer, got {seed!r}")
        if shift == 0 and yaw == 0:  # level 0: the standard scene, untouched (not even a settle run)
            return {"shift_m": 0.0, "yaw_deg": 0.0, "draws": 0, "rejected": [], "moved_xy_m_yaw_deg": {}}
        rng = np.random.default_rng(seed)
        objs = self._objects()
        q0, v0, t0 = d.qpos.copy(), d.qvel.copy(), d.time
        mj.mj_forward(m, d)
        self._overlap0 = self._overlaps(objs)  # what the unperturbed scene already penetrates
        baseline = self._settle(objs)  # how the unperturbed scene settles
        d.qpos[:], d.qvel[:], d.time = q0, v0, t0
        reasons = []
        for draw in range(1, MAX_DRAWS + 1):
            d.qpos[:], d.qvel[:] = q0, v0
            moved = {}
            # Object by object: a direction and turn re-drawn (up to PER_OBJECT_TRIES) until that object penetrates
            # nothing; then the whole placement is checked again and let settle.
            for name, qa, _va, geoms in objs:
                for _ in range(PER_OBJECT_TRIES):
                    ang, turn = rng.uniform(0, 2 * np.pi), rng.uniform(-yaw, yaw)
                    d.qpos[qa: qa + 7] = q0[qa: qa + 7]
                    d.qpos[qa] += shift * np.cos(ang)
                    d.qpos[qa + 1] += shift * np.sin(ang)
                    q = qmul(aa2quat([0.0, 0.0, turn]), q0[qa + 3: qa + 7])
                    d.qpos[qa + 3: qa + 7] = q / np.linalg.norm(q)
                    mj.mj_forward(m, d)
                    if self._penetration([(name, qa, _va, geoms)]) is None:
                        break
                moved[name] = [shift * np.cos(ang), shift * np.sin(ang), float(np.degrees(turn))]
            mj.mj_forward(m, d)
            placed = d.qpos.copy()
            why = self._penetration(objs) or self._unsettled(objs, baseline)
            d.time = t0
            if why is None:
                d.qpos[:], d.qvel[:] = placed, v0  # start from the placement: the wait steps settle it
                mj.mj_forward(m, d)
                return {"shift_m": shift, "yaw_deg": float(np.degrees(yaw)), "draws": draw, "rejected": reasons[:5],
                        "moved_xy_m_yaw_deg": moved}
            reasons.append(why)
        d.qpos[:], d.qvel[:] = q0, v0
        d.time = t0
        mj.mj_forward(m, d)
        raise RuntimeError(f"layout: no valid placement in {MAX_DRAWS} draws of a {shift} m shift (last: {reasons[-1]}); use a lower layout level")

    def _overlaps(self, objs):
        """{(name, name): depth m} of every contact between a movable object and anything else, deepest per pair."""
        mj, m, d = self.mj, self._model(), self._data()
        owner = {g: name for name, _qa, _va, geoms in objs for g in geoms}
        out = {}
        for i in range(d.ncon):
            c = d.contact[i]
            g1, g2 = int(c.geom1), int(c.geom2)
            a, b = owner.get(g1), owner.get(g2)
            if (a or b) and a != b:
                key = tuple(sorted((a or self._name(mj.mjtObj.mjOBJ_GEOM, g1) or f"geom {g1}", b or self._name(mj.mjtObj.mjOBJ_GEOM, g2) or f"geom {g2}")))
                out[key] = max(out.get(key, 0.0), -float(c.dist))
        return out

    def _penetration(self, objs):
        """The first pair that penetrates PENETRATION_M deeper than it does in the unperturbed scene, or None."""
        for (n1, n2), depth in self._overlaps(objs).items():
            if depth - self._overlap0.get((n1, n2), 0.0) > PENETRATION_M:
                return f"{n1} penetrates {n2} by {depth * 1000:.1f} mm"
        return None

    def _settle(self, objs):
        """Each object's (displacement, tilt deg) after SETTLE_S of physics with the arm pinned."""
        mj, m, d = self.mj, self._model(), self._data()
        robot = self.env.env.robots[0]
        idx, vidx = list(robot._ref_joint_pos_indexes), list(robot._ref_joint_vel_indexes)
        arm = d.qpos[idx].copy()
        start = {name: d.qpos[qa: qa + 7].copy() for name, qa, _va, _g in objs}
        for _ in range(int(round(SETTLE_S / m.opt.timestep))):
            mj.mj_step(m, d)
            d.qpos[idx], d.qvel[vidx] = arm, 0
        out = {}
        for name, qa, _va, _g in objs:
            w = abs(float(np.dot(start[name][3:7], d.qpos[qa + 3: qa + 7])))
            out[name] = (d.qpos[qa: qa + 3] - start[name][0:3], float(np.degrees(2 * np.arccos(min(1.0, w)))))
        return out

    def _unsettled(self, objs, baseline):
        """Let the placement settle; the reason an object is not stable, or None. Stable = it moves and tilts as it does
        in the unperturbed scene (baseline), within SETTLE_MOVE_M and SETTLE_TILT_DEG: LIBERO's own initial states
        are not exactly at rest, and a build with simplified collision meshes lets every object sink."""
        for name, (dp, tilt) in self._settle(objs).items():
            bp, btilt = baseline[name]
            if np.linalg.norm(dp - bp) > SETTLE_MOVE_M:
                return f"{name} moved {np.linalg.norm(dp - bp) * 100:.1f} cm more than unperturbed while settling"
            if tilt - btilt > SETTLE_TILT_DEG:
                return f"{name} tipped over while settling ({tilt:.0f} deg)"
        return None
