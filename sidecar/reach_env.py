"""The test back-end: a point gripper that must reach a target on a table and close there, with real geometry.

It answers the same requests as the LIBERO back-end, through the same protocol code, with observations in the
same keys and units as robosuite 1.4's OffScreenRenderEnv, so CI can drive the whole evaluation loop without
LIBERO. numpy only.

Physics (one step = 50 ms, like LIBERO's 20 Hz OSC_POSE controller, libero-facts.md 3.1-3.2):
  - a[0:6] are clipped to [-1, 1]; the gripper moves 0.05 m x a[0:3] from its measured position (clipped to the
    workspace box) and its orientation turns by the axis-angle 0.5 x a[3:6] about world axes: R <- R(0.5 a) R.
  - the gripper command c moves 0.25 per step toward sign(a[6]) (-1 open, +1 close, 0 holds), like robosuite's
    PandaGripper (about 8 steps from open to closed); finger joints read +-0.0387 x (1 - c) / 2 m.
  - success (the done flag) = the gripper within SUCCESS_RADIUS of the target and c >= 0.75 (closed on it).
Images (HxWx3 uint8), rendered upside down like robosuite's OpenGL frames (row 0 is the bottom):
  - agentview looks straight down on the table. Upright, pixel (row r, col c) sees world
        x = -0.3 + (c + 0.5) * 0.6 / W,   y = 0.3 - (r + 0.5) * 0.6 / H
    the target is a red disc (TARGET_RGB, radius 0.03 m), the gripper a blue (open) or green (closed) square.
  - robot0_eye_in_hand looks down from the gripper: the same scene, 3x magnified, centred on the gripper.
The target always lies on the table at z = TARGET_Z; the 50 fixed initial states per task come from a seeded
generator, so they are the same on every machine. Like LIBERO's reset, which re-samples fixture placements that
set_init_state does not restore (openvla#342), every reset moves the target by up to PLACEMENT_JITTER in x and y,
drawn from the env's generator: seeded at `open` and again by a reset that carries a `seed`, drawn on otherwise.
"""
import json
import os
import signal
import time
import zlib

import numpy as np

from sidecar_errors import RequestError

SUITE_TASKS = {"libero_spatial": 10, "libero_object": 10, "libero_goal": 10, "libero_10": 10, "libero_90": 90}
NUM_INIT_STATES = 50
WORKSPACE_LO = np.array([-0.3, -0.3, 0.90])
WORKSPACE_HI = np.array([0.3, 0.3, 1.30])
TARGET_Z = 0.92
SUCCESS_RADIUS = 0.025
FULL_OPEN = 0.0387
PLACEMENT_JITTER = 0.002
TARGET_RGB = (220, 30, 30)
TABLE_RGB = (200, 180, 150)
# Pointing down: the gripper frame rotated pi about world x, quaternion (x, y, z, w) = (1, 0, 0, 0).
R_DOWN = np.diag([1.0, -1.0, -1.0])


def aa2mat(v):
    th = float(np.linalg.norm(v))
    if th < 1e-12:
        return np.eye(3)
    k = np.asarray(v) / th
    K = np.array([[0, -k[2], k[1]], [k[2], 0, -k[0]], [-k[1], k[0], 0]])
    return np.eye(3) + np.sin(th) * K + (1 - np.cos(th)) * (K @ K)


def mat2quat_xyzw(R):
    """Rotation matrix -> unit quaternion (x, y, z, w), w >= 0 (robosuite's order)."""
    t = np.trace(R)
    if t > 0:
        s = 2.0 * np.sqrt(t + 1.0)
        q = [(R[2, 1] - R[1, 2]) / s, (R[0, 2] - R[2, 0]) / s, (R[1, 0] - R[0, 1]) / s, 0.25 * s]
    else:
        i = int(np.argmax(np.diag(R)))
        j, k = (i + 1) % 3, (i + 2) % 3
        s = 2.0 * np.sqrt(1.0 + R[i, i] - R[j, j] - R[k, k])
        q = [0.0, 0.0, 0.0, (R[k, j] - R[j, k]) / s]
        q[i] = 0.25 * s
        q[j] = (R[j, i] + R[i, j]) / s
        q[k] = (R[k, i] + R[i, k]) / s
    q = np.array(q)
    q = q / np.linalg.norm(q)
    return q if q[3] >= 0 else -q


def init_states(suite, task):
    """(50, 7) float64: eef xyz, target xyz, gripper command; fixed per (suite, task)."""
    rng = np.random.default_rng([zlib.crc32(suite.encode()), task])
    s = np.zeros((NUM_INIT_STATES, 7))
    s[:, 0:2] = rng.uniform(-0.1, 0.1, (NUM_INIT_STATES, 2))
    s[:, 2] = rng.uniform(1.10, 1.20, NUM_INIT_STATES)
    s[:, 3:5] = rng.uniform(-0.25, 0.25, (NUM_INIT_STATES, 2))
    s[:, 5] = TARGET_Z
    s[:, 6] = -1.0
    return s


class ReachEnv:
    def __init__(self):
        self.suite = None
        # For the harness's tests: fault injection ("MARKER:TASK:INIT:T" = SIGKILL itself, hang, or raise, once,
        # before env step T of that episode; the marker file gets the sidecar's pid), a log of every action received
        # (one JSON line per step) and a log of every reset (seeded or not, the placement drawn, resets since open).
        self.kill_once = os.environ.get("RDT_TEST_ENV_KILL_ONCE")
        self.hang_once = os.environ.get("RDT_TEST_ENV_HANG_ONCE")
        self.raise_once = os.environ.get("RDT_TEST_ENV_RAISE_ONCE")
        self.action_log = os.environ.get("RDT_TEST_ENV_ACTION_LOG")
        self.reset_log = os.environ.get("RDT_TEST_ENV_RESET_LOG")

    def versions(self):
        return {"numpy": np.__version__, "backend": "reach (test geometry, no LIBERO)"}

    def open(self, req):
        suite, task = req.get("suite"), req.get("task")
        if suite not in SUITE_TASKS:
            raise RequestError(f"field 'suite': unknown suite '{suite}' (known: {', '.join(SUITE_TASKS)})")
        if not isinstance(task, int) or not 0 <= task < SUITE_TASKS[suite]:
            raise RequestError(f"field 'task': {suite} has tasks 0..{SUITE_TASKS[suite] - 1}, got {task!r}")
        res = req.get("resolution")
        if not isinstance(res, int) or not 8 <= res <= 1024:
            raise RequestError(f"field 'resolution' must be an integer in 8..1024, got {res!r}")
        self.suite, self.task, self.res = suite, task, res
        self.horizon = int(req.get("horizon", 1000))
        self.inits = init_states(suite, task)
        self.init_index = None
        self.rng = np.random.default_rng(int(req.get("seed") or 0))
        self.resets_since_open = 0
        self._build_grid()
        return {"language": f"reach the red target and close the gripper on it (task {task})",
                "task_name": f"REACH_{suite.upper()}_task{task}", "num_init_states": NUM_INIT_STATES, "state_dim": 7,
                "cameras": ["agentview", "robot0_eye_in_hand"], "horizon": self.horizon}

    def _build_grid(self):
        n = self.res
        c = (np.arange(n) + 0.5) / n
        self.gx = -0.3 + c[None, :] * 0.6  # world x of each upright column
        self.gy = 0.3 - c[:, None] * 0.6  # world y of each upright row

    def reset(self, req):
        if self.suite is None:
            raise RequestError("reset before open")
        if req.get("state") is not None:
            state = np.asarray(req["state"], float)
            if state.shape != (7,):
                raise RequestError(f"field 'state' must hold 7 numbers for this back-end, got {state.size}")
            self.init_index = None
        else:
            k = req.get("init_index")
            if not isinstance(k, int) or not 0 <= k < NUM_INIT_STATES:
                raise RequestError(f"field 'init_index' must be 0..{NUM_INIT_STATES - 1}, got {k!r}")
            state = self.inits[k]
            self.init_index = k
        if req.get("seed") is not None:
            self.rng = np.random.default_rng(int(req["seed"]))
        placement = self.rng.uniform(-PLACEMENT_JITTER, PLACEMENT_JITTER, 2)
        if self.reset_log:
            with open(self.reset_log, "a") as f:
                f.write(json.dumps({"suite": self.suite, "task": self.task, "init": self.init_index, "seeded": req.get("seed") is not None,
                                    "placement": placement.tolist(), "since_open": self.resets_since_open, "pid": os.getpid()}) + "\n")
        self.resets_since_open += 1
        self.pos = state[0:3].copy()
        self.target = state[3:6].copy()
        self.target[0:2] += placement
        self.grip = float(state[6])
        self.R = R_DOWN.copy()
        self.t = 0
        return self._observe(False)

    def step(self, action):
        if self.suite is None or getattr(self, "t", None) is None:
            raise RequestError("step before reset")
        if self.t >= self.horizon:
            raise RequestError("executing action in terminated episode (the horizon is reached; open with a larger horizon)")
        self._maybe_die()
        if self.action_log:
            with open(self.action_log, "a") as f:
                f.write(json.dumps({"suite": self.suite, "task": self.task, "init": self.init_index, "t": self.t, "action": list(action)}) + "\n")
        a = np.clip(np.asarray(action, float), -1, 1)
        self.pos = np.clip(self.pos + 0.05 * a[0:3], WORKSPACE_LO, WORKSPACE_HI)
        self.R = aa2mat(0.5 * a[3:6]) @ self.R
        if a[6] != 0:
            self.grip = float(np.clip(self.grip + 0.25 * np.sign(a[6]), -1, 1))
        self.t += 1
        done = np.linalg.norm(self.pos - self.target) <= SUCCESS_RADIUS and self.grip >= 0.75
        return self._observe(done)

    def _maybe_die(self):
        for spec, fault in ((self.kill_once, "kill"), (self.hang_once, "hang"), (self.raise_once, "raise")):
            if not spec:
                continue
            marker, task, init, t = spec.rsplit(":", 3)
            if (self.task, self.init_index, self.t) == (int(task), int(init), int(t)) and not os.path.exists(marker):
                with open(marker, "w") as f:
                    f.write(str(os.getpid()))
                if fault == "kill":
                    os.kill(os.getpid(), signal.SIGKILL)
                if fault == "raise":
                    raise FloatingPointError("injected: the physics diverged (RDT_TEST_ENV_RAISE_ONCE)")
                time.sleep(3600)

    def _observe(self, done):
        f = (1 - self.grip) / 2
        x, y, z = self.pos
        obs = {
            "robot0_eef_pos": self.pos.tolist(),
            "robot0_eef_quat": mat2quat_xyzw(self.R).tolist(),
            "robot0_gripper_qpos": [FULL_OPEN * f, -FULL_OPEN * f],
            # A fixed smooth map of the pose, in rad, so the field has the real shape (7 arm joints) and units.
            "robot0_joint_pos": [float(np.arctan2(y, x + 0.5)), z - 1.0, x, y, -x, -y, f],
        }
        images = [("agentview_image", self._render(self.gx, self.gy)),
                  ("robot0_eye_in_hand_image", self._render(x + (self.gx - 0.0) / 3, y + self.gy / 3))]
        return obs, images, done, 1.0 if done else 0.0, self.t

    def _render(self, gx, gy):
        """Upright render on the world grid (gx, gy), returned upside down (robosuite's OpenGL row order)."""
        n = self.res
        img = np.empty((n, n, 3), np.uint8)
        img[:] = TABLE_RGB
        half = 0.02 + 0.05 * (WORKSPACE_HI[2] - self.pos[2])  # nearer the camera when lower
        gsq = (np.abs(gx - self.pos[0]) <= half) & (np.abs(gy - self.pos[1]) <= half)
        img[np.broadcast_to(gsq, (n, n))] = (40, 200, 60) if self.grip >= 0.75 else (40, 60, 220)
        disc = (gx - self.target[0]) ** 2 + (gy - self.target[1]) ** 2 <= 0.03 ** 2
        img[np.broadcast_to(disc, (n, n))] = TARGET_RGB
        return np.ascontiguousarray(img[::-1])

    def close(self):
        pass
