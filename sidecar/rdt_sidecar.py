#!/usr/bin/env python3
"""rdt-libero simulator sidecar: hosts one LIBERO (or test) environment behind the line protocol of PROTOCOL.md.

Run by rdt-libero (src/eval/sidecar.ts) as `python3 rdt_sidecar.py --backend libero|test`, one process per
environment. Requests arrive as JSON lines on stdin; replies leave as JSON lines on the original stdout, each
followed by the raw image bytes it announces. Standard library + numpy only; the LIBERO back-end imports
LIBERO, robosuite and torch lazily, so the test back-end runs anywhere.
"""
import json
import os
import sys
import traceback

from sidecar_errors import RequestError, SetupError

PROTOCOL_VERSION = 1

# The protocol owns the real stdout. Anything a library prints (robosuite and LIBERO print to stdout) goes to
# stderr instead, so it can never corrupt a reply.
_proto = os.fdopen(os.dup(1), "wb", buffering=0)
os.dup2(2, 1)
sys.stdout = sys.stderr


def send(header, blobs=()):
    """One reply: the JSON header line, then each blob's bytes in the order the header lists them."""
    if blobs:
        header["images"] = [{"key": k, "shape": list(a.shape), "dtype": "uint8", "bytes": int(a.nbytes)} for k, a in blobs]
    data = [json.dumps(header, separators=(",", ":")).encode() + b"\n"]
    data += [a.tobytes() for _, a in blobs]
    try:
        _proto.write(b"".join(data))
    except BrokenPipeError:
        os._exit(0)  # the harness is gone; nobody to answer


def obs_reply(rid, step):
    """An observation reply from a back-end's reset/step result: (obs, images, done, reward, t, flattened state)."""
    obs, images, done, reward, t, state = step
    return {"id": rid, "ok": True, "obs": obs, "done": bool(done), "reward": float(reward), "t": t, "state": state}, images


def make_backend(name):
    try:
        import numpy  # noqa: F401  (both back-ends need it)
    except ImportError:
        raise SetupError(f"numpy is not installed in {sys.executable}", f"{sys.executable} -m pip install numpy")
    if name == "test":
        import reach_env

        return reach_env.ReachEnv()
    if name == "libero":
        import libero_env

        return libero_env.LiberoEnv()
    raise SetupError(f"unknown back-end '{name}'", "use --backend libero or --backend test")


def serve(backend_name):
    try:
        env = make_backend(backend_name)
        info = env.versions()
    except SetupError as e:
        send({"type": "fatal", "protocol": PROTOCOL_VERSION, "error": str(e), "fix": e.fix})
        return 3
    send({"type": "ready", "protocol": PROTOCOL_VERSION, "backend": backend_name, "pid": os.getpid(),
          "python": sys.version.split()[0], "versions": info})
    stdin = sys.stdin.buffer
    while True:
        line = stdin.readline()
        if not line:
            return 0  # the harness went away (killed or closed): leave quietly
        rid = None
        try:
            req = json.loads(line)
            rid = req.get("id")
            op = req.get("op")
            if op == "open":
                send({"id": rid, "ok": True, **env.open(req)})
            elif op == "reset":
                header, images = obs_reply(rid, env.reset(req))
                if req.get("perturb") is not None:  # what the back-end applied (layout: the placements drawn)
                    header["perturbation"] = getattr(env, "applied", None)
                send(header, images)
            elif op == "step":
                action = req.get("action")
                if not isinstance(action, list) or len(action) != 7:
                    raise RequestError("field 'action' must be a list of 7 numbers [dx, dy, dz, rx, ry, rz, gripper]")
                header, images = obs_reply(rid, env.step([float(x) for x in action]))
                send(header, images)
            elif op == "close":
                env.close()
                send({"id": rid, "ok": True})
                return 0
            else:
                raise RequestError(f"unknown op '{op}' (open, reset, step, close)")
        except SetupError as e:
            send({"id": rid, "ok": False, "kind": "setup", "error": str(e), "fix": e.fix})
        except RequestError as e:
            send({"id": rid, "ok": False, "kind": "request", "error": str(e)})
        except Exception as e:  # the environment itself failed: report it, with where, and keep serving
            tb = traceback.extract_tb(e.__traceback__)
            where = f" at {tb[-1].filename}:{tb[-1].lineno}" if tb else ""
            send({"id": rid, "ok": False, "kind": "env", "error": f"{type(e).__name__}: {e}{where}"})


def main():
    args = sys.argv[1:]
    backend = "libero"
    if "--backend" in args:
        i = args.index("--backend")
        if i + 1 >= len(args):
            sys.stderr.write("rdt_sidecar: --backend needs a value (libero or test)\n")
            return 2
        backend = args[i + 1]
    return serve(backend)


if __name__ == "__main__":
    sys.exit(main())
