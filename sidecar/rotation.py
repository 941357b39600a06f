"""Axis-angle rotations (the vector's direction is the axis, its norm the angle in radians), one definition for the
test scene, its perturbations and the LIBERO perturbations."""
import numpy as np


def aa2mat(v):
    """3x3 rotation matrix (Rodrigues' formula)."""
    th = float(np.linalg.norm(v))
    if th < 1e-12:
        return np.eye(3)
    k = np.asarray(v, float) / th
    K = np.array([[0, -k[2], k[1]], [k[2], 0, -k[0]], [-k[1], k[0], 0]])
    return np.eye(3) + np.sin(th) * K + (1 - np.cos(th)) * (K @ K)


def aa2quat(v):
    """MuJoCo's quaternion order (w, x, y, z)."""
    th = float(np.linalg.norm(v))
    if th < 1e-12:
        return np.array([1.0, 0.0, 0.0, 0.0])
    k = np.asarray(v, float) / th
    return np.concatenate([[np.cos(th / 2)], np.sin(th / 2) * k])


def qmul(a, b):
    """Hamilton product of two (w, x, y, z) quaternions: the rotation b, then a."""
    w1, x1, y1, z1 = a
    w2, x2, y2, z2 = b
    return np.array([w1 * w2 - x1 * x2 - y1 * y2 - z1 * z2, w1 * x2 + x1 * w2 + y1 * z2 - z1 * y2,
                     w1 * y2 - x1 * z2 + y1 * w2 + z1 * x2, w1 * z2 + x1 * y2 - y1 * x2 + z1 * w2])
