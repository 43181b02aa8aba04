/**
 * Small dense linear algebra for the pruner, row-major Float32Array /
 * Float64Array. Own code (a Cholesky and a few products are all that is
 * needed; no npm package fits a Float32Array-in, bounded-memory use better).
 */

/** Y[T,out] = X[T,in] W[in,out] (the ONNX MatMul layout). */
export function matmul(x: Float32Array, t: number, inDim: number, w: Float32Array, outDim: number): Float32Array {
  const y = new Float32Array(t * outDim);
  for (let r = 0; r < t; r++) {
    const yo = r * outDim;
    const xo = r * inDim;
    for (let k = 0; k < inDim; k++) {
      const a = x[xo + k];
      if (a === 0) continue;
      const wo = k * outDim;
      for (let j = 0; j < outDim; j++) y[yo + j] += a * w[wo + j];
    }
  }
  return y;
}

/** Transpose of a [rows, cols] matrix. */
export function transpose(a: Float32Array, rows: number, cols: number): Float32Array {
  const out = new Float32Array(rows * cols);
  for (let r = 0; r < rows; r++) for (let c = 0; c < cols; c++) out[c * rows + r] = a[r * cols + c];
  return out;
}

/** Gram of the rows of A [n, d]: G[n,n] = A A^T, in float64 (upper and lower filled). */
export function gramRows(a: Float32Array, n: number, d: number): Float64Array {
  const g = new Float64Array(n * n);
  for (let i = 0; i < n; i++) {
    const io = i * d;
    for (let j = i; j < n; j++) {
      const jo = j * d;
      let s = 0;
      for (let k = 0; k < d; k++) s += a[io + k] * a[jo + k];
      g[i * n + j] = s;
      g[j * n + i] = s;
    }
  }
  return g;
}

/** Gram of the columns of A [t, n]: G[n,n] = A^T A, float64. */
export function gramCols(a: Float32Array, t: number, n: number): Float64Array {
  const g = new Float64Array(n * n);
  for (let r = 0; r < t; r++) {
    const ro = r * n;
    for (let i = 0; i < n; i++) {
      const ai = a[ro + i];
      if (ai === 0) continue;
      const go = i * n;
      for (let j = i; j < n; j++) g[go + j] += ai * a[ro + j];
    }
  }
  for (let i = 0; i < n; i++) for (let j = 0; j < i; j++) g[i * n + j] = g[j * n + i];
  return g;
}

/**
 * In-place Cholesky of a symmetric positive definite matrix (lower factor L
 * in the lower triangle, A = L L^T). Returns false if A is not positive
 * definite (a non-positive pivot).
 */
export function cholesky(a: Float64Array, n: number): boolean {
  for (let j = 0; j < n; j++) {
    const jo = j * n;
    let d = a[jo + j];
    for (let k = 0; k < j; k++) d -= a[jo + k] * a[jo + k];
    if (!(d > 0)) return false;
    const ljj = Math.sqrt(d);
    a[jo + j] = ljj;
    for (let i = j + 1; i < n; i++) {
      const io = i * n;
      let s = a[io + j];
      for (let k = 0; k < j; k++) s -= a[io + k] * a[jo + k];
      a[io + j] = s / ljj;
    }
  }
  for (let i = 0; i < n; i++) for (let j = i + 1; j < n; j++) a[i * n + j] = 0;
  return true;
}

/** Solve (L L^T) x = b given the Cholesky factor L (lower). */
export function choleskySolve(l: Float64Array, n: number, b: Float64Array): Float64Array {
  const y = new Float64Array(n);
  for (let i = 0; i < n; i++) {
    let s = b[i];
    const io = i * n;
    for (let k = 0; k < i; k++) s -= l[io + k] * y[k];
    y[i] = s / l[io + i];
  }
  const x = new Float64Array(n);
  for (let i = n - 1; i >= 0; i--) {
    let s = y[i];
    for (let k = i + 1; k < n; k++) s -= l[k * n + i] * x[k];
    x[i] = s / l[i * n + i];
  }
  return x;
}

/** Inverse of an SPD matrix from its Cholesky factor L: A^-1 = L^-T L^-1 (full symmetric). */
export function choleskyInverse(l: Float64Array, n: number): Float64Array {
  // Linv (lower), column by column.
  const li = new Float64Array(n * n);
  for (let j = 0; j < n; j++) {
    li[j * n + j] = 1 / l[j * n + j];
    for (let i = j + 1; i < n; i++) {
      let s = 0;
      const io = i * n;
      for (let k = j; k < i; k++) s -= l[io + k] * li[k * n + j];
      li[io + j] = s / l[io + i];
    }
  }
  // A^-1 = Linv^T Linv: (i,j) = sum_k>=max(i,j) Linv[k,i] Linv[k,j]
  const inv = new Float64Array(n * n);
  for (let k = 0; k < n; k++) {
    const ko = k * n;
    for (let i = 0; i <= k; i++) {
      const a = li[ko + i];
      if (a === 0) continue;
      const io = i * n;
      for (let j = 0; j <= i; j++) inv[io + j] += a * li[ko + j];
    }
  }
  for (let i = 0; i < n; i++) for (let j = 0; j < i; j++) inv[j * n + i] = inv[i * n + j];
  return inv;
}
