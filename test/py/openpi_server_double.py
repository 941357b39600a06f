"""A stand-in for openpi's policy server that behaves as upstream's does, for the eval tests.

Written from openpi 15a9616's src/openpi/serving/websocket_policy_server.py (read, not copied), with the same
websockets API (websockets.asyncio.server) and options:
  - serve(compression=None, max_size=None, process_request=...) with GET /healthz answering 200 "OK\n";
  - on connect, the metadata map (here {} like openpi's LIBERO configs, whose policy_metadata is unset) packed with
    openpi's msgpack-numpy variant, as one binary frame;
  - then EVERY frame received is unpacked and handed to policy.infer: there are no control messages and no
    acknowledgements; the reply gets a server_timing map (infer_ms, and prev_total_ms from the 2nd request on);
  - when anything raises, the traceback goes out as a text frame, then the connection is closed with 1011 and the
    reason "Internal server error. Traceback included in previous frame.".
The policy is a pi0.5-LIBERO-shaped fake: it reads the request the way openpi's LiberoInputs does
(src/openpi/policies/libero_policy.py: data["observation/image"], ["observation/wrist_image"],
["observation/state"], ["prompt"], so a frame without them raises KeyError, as upstream) and returns
{"actions": float32 (10, 7), "policy_timing": {...}} like Policy.infer + LiberoOutputs. Each frame it receives is
logged as one JSON line (keys, dtypes, shapes) to LOG.

  python3 openpi_server_double.py LOG     prints "port N" once listening; runs until killed
"""
import asyncio
import http
import json
import sys
import time
import traceback

import msgpack
import numpy as np
import websockets
import websockets.asyncio.server as ws_server
import websockets.frames

HORIZON = 10  # pi05_libero's action_horizon


def _to_wire(obj):
    if isinstance(obj, np.ndarray):
        return {b"__ndarray__": True, b"data": obj.tobytes(), b"dtype": obj.dtype.str, b"shape": obj.shape}
    if isinstance(obj, np.generic):
        return {b"__npgeneric__": True, b"data": obj.item(), b"dtype": obj.dtype.str}
    return obj


def _from_wire(obj):
    if b"__ndarray__" in obj:
        return np.ndarray(buffer=obj[b"data"], dtype=np.dtype(obj[b"dtype"]), shape=obj[b"shape"])
    if b"__npgeneric__" in obj:
        return np.dtype(obj[b"dtype"]).type(obj[b"data"])
    return obj


class FakeLiberoPolicy:
    def __init__(self, log_path):
        self.log_path = log_path

    def infer(self, obs):
        with open(self.log_path, "a") as f:
            f.write(json.dumps({k: ([v.dtype.str, list(v.shape)] if isinstance(v, np.ndarray) else type(v).__name__) for k, v in obs.items()}) + "\n")
        image, wrist = np.asarray(obs["observation/image"]), np.asarray(obs["observation/wrist_image"])
        state = np.asarray(obs["observation/state"])
        prompt = obs["prompt"]
        if image.shape != (224, 224, 3) or wrist.shape != (224, 224, 3) or state.shape != (8,) or not isinstance(prompt, str):
            raise ValueError(f"unexpected request: {image.shape} {wrist.shape} {state.shape} {type(prompt)}")
        t0 = time.monotonic()
        # Small moves that depend on the state, gripper open: any (10, 7) float32 chunk will do.
        k = np.arange(HORIZON, dtype=np.float32)[:, None]
        actions = np.zeros((HORIZON, 7), np.float32)
        actions[:, 0:1] = 0.1 * np.cos(k + float(state[0]))
        actions[:, 1:2] = -0.1 * np.sin(k + float(state[1]))
        actions[:, 6] = -1.0
        return {"actions": actions, "policy_timing": {"infer_ms": (time.monotonic() - t0) * 1000}}


def _healthz(connection, request):
    if request.path == "/healthz":
        return connection.respond(http.HTTPStatus.OK, "OK\n")
    return None


async def main(log_path):
    policy = FakeLiberoPolicy(log_path)
    pack = msgpack.Packer(default=_to_wire).pack

    async def handler(websocket):
        await websocket.send(pack({}))
        prev_total = None
        while True:
            try:
                start = time.monotonic()
                obs = msgpack.unpackb(await websocket.recv(), object_hook=_from_wire)
                t = time.monotonic()
                reply = policy.infer(obs)
                reply["server_timing"] = {"infer_ms": (time.monotonic() - t) * 1000}
                if prev_total is not None:
                    reply["server_timing"]["prev_total_ms"] = prev_total * 1000
                await websocket.send(pack(reply))
                prev_total = time.monotonic() - start
            except websockets.ConnectionClosed:
                break
            except Exception:
                await websocket.send(traceback.format_exc())
                await websocket.close(code=websockets.frames.CloseCode.INTERNAL_ERROR,
                                      reason="Internal server error. Traceback included in previous frame.")
                raise

    async with ws_server.serve(handler, "127.0.0.1", 0, compression=None, max_size=None, process_request=_healthz) as server:
        port = next(iter(server.sockets)).getsockname()[1]
        print(f"port {port}", flush=True)
        await server.serve_forever()


if __name__ == "__main__":
    asyncio.run(main(sys.argv[1]))
