// Rotation conversions for LIBERO poses: axis-angle (robosuite's stored ee_ori) <-> rotation matrix <-> RDT's 6-D
// form, and quaternions (x, y, z, w, robosuite's order). Matrices are Float64Array(9), row-major.
// Numerically careful near angle pi, where LIBERO lives (the gripper points down, |ee_ori| ~ pi):
// matrix -> quaternion uses Shepperd's method (largest-diagonal pivot), quaternion -> axis-angle uses atan2.

export type Mat3 = Float64Array;
export type Vec3 = [number, number, number];

/** Rodrigues: R = exp([v]x). Any norm is accepted (robosuite can store |v| slightly above pi). */
export function axisAngleToMat(v: ArrayLike<number>, out: Mat3 = new Float64Array(9)): Mat3 {
  const x = v[0], y = v[1], z = v[2];
  const t2 = x * x + y * y + z * z;
  const t = Math.sqrt(t2);
  let a: number; // sin t / t
  let b: number; // (1 - cos t) / t^2
  if (t < 1e-4) {
    a = 1 - t2 / 6 + (t2 * t2) / 120;
    b = 0.5 - t2 / 24 + (t2 * t2) / 720;
  } else {
    a = Math.sin(t) / t;
    const s = Math.sin(t / 2) / t;
    b = 2 * s * s; // (1 - cos t)/t^2 without cancellation
  }
  out[0] = 1 - b * (y * y + z * z);
  out[1] = b * x * y - a * z;
  out[2] = b * x * z + a * y;
  out[3] = b * x * y + a * z;
  out[4] = 1 - b * (x * x + z * z);
  out[5] = b * y * z - a * x;
  out[6] = b * x * z - a * y;
  out[7] = b * y * z + a * x;
  out[8] = 1 - b * (x * x + y * y);
  return out;
}

/** Quaternion (x, y, z, w) of R, Shepperd's method; returned with w >= 0. */
export function matToQuat(R: ArrayLike<number>): [number, number, number, number] {
  const m00 = R[0], m01 = R[1], m02 = R[2], m10 = R[3], m11 = R[4], m12 = R[5], m20 = R[6], m21 = R[7], m22 = R[8];
  const tr = m00 + m11 + m22;
  let x: number, y: number, z: number, w: number;
  if (tr >= m00 && tr >= m11 && tr >= m22) {
    const s = 2 * Math.sqrt(Math.max(1 + tr, 0));
    w = s / 4; x = (m21 - m12) / s; y = (m02 - m20) / s; z = (m10 - m01) / s;
  } else if (m00 >= m11 && m00 >= m22) {
    const s = 2 * Math.sqrt(Math.max(1 + m00 - m11 - m22, 0));
    x = s / 4; w = (m21 - m12) / s; y = (m01 + m10) / s; z = (m02 + m20) / s;
  } else if (m11 >= m22) {
    const s = 2 * Math.sqrt(Math.max(1 + m11 - m00 - m22, 0));
    y = s / 4; w = (m02 - m20) / s; x = (m01 + m10) / s; z = (m12 + m21) / s;
  } else {
    const s = 2 * Math.sqrt(Math.max(1 + m22 - m00 - m11, 0));
    z = s / 4; w = (m10 - m01) / s; x = (m02 + m20) / s; y = (m12 + m21) / s;
  }
  const n = Math.hypot(x, y, z, w);
  const sg = w < 0 ? -1 / n : 1 / n;
  return [x * sg, y * sg, z * sg, w * sg];
}

/** Axis-angle of a unit quaternion (x, y, z, w); angle in [0, pi] (the quaternion is taken with w >= 0). */
export function quatToAxisAngle(q: ArrayLike<number>): Vec3 {
  let x = q[0], y = q[1], z = q[2], w = q[3];
  if (w < 0) { x = -x; y = -y; z = -z; w = -w; }
  const s = Math.hypot(x, y, z);
  if (s < 1e-12) return [2 * x / Math.max(w, 1e-300), 2 * y / Math.max(w, 1e-300), 2 * z / Math.max(w, 1e-300)];
  const k = (2 * Math.atan2(s, w)) / s;
  return [x * k, y * k, z * k];
}

export function quatToMat(q: ArrayLike<number>, out: Mat3 = new Float64Array(9)): Mat3 {
  const n = Math.hypot(q[0], q[1], q[2], q[3]);
  const x = q[0] / n, y = q[1] / n, z = q[2] / n, w = q[3] / n;
  out[0] = 1 - 2 * (y * y + z * z); out[1] = 2 * (x * y - z * w); out[2] = 2 * (x * z + y * w);
  out[3] = 2 * (x * y + z * w); out[4] = 1 - 2 * (x * x + z * z); out[5] = 2 * (y * z - x * w);
  out[6] = 2 * (x * z - y * w); out[7] = 2 * (y * z + x * w); out[8] = 1 - 2 * (x * x + y * y);
  return out;
}

/** Axis-angle (angle in [0, pi]) of R. */
export function matToAxisAngle(R: ArrayLike<number>): Vec3 {
  return quatToAxisAngle(matToQuat(R));
}

/** RDT 6-D: the first two columns of R, column-major: [R00, R10, R20, R01, R11, R21]. */
export function matTo6d(R: ArrayLike<number>, out: Float64Array | Float32Array = new Float64Array(6), off = 0) {
  out[off] = R[0]; out[off + 1] = R[3]; out[off + 2] = R[6];
  out[off + 3] = R[1]; out[off + 4] = R[4]; out[off + 5] = R[7];
  return out;
}

/** Official inverse (Gram-Schmidt): x = normalize(a1); z = normalize(x cross a2); y = z cross x; norms floored at 1e-8. */
export function rot6dToMat(d: ArrayLike<number>, off = 0, out: Mat3 = new Float64Array(9)): Mat3 {
  let ax = d[off], ay = d[off + 1], az = d[off + 2];
  const bx = d[off + 3], by = d[off + 4], bz = d[off + 5];
  const na = Math.max(Math.hypot(ax, ay, az), 1e-8);
  ax /= na; ay /= na; az /= na;
  let zx = ay * bz - az * by, zy = az * bx - ax * bz, zz = ax * by - ay * bx;
  const nz = Math.max(Math.hypot(zx, zy, zz), 1e-8);
  zx /= nz; zy /= nz; zz /= nz;
  const yx = zy * az - zz * ay, yy = zz * ax - zx * az, yz = zx * ay - zy * ax;
  out[0] = ax; out[1] = yx; out[2] = zx;
  out[3] = ay; out[4] = yy; out[5] = zy;
  out[6] = az; out[7] = yz; out[8] = zz;
  return out;
}

/** A * B. */
export function matMul(A: ArrayLike<number>, B: ArrayLike<number>, out: Mat3 = new Float64Array(9)): Mat3 {
  const r = new Float64Array(9);
  for (let i = 0; i < 3; i++)
    for (let j = 0; j < 3; j++) r[i * 3 + j] = A[i * 3] * B[j] + A[i * 3 + 1] * B[3 + j] + A[i * 3 + 2] * B[6 + j];
  out.set(r);
  return out;
}

/** A * B^T. */
export function matMulT(A: ArrayLike<number>, B: ArrayLike<number>, out: Mat3 = new Float64Array(9)): Mat3 {
  const r = new Float64Array(9);
  for (let i = 0; i < 3; i++)
    for (let j = 0; j < 3; j++) r[i * 3 + j] = A[i * 3] * B[j * 3] + A[i * 3 + 1] * B[j * 3 + 1] + A[i * 3 + 2] * B[j * 3 + 2];
  out.set(r);
  return out;
}

/** Frobenius distance between two rotations (0 for the same rotation). */
export function matDist(A: ArrayLike<number>, B: ArrayLike<number>): number {
  let s = 0;
  for (let i = 0; i < 9; i++) s += (A[i] - B[i]) ** 2;
  return Math.sqrt(s);
}
