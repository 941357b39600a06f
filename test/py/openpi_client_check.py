"""A client of the openpi websocket protocol written from its description (libero-facts.md 4.4), with
websockets + msgpack + numpy only, the way openpi_client and examples/libero/main.py do it. Used by
test/serve-protocol.test.ts:

  python3 openpi_client_check.py libero URL IN.json OUT.json   good requests, as openpi's LIBERO client builds them
  python3 openpi_client_check.py bad URL OUT.json              misbehaving clients, each on its own connection

IN.json holds `frames`: three raw simulator frames (as rendered, upside down), each {agentview, wrist: flat
(H, W, 3) uint8 lists, state: the 8-D state}, plus `height`, `width` and `prompt`. OUT.json gets what the server sent, and, for `libero`, the
reference frames the server must have recovered (the documented inverse, done here with PIL).
"""
import json
import sys

import msgpack
import numpy as np
import websockets.sync.client as wsc
from PIL import Image


# --- openpi's msgpack-numpy variant: bytes keys, dtype.str, C-order bytes ---
def pack_array(obj):
    if isinstance(obj, (np.ndarray, np.generic)) and obj.dtype.kind in ("V", "O", "c"):
        raise ValueError(f"unsupported dtype {obj.dtype}")
    if isinstance(obj, np.ndarray):
        return {b"__ndarray__": True, b"data": obj.tobytes(), b"dtype": obj.dtype.str, b"shape": obj.shape}
    if isinstance(obj, np.generic):
        return {b"__npgeneric__": True, b"data": obj.item(), b"dtype": obj.dtype.str}
    return obj


def unpack_array(obj):
    if b"__ndarray__" in obj:
        return np.ndarray(buffer=obj[b"data"], dtype=np.dtype(obj[b"dtype"]), shape=obj[b"shape"])
    if b"__npgeneric__" in obj:
        return np.dtype(obj[b"dtype"]).type(obj[b"data"])
    return obj


def packb(x):
    return msgpack.Packer(default=pack_array).pack(x)


def unpackb(b):
    return msgpack.unpackb(b, object_hook=unpack_array)


def connect(url):
    ws = wsc.connect(url, compression=None, max_size=None)
    meta = ws.recv()
    assert isinstance(meta, bytes), "the metadata frame must be binary"
    return ws, unpackb(meta)


# --- openpi_client.image_tools.resize_with_pad: PIL bilinear to fit, zero padding centred ---
def resize_with_pad(img, height, width):
    if img.shape[:2] == (height, width):
        return img
    im = Image.fromarray(img)
    cur_w, cur_h = im.size
    ratio = max(cur_w / width, cur_h / height)
    rh, rw = int(cur_h / ratio), int(cur_w / ratio)
    resized = im.resize((rw, rh), resample=Image.BILINEAR)
    out = Image.new(resized.mode, (width, height), 0)
    out.paste(resized, (max(0, int((width - rw) / 2)), max(0, int((height - rh) / 2))))
    return np.asarray(out)


def libero_request(raw_agent, raw_wrist, state, prompt):
    """examples/libero/main.py: rotate 180 degrees, resize with pad to 224, 8-D state, task.language."""
    img = np.ascontiguousarray(raw_agent[::-1, ::-1])
    wrist = np.ascontiguousarray(raw_wrist[::-1, ::-1])
    return {
        "observation/image": resize_with_pad(img, 224, 224),
        "observation/wrist_image": resize_with_pad(wrist, 224, 224),
        "observation/state": state,
        "prompt": prompt,
    }


def recovered(img224, H, W):
    """What the server must feed the model (its README): crop the padding, rotate back 180, PIL bicubic to H x W."""
    h, w = img224.shape[:2]
    ratio = max(W / w, H / h)
    rh, rw = int(H / ratio), int(W / ratio)
    y0, x0 = int((h - rh) / 2), int((w - rw) / 2)
    content = img224[y0:y0 + rh, x0:x0 + rw][::-1, ::-1]
    return np.asarray(Image.fromarray(np.ascontiguousarray(content)).resize((W, H), resample=Image.BICUBIC))


def send_recv(ws, obs):
    ws.send(packb(obs))
    r = ws.recv()
    assert isinstance(r, bytes), f"server error: {r}"
    return unpackb(r)


def good(url, inp, out_path):
    with open(inp) as f:
        z = json.load(f)
    prompt = z["prompt"]
    shape = (z["height"], z["width"], 3)
    ws, meta = connect(url)
    H, W = meta["image"]["height"], meta["image"]["width"]
    out = {"metadata": meta, "replies": [], "frames": []}
    reqs = [libero_request(np.array(fr["agentview"], np.uint8).reshape(shape), np.array(fr["wrist"], np.uint8).reshape(shape),
                           np.array(fr["state"], np.float64), prompt) for fr in z["frames"]]
    # One observation per frame on one connection, nothing else: openpi's client (websocket_client_policy.py at
    # 15a9616) has no control messages and its reset() sends nothing. Seeds: np.int64 and int.
    seeds = [np.int64(11), 12, 13]
    for k, req in enumerate(reqs):
        r = send_recv(ws, {**req, "seed": seeds[k]})
        a = r["actions"]
        out["replies"].append({
            "dtype": a.dtype.str, "shape": list(a.shape), "actions": a.astype(np.float64).ravel().tolist(),
            "seed": int(r["seed"]), "policy_timing": r["policy_timing"], "server_timing": r["server_timing"],
            "keys": sorted(r.keys()),
        })
        out["frames"].append({
            "agentview": recovered(req["observation/image"], H, W).ravel().tolist(),
            "wrist": recovered(req["observation/wrist_image"], H, W).ravel().tolist(),
        })
    ws.close()
    with open(out_path, "w") as f:
        json.dump(out, f)


def expect_error(url, send):
    """Open a connection, misbehave with `send(ws)`, and report the text frame and close code the server answered."""
    ws, _ = connect(url)
    send(ws)
    text = None
    try:
        m = ws.recv(timeout=30)
        text = m if isinstance(m, str) else f"<binary {len(m)} bytes>"
        ws.recv(timeout=30)
    except Exception:
        pass
    code = ws.close_code if ws.close_code is not None else (ws.protocol.close_rcvd.code if ws.protocol.close_rcvd else None)
    ws.close()
    return {"text": text, "code": code}


def bad(url, out_path):
    img = np.zeros((224, 224, 3), np.uint8)
    ok = {"observation/image": img, "observation/wrist_image": img,
          "observation/state": np.array([-0.2, 0.0, 1.17, 3.14, 0.0, -0.08, 0.039, -0.039]), "prompt": "open the drawer"}
    cases = {
        "malformed": lambda ws: ws.send(b"\xc1\x93\x01"),
        "not_a_map": lambda ws: ws.send(packb([1, 2, 3])),
        "unknown_keys": lambda ws: ws.send(packb({**ok, "observation/joint_position": np.zeros(7)})),
        "missing_key": lambda ws: ws.send(packb({k: v for k, v in ok.items() if k != "prompt"})),
        "wrong_dtype": lambda ws: ws.send(packb({**ok, "observation/image": img.astype(np.float32)})),
        "wrong_shape": lambda ws: ws.send(packb({**ok, "observation/state": np.zeros(7)})),
        "nan_state": lambda ws: ws.send(packb({**ok, "observation/state": np.full(8, np.nan)})),
        "bad_data_length": lambda ws: ws.send(msgpack.packb({"observation/state": {b"__ndarray__": True, b"data": b"\0" * 3, b"dtype": "<f8", b"shape": [8]}})),
        "complex_dtype": lambda ws: ws.send(msgpack.packb({"observation/state": {b"__ndarray__": True, b"data": b"\0" * 64, b"dtype": "<c8", b"shape": [8]}})),
        "text_frame": lambda ws: ws.send("hello"),
        "oversized": lambda ws: ws.send(packb({**ok, "observation/image": np.zeros((1024, 1024, 3), np.uint8)})),
    }
    out = {name: expect_error(url, f) for name, f in cases.items()}
    # A client that sends a request and leaves before the reply.
    ws, _ = connect(url)
    ws.send(packb(ok))
    ws.close()
    # The server still serves: a good request on a fresh connection.
    ws, _ = connect(url)
    r = send_recv(ws, ok)
    out["after"] = {"shape": list(r["actions"].shape)}
    ws.close()
    with open(out_path, "w") as f:
        json.dump(out, f)


if __name__ == "__main__":
    mode = sys.argv[1]
    if mode == "libero":
        good(sys.argv[2], sys.argv[3], sys.argv[4])
    elif mode == "bad":
        bad(sys.argv[2], sys.argv[3])
    else:
        raise SystemExit(f"unknown mode {mode}")
