"""The LIBERO back-end: one OffScreenRenderEnv of the official benchmark (libero-facts.md 4.1).

Everything heavy (LIBERO, robosuite, MuJoCo, torch) is imported here, lazily, so the protocol and the test
back-end need none of it. What this file takes care of, each a known trap of LIBERO evaluation:
  - LIBERO's import asks on stdin for a dataset folder when ~/.libero/config.yaml (or $LIBERO_CONFIG_PATH) is
    missing; the config is written first with LIBERO's own default paths, so the import never prompts.
  - The fixed initial states are torch.save'd numpy arrays: torch >= 2.6 refuses them unless weights_only=False.
  - robosuite's horizon (default 1000) is set above the harness's episode budget, so a long episode never hits
    "executing action in terminated episode".
  - Seeding (env.reset() re-samples fixture placement that set_init_state does not restore; openvla#342): numpy
    and the env are seeded when the task's env is made (`open`, as openpi's examples/libero/main.py at 15a9616
    does once per task) and again before a reset whose request carries a `seed` (rdt-libero's per-episode
    seeding); a reset without one draws on (openpi's order, --seeding per-task).
  - MUJOCO_GL defaults to egl on Linux without a display (like openpi's images); a render failure becomes one
    message naming the back-end and the alternatives.
"""
import importlib.util
import os
import sys

from sidecar_errors import RequestError, SetupError

SUITES = ("libero_spatial", "libero_object", "libero_goal", "libero_10", "libero_90")
INSTALL_FIX = ("install LIBERO into the interpreter given with --sim-python: "
               "git clone https://github.com/Lifelong-Robot-Learning/LIBERO && pip install -e LIBERO "
               "&& pip install robosuite==1.4.1 mujoco==3.2.3 bddl==1.0.1 easydict gym==0.25.2 future matplotlib cloudpickle torch")


def _choose_gl():
    """MUJOCO_GL (and PyOpenGL's matching platform) before robosuite imports mujoco."""
    gl = os.environ.get("MUJOCO_GL")
    if not gl:
        gl = "egl" if sys.platform.startswith("linux") and not os.environ.get("DISPLAY") else "glfw"
        os.environ["MUJOCO_GL"] = gl
    if gl in ("egl", "osmesa"):
        os.environ.setdefault("PYOPENGL_PLATFORM", gl)
    return gl


def _prewrite_config():
    """Write LIBERO's config.yaml with its default paths when it is missing, so `import libero.libero` never prompts."""
    spec = importlib.util.find_spec("libero")
    if spec is None or not spec.submodule_search_locations:
        raise SetupError("the 'libero' package is not installed in this Python", INSTALL_FIX)
    root = os.path.join(list(spec.submodule_search_locations)[0], "libero")
    cfg_dir = os.environ.get("LIBERO_CONFIG_PATH", os.path.expanduser("~/.libero"))
    cfg = os.path.join(cfg_dir, "config.yaml")
    if os.path.exists(cfg):
        return cfg
    os.makedirs(cfg_dir, exist_ok=True)
    paths = {
        "benchmark_root": root,
        "bddl_files": os.path.join(root, "bddl_files"),
        "init_states": os.path.join(root, "init_files"),
        "datasets": os.path.join(root, "..", "datasets"),
        "assets": os.path.join(root, "assets"),
    }
    with open(cfg, "w") as f:
        f.writelines(f"{k}: {v}\n" for k, v in paths.items())
    sys.stderr.write(f"rdt_sidecar: wrote LIBERO's default config to {cfg}\n")
    return cfg


def _load_init_states(path):
    import torch

    try:
        return torch.load(path, weights_only=False)  # torch >= 2.6 defaults to weights_only=True (LIBERO PR #110)
    except TypeError:  # torch < 1.13 has no weights_only
        return torch.load(path)


class LiberoEnv:
    def __init__(self):
        self.gl = _choose_gl()
        self.config = _prewrite_config()
        try:
            import numpy as np
            import robosuite
            from libero.libero import benchmark, get_libero_path
            from libero.libero.envs import OffScreenRenderEnv
        except ImportError as e:
            raise SetupError(f"cannot import '{e.name}' ({e})", INSTALL_FIX)
        except Exception as e:  # e.g. a render back-end that fails while mujoco loads
            raise SetupError(f"importing LIBERO failed with MUJOCO_GL={self.gl}: {type(e).__name__}: {e}", self._gl_fix())
        major_minor = tuple(int(x) for x in robosuite.__version__.split(".")[:2])
        if major_minor != (1, 4):
            raise SetupError(f"robosuite {robosuite.__version__} is installed; LIBERO needs robosuite 1.4.x "
                             "(1.5 removed SingleArmEnv)", "pip install robosuite==1.4.1")
        self.np, self.robosuite = np, robosuite
        self.benchmark, self.get_libero_path, self.OffScreenRenderEnv = benchmark, get_libero_path, OffScreenRenderEnv
        self.env = None

    def _gl_fix(self):
        return ("MuJoCo could not render with MUJOCO_GL=%s. Headless GPU: MUJOCO_GL=egl (needs libEGL and an NVIDIA/Mesa "
                "EGL driver). No GPU: MUJOCO_GL=osmesa (apt-get install libosmesa6). With a display: MUJOCO_GL=glfw. "
                "Set it in the environment of rdt-libero eval." % self.gl)

    def versions(self):
        import mujoco

        return {"robosuite": self.robosuite.__version__, "mujoco": mujoco.__version__, "numpy": self.np.__version__,
                "MUJOCO_GL": self.gl, "libero_config": self.config}

    def open(self, req):
        suite_name, task_id = req.get("suite"), req.get("task")
        if suite_name not in SUITES:
            raise RequestError(f"field 'suite': unknown suite '{suite_name}' (known: {', '.join(SUITES)})")
        suite = self.benchmark.get_benchmark_dict()[suite_name]()
        if not isinstance(task_id, int) or not 0 <= task_id < suite.n_tasks:
            raise RequestError(f"field 'task': {suite_name} has tasks 0..{suite.n_tasks - 1}, got {task_id!r}")
        res = req.get("resolution")
        if not isinstance(res, int) or res < 8:
            raise RequestError(f"field 'resolution' must be an integer >= 8, got {res!r}")
        task = suite.get_task(task_id)
        bddl = os.path.join(self.get_libero_path("bddl_files"), task.problem_folder, task.bddl_file)
        init_path = os.path.join(self.get_libero_path("init_states"), task.problem_folder, task.init_states_file)
        self.init_states = self.np.asarray(_load_init_states(init_path))
        if self.env is not None:
            self.env.close()
            self.env = None
        horizon = int(req.get("horizon", 1000))
        try:
            self.env = self.OffScreenRenderEnv(bddl_file_name=bddl, camera_heights=res, camera_widths=res, horizon=horizon)
        except Exception as e:
            if any(w in str(e) for w in ("EGL", "OSMesa", "GLFW", "OpenGL", "gladLoadGL")):
                raise SetupError(f"creating the renderer failed: {type(e).__name__}: {e}", self._gl_fix())
            raise
        if req.get("seed") is not None:
            self._seed(int(req["seed"]))
        self.perturber = None  # made at the first perturbed reset (perturb_libero.py), recording the model's defaults
        return {"suite_languages": [suite.get_task(i).language for i in range(suite.n_tasks)], "language": task.language, "task_name": task.name, "num_init_states": int(self.init_states.shape[0]),
                "state_dim": int(self.init_states.shape[1]), "cameras": ["agentview", "robot0_eye_in_hand"], "horizon": horizon}

    def reset(self, req):
        if self.env is None:
            raise RequestError("reset before open")
        if req.get("seed") is not None:
            self._seed(int(req["seed"]))  # before reset: reset re-samples fixture placement (openvla#342)
        self.env.reset()
        if req.get("perturb") is not None and self.perturber is None:
            import perturb_libero

            self.perturber = perturb_libero.LiberoPerturber(self.env)
        if self.perturber is not None:
            self.perturber.restore()  # no perturbation of an earlier episode survives into this one
        if req.get("state") is not None:
            state = self.np.asarray(req["state"], float)
            if state.shape != self.init_states.shape[1:]:
                raise RequestError(f"field 'state' has {state.size} numbers, this task's MuJoCo state has {self.init_states.shape[1]}")
        else:
            k = req.get("init_index")
            if not isinstance(k, int) or not 0 <= k < self.init_states.shape[0]:
                raise RequestError(f"field 'init_index' must be 0..{self.init_states.shape[0] - 1}, got {k!r}")
            state = self.init_states[k]
        self.t = 0
        obs = self.env.set_init_state(state)
        # Robustness perturbations (perturb_libero.py): after the initial state, before any step; every reset first
        # puts the model's defaults back.
        if req.get("perturb") is not None:
            self.applied = self.perturber.apply(req["perturb"])
            obs = self.env.env._get_observations(force_update=True)
        return self._reply(obs, False, 0.0)

    def _seed(self, seed):
        self.np.random.seed(seed)
        self.env.seed(seed)  # LIBERO's env.seed seeds numpy's global generator, which reset draws placements from

    def step(self, action):
        if self.env is None:
            raise RequestError("step before open and reset")
        obs, reward, done, _info = self.env.step(action)
        self.t += 1
        return self._reply(obs, done, reward)

    def _reply(self, obs, done, reward):
        np = self.np
        low = {k: np.asarray(obs[k], float).tolist() for k in ("robot0_eef_pos", "robot0_eef_quat", "robot0_gripper_qpos", "robot0_joint_pos")}
        images = [(k, np.ascontiguousarray(obs[k], dtype=np.uint8)) for k in ("agentview_image", "robot0_eye_in_hand_image")]
        # The flattened MuJoCo state [time, qpos, qvel] (what LIBERO's datasets store as `states`, and reset takes back):
        # ControlEnv.get_sim_state() = self.env.sim.get_state().flatten() (libero/libero/envs/env_wrapper.py, 8f1084e).
        return low, images, done, reward, self.t, np.asarray(self.env.get_sim_state(), float).tolist()

    def close(self):
        if self.env is not None:
            self.env.close()
            self.env = None
