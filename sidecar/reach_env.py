"""The test back-end: a point gripper over a table with four coloured blocks; each task names one block to grasp.

It answers the same requests as the LIBERO back-end, through the same protocol code, with observations in the
same keys and units as robosuite 1.4's OffScreenRenderEnv, so CI and the embedded demo can drive the whole
evaluation loop without LIBERO. numpy only.

Tasks (every suite; LIBERO's suite names and task counts): task k asks for block COLOURS[k % 4]. Every scene holds
all four blocks, each in one of nine placement regions (a 3 x 3 grid of centres 0.2 m apart, as LIBERO places
objects in regions) with a small random offset, drawn the same way for every task, so neither the scene alone nor
the instruction alone says where to go: a policy needs both vision (where the blocks are) and language (which one).
Tasks 0-3 are "pick up the red/green/blue/yellow block"; tasks k >= 4 repeat them in further scenes (other seeded
initial states) named TABLE_SCENE{k // 4 + 1}_..., whose language LIBERO's grab_language_from_filename reads as the
same instruction (libero_90 repeats instructions across scenes the same way).

Physics (one step = 50 ms, like LIBERO's 20 Hz OSC_POSE controller, libero-facts.md 3.1-3.2):
  - a[0:6] are clipped to [-1, 1]; the gripper moves 0.05 m x a[0:3] from its measured position (clipped to the
    workspace box) and its orientation turns by the axis-angle 0.5 x a[3:6] about world axes: R <- R(0.5 a) R.
  - the gripper command c moves 0.25 per step toward sign(a[6]) (-1 open, +1 close, 0 holds), like robosuite's
    PandaGripper (about 8 steps from open to closed); finger joints read +-0.0387 x (1 - c) / 2 m.
  - success (the done flag) = the gripper closed (c >= 0.75) on the named block: within GRASP_XY of its centre
    horizontally and at most GRASP_Z above it. Blocks do not move; closing elsewhere does nothing.
State (what `reset` takes as `state` and every observation reply returns as `state`, like MuJoCo's flattened
[time, qpos, qvel]): STATE_DIM = 21 numbers
    [time s, eef x y z, eef quaternion x y z w, gripper command c, then x y z of the red, green, blue, yellow blocks].
Images (HxWx3 uint8), rendered upside down like robosuite's OpenGL frames (row 0 is the bottom):
  - agentview looks straight down on the table. Upright, pixel (row r, col c) sees world
        x = -0.3 + (c + 0.5) * 0.6 / W,   y = 0.3 - (r + 0.5) * 0.6 / H
    blocks are squares of side BLOCK_SIZE in their colours; the gripper is two dark fingers along y whose gap is
    the opening, drawn over the blocks, larger the higher it is (nearer the camera).
  - robot0_eye_in_hand looks down from the gripper: the same scene 3x magnified, centred on the gripper, with the
    fingers at fixed places left and right of the centre.
The 50 fixed initial states per task come from a seeded generator, so they are the same on every machine.
Like LIBERO's reset, which re-samples fixture placements that set_init_state does not restore (openvla#342), every
reset moves each block by up to PLACEMENT_JITTER in x and y, drawn from the env's generator: seeded at `open` and
again by a reset that carries a `seed`, drawn on otherwise.
"""
import json
import os
import signal
import time
import zlib

import numpy as np

import perturb_reach
from rotation import aa2mat
from sidecar_errors import RequestError

SUITE_TASKS = {"libero_spatial": 10, "libero_object": 10, "libero_goal": 10, "libero_10": 10, "libero_90": 90}
NUM_INIT_STATES = 50
WORKSPACE_LO = np.array([-0.3, -0.3, 0.90])
WORKSPACE_HI = np.array([0.3, 0.3, 1.30])
BLOCK_Z = 0.92
BLOCK_SIZE = 0.05
# Placement regions: a 3 x 3 grid of centres 0.2 m apart; each block lands within REGION_JITTER of its region's centre.
# The rows are off-centre in y so that no region is the mirror image of another: a policy that reads the images
# upside down (the classic LIBERO orientation bug) aims at an empty spot, never by chance at its block.
REGIONS = np.array([(x, y) for y in (0.24, 0.04, -0.16) for x in (-0.2, 0.0, 0.2)])
REGION_JITTER = 0.015
GRASP_XY = 0.02
GRASP_Z = 0.02
FULL_OPEN = 0.0387
PLACEMENT_JITTER = 0.002
COLOURS = ("red", "green", "blue", "yellow")
RGB = {"red": (220, 30, 30), "green": (40, 170, 60), "blue": (40, 80, 220), "yellow": (230, 200, 30)}
TABLE_RGB = (200, 180, 150)
FINGER_RGB = (50, 50, 50)
STATE_DIM = 21
# Pointing down: the gripper frame rotated pi about world x, quaternion (x, y, z, w) = (1, 0, 0, 0).
R_DOWN = np.diag([1.0, -1.0, -1.0])


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


def quat2mat_xyzw(q):
    x, y, z, w = np.asarray(q, float) / np.linalg.norm(q)
    return np.array([[1 - 2 * (y * y + z * z), 2 * (x * y - z * w), 2 * (x * z + y * w)],
                     [2 * (x * y + z * w), 1 - 2 * (x * x + z * z), 2 * (y * z - x * w)],
                     [2 * (x * z - y * w), 2 * (y * z + x * w), 1 - 2 * (x * x + y * y)]])


def task_words(task):
    """(task_name, language) of a task: LIBERO's file-name style name and the instruction it reads as."""
    phrase = f"pick_up_the_{COLOURS[task % len(COLOURS)]}_block"
    scene = task // len(COLOURS)
    name = phrase if scene == 0 else f"TABLE_SCENE{scene + 1}_{phrase}"
    return name, phrase.replace("_", " ")


def init_states(suite, task):
    """(50, STATE_DIM) float64, fixed per (suite, task): the gripper open above the middle, the four blocks in four
    of the nine placement regions (LIBERO places objects in regions with small random offsets)."""
    rng = np.random.default_rng([zlib.crc32(suite.encode()), task])
    s = np.zeros((NUM_INIT_STATES, STATE_DIM))
    for i in range(NUM_INIT_STATES):
        s[i, 1:3] = rng.uniform(-0.1, 0.1, 2)
        s[i, 3] = rng.uniform(1.10, 1.20)
        s[i, 4:8] = (1.0, 0.0, 0.0, 0.0)
        s[i, 8] = -1.0
        for b, r in enumerate(rng.choice(len(REGIONS), len(COLOURS), replace=False)):
            s[i, 9 + 3 * b: 12 + 3 * b] = (*(REGIONS[r] + rng.uniform(-REGION_JITTER, REGION_JITTER, 2)), BLOCK_Z)
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
        return {"numpy": np.__version__, "backend": "reach (test geometry: four coloured blocks, no LIBERO)"}

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
        self.goal = task % len(COLOURS)
        self.init_index = None
        self.rng = np.random.default_rng(int(req.get("seed") or 0))
        self.resets_since_open = 0
        self.t = None
        self._build_grid()
        name, language = task_words(task)
        return {"language": language, "task_name": name, "num_init_states": NUM_INIT_STATES, "state_dim": STATE_DIM,
                "cameras": ["agentview", "robot0_eye_in_hand"], "horizon": self.horizon,
                "suite_languages": [task_words(k)[1] for k in range(SUITE_TASKS[suite])]}

    def _build_grid(self):
        n = self.res
        c = (np.arange(n) + 0.5) / n
        self.gx = self.wx = -0.3 + c[None, :] * 0.6  # world x of each upright column (agentview; wrist: wx, wy)
        self.gy = self.wy = 0.3 - c[:, None] * 0.6  # world y of each upright row
        self.view = perturb_reach.View()

    def reset(self, req):
        if self.suite is None:
            raise RequestError("reset before open")
        if req.get("state") is not None:
            state = np.asarray(req["state"], float)
            if state.shape != (STATE_DIM,):
                raise RequestError(f"field 'state' must hold {STATE_DIM} numbers for this back-end, got {state.size}")
            self.init_index = None
        else:
            k = req.get("init_index")
            if not isinstance(k, int) or not 0 <= k < NUM_INIT_STATES:
                raise RequestError(f"field 'init_index' must be 0..{NUM_INIT_STATES - 1}, got {k!r}")
            state = self.inits[k]
            self.init_index = k
        if req.get("seed") is not None:
            self.rng = np.random.default_rng(int(req["seed"]))
        placement = self.rng.uniform(-PLACEMENT_JITTER, PLACEMENT_JITTER, (len(COLOURS), 2))
        if self.reset_log:
            with open(self.reset_log, "a") as f:
                f.write(json.dumps({"suite": self.suite, "task": self.task, "init": self.init_index, "seeded": req.get("seed") is not None,
                                    "placement": placement.tolist(), "since_open": self.resets_since_open, "pid": os.getpid()}) + "\n")
        self.resets_since_open += 1
        self.pos = state[1:4].copy()
        self.R = quat2mat_xyzw(state[4:8])
        self.grip = float(state[8])
        self.blocks = state[9:21].reshape(len(COLOURS), 3).copy()
        self.blocks[:, 0:2] += placement
        self.t = 0
        self.time0 = float(state[0])
        # Robustness perturbations (perturb_reach.py), after the placement and before any step.
        self.view, self.applied = perturb_reach.apply(self, req.get("perturb"))
        self.gx, self.gy = self.view.grid(self.res)
        return self._observe(False)

    def step(self, action):
        if self.suite is None or self.t is None:
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
        goal = self.blocks[self.goal]
        done = (np.linalg.norm(self.pos[0:2] - goal[0:2]) <= GRASP_XY and self.pos[2] - goal[2] <= GRASP_Z
                and self.grip >= 0.75)
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

    def state(self):
        return [self.time0 + 0.05 * self.t, *self.pos.tolist(), *mat2quat_xyzw(self.R).tolist(), self.grip,
                *self.blocks.reshape(-1).tolist()]

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
        # Fingers: half a gap of 0.012 m (closed) to 0.042 m (open) either side of the gripper, along y.
        gap = 0.012 + 0.03 * f
        scale = 1.0 + 2.0 * (z - BLOCK_Z)  # nearer the camera, larger
        agent = self._render(self.gx, self.gy, (x, y), gap * scale, 0.025 * scale, 0.006 * scale)
        wrist = self._render(x + self.wx / 3, y + self.wy / 3, (x, y), gap, 0.025, 0.006)
        images = [("agentview_image", agent), ("robot0_eye_in_hand_image", wrist)]
        return obs, images, done, 1.0 if done else 0.0, self.t, self.state()

    def _render(self, gx, gy, centre, gap, finger_len, finger_half_w):
        """Upright render on the world grid (gx, gy), returned upside down (robosuite's OpenGL row order)."""
        n = self.res
        img = np.empty((n, n, 3), np.uint8)
        img[:] = np.clip(np.rint(np.asarray(TABLE_RGB, float) + self.view.table_delta), 0, 255)
        h = BLOCK_SIZE / 2
        for b, name in enumerate(COLOURS):
            bx, by = self.blocks[b, 0:2]
            sq = (np.abs(gx - bx) <= h) & (np.abs(gy - by) <= h)
            img[np.broadcast_to(sq, (n, n))] = RGB[name]
        cx, cy = centre
        along = np.abs(gx - cx) <= finger_len
        for side in (-1, 1):
            finger = along & (np.abs(gy - (cy + side * gap)) <= finger_half_w)
            img[np.broadcast_to(finger, (n, n))] = FINGER_RGB
        img = self.view.light(img, gx, gy)
        return np.ascontiguousarray(img[::-1])

    def close(self):
        pass
