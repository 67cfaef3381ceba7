/*
 * kd-simd: fused training kernels for kd-trainer's wasm backend, in WebAssembly SIMD (128-bit).
 *
 * The module imports tfjs-backend-wasm's own memory, so every pointer below is an offset into the
 * tensors' heap: no copies in or out. It must therefore own no memory of its own: no static data,
 * no C stack (no arrays in locals, no calls that spill). native/build.sh checks the output for data
 * segments and stack-pointer use and refuses to write it otherwise.
 *
 * Layout: activations are NHWC, seen as x[rows][c] with rows = N·H·W. Per-channel sums are taken in
 * float32 over blocks of BLOCK rows and added up in float64, so long batches lose no precision.
 */
#include <wasm_simd128.h>

#define BLOCK 64
#define EXPORT(name) __attribute__((export_name(#name)))

typedef v128_t f4;

static inline f4 splat(float v) { return wasm_f32x4_splat(v); }
static inline f4 ld(const float* p) { return wasm_v128_load(p); }
static inline void st(float* p, f4 v) { wasm_v128_store(p, v); }

/* e^x for four lanes: range reduction by ln 2, a degree-6 polynomial, and 2^n from the exponent bits
 * (Cephes expf). Relative error below 2e-7 on [-87, 88]; inputs are clamped to that range. */
static inline f4 exp4(f4 x) {
  x = wasm_f32x4_min(wasm_f32x4_max(x, splat(-87.0f)), splat(88.0f));
  f4 n = wasm_f32x4_nearest(wasm_f32x4_mul(x, splat(1.44269504088896341f)));
  f4 r = wasm_f32x4_sub(x, wasm_f32x4_mul(n, splat(0.693359375f)));
  r = wasm_f32x4_add(r, wasm_f32x4_mul(n, splat(2.12194440e-4f)));
  f4 p = splat(1.9875691500e-4f);
  p = wasm_f32x4_add(wasm_f32x4_mul(p, r), splat(1.3981999507e-3f));
  p = wasm_f32x4_add(wasm_f32x4_mul(p, r), splat(8.3334519073e-3f));
  p = wasm_f32x4_add(wasm_f32x4_mul(p, r), splat(4.1665795894e-2f));
  p = wasm_f32x4_add(wasm_f32x4_mul(p, r), splat(1.6666665459e-1f));
  p = wasm_f32x4_add(wasm_f32x4_mul(p, r), splat(5.0000001201e-1f));
  p = wasm_f32x4_add(wasm_f32x4_mul(wasm_f32x4_mul(p, r), r), wasm_f32x4_add(r, splat(1.0f)));
  v128_t e = wasm_i32x4_shl(wasm_i32x4_add(wasm_i32x4_trunc_sat_f32x4(n), wasm_i32x4_splat(127)), 23);
  return wasm_f32x4_mul(p, e);
}

/* σ(z) = 1 / (1 + e^−z). */
static inline f4 sigmoid4(f4 z) {
  return wasm_f32x4_div(splat(1.0f), wasm_f32x4_add(splat(1.0f), exp4(wasm_f32x4_neg(z))));
}

static inline float exp1(float x) { return wasm_f32x4_extract_lane(exp4(splat(x)), 0); }
static inline float sigmoid1(float z) { return 1.0f / (1.0f + exp1(-z)); }

/* Adds the four lanes of v to acc[0..3] in float64. */
static inline void add4(double* acc, f4 v) {
  v128_t lo = wasm_f64x2_promote_low_f32x4(v);
  v128_t hi = wasm_f64x2_promote_low_f32x4(wasm_i32x4_shuffle(v, v, 2, 3, 0, 1));
  wasm_v128_store(acc, wasm_f64x2_add(wasm_v128_load(acc), lo));
  wasm_v128_store(acc + 2, wasm_f64x2_add(wasm_v128_load(acc + 2), hi));
}

/*
 * Per-channel mean and biased variance of x[rows][c], in two passes (the variance from the centred
 * values, as tf.moments does). acc: scratch of 2·c doubles.
 */
EXPORT(kd_moments)
void kd_moments(const float* x, int rows, int c, float* mean, float* var, double* acc) {
  int c4 = c & ~3;
  for (int i = 0; i < 2 * c; i++) acc[i] = 0.0;
  for (int r0 = 0; r0 < rows; r0 += BLOCK) {
    int r1 = r0 + BLOCK < rows ? r0 + BLOCK : rows;
    for (int j = 0; j < c4; j += 4) {
      f4 s = splat(0.0f);
      for (int r = r0; r < r1; r++) s = wasm_f32x4_add(s, ld(x + (long)r * c + j));
      add4(acc + j, s);
    }
    for (int j = c4; j < c; j++) {
      float s = 0.0f;
      for (int r = r0; r < r1; r++) s += x[(long)r * c + j];
      acc[j] += s;
    }
  }
  for (int j = 0; j < c; j++) mean[j] = (float)(acc[j] / rows);
  for (int r0 = 0; r0 < rows; r0 += BLOCK) {
    int r1 = r0 + BLOCK < rows ? r0 + BLOCK : rows;
    for (int j = 0; j < c4; j += 4) {
      f4 m = ld(mean + j);
      f4 s = splat(0.0f);
      for (int r = r0; r < r1; r++) {
        f4 d = wasm_f32x4_sub(ld(x + (long)r * c + j), m);
        s = wasm_f32x4_add(s, wasm_f32x4_mul(d, d));
      }
      add4(acc + c + j, s);
    }
    for (int j = c4; j < c; j++) {
      float s = 0.0f;
      for (int r = r0; r < r1; r++) {
        float d = x[(long)r * c + j] - mean[j];
        s += d * d;
      }
      acc[c + j] += s;
    }
  }
  for (int j = 0; j < c; j++) var[j] = (float)(acc[c + j] / rows);
}

/* y = act ? z·σ(z) : z with z = x·scale + shift per channel (BatchNorm's affine folded with its moments). */
EXPORT(kd_bn_act)
void kd_bn_act(const float* x, int rows, int c, const float* scale, const float* shift, int act, float* y) {
  int c4 = c & ~3;
  for (int r = 0; r < rows; r++) {
    const float* xr = x + (long)r * c;
    float* yr = y + (long)r * c;
    for (int j = 0; j < c4; j += 4) {
      f4 z = wasm_f32x4_add(wasm_f32x4_mul(ld(xr + j), ld(scale + j)), ld(shift + j));
      st(yr + j, act ? wasm_f32x4_mul(z, sigmoid4(z)) : z);
    }
    for (int j = c4; j < c; j++) {
      float z = xr[j] * scale[j] + shift[j];
      yr[j] = act ? z * sigmoid1(z) : z;
    }
  }
}

/* dz = dy·d(act)/dz at z = x·scale + shift: σ(z)·(1 + z·(1 − σ(z))) for SiLU, 1 without. */
static inline f4 dact4(f4 dy, f4 z, int act) {
  if (!act) return dy;
  f4 s = sigmoid4(z);
  f4 one = splat(1.0f);
  return wasm_f32x4_mul(dy, wasm_f32x4_mul(s, wasm_f32x4_add(one, wasm_f32x4_mul(z, wasm_f32x4_sub(one, s)))));
}

static inline float dact1(float dy, float z, int act) {
  if (!act) return dy;
  float s = sigmoid1(z);
  return dy * s * (1.0f + z * (1.0f - s));
}

/*
 * First half of the backward pass: dz (the gradient before the activation) and its per-channel sums
 * Σdz and Σdz·x̂ with x̂ = (x − mean)·rstd, written to sums[0..c) and sums[c..2c). acc: 2·c doubles.
 */
EXPORT(kd_bn_act_grad)
void kd_bn_act_grad(const float* x, const float* dy, int rows, int c, const float* scale, const float* shift,
                    const float* mean, const float* rstd, int act, float* dz, float* sums, double* acc) {
  int c4 = c & ~3;
  for (int i = 0; i < 2 * c; i++) acc[i] = 0.0;
  for (int r0 = 0; r0 < rows; r0 += BLOCK) {
    int r1 = r0 + BLOCK < rows ? r0 + BLOCK : rows;
    for (int j = 0; j < c4; j += 4) {
      f4 sc = ld(scale + j), sh = ld(shift + j), m = ld(mean + j), rs = ld(rstd + j);
      f4 s0 = splat(0.0f), s1 = splat(0.0f);
      for (int r = r0; r < r1; r++) {
        long o = (long)r * c + j;
        f4 xv = ld(x + o);
        f4 g = dact4(ld(dy + o), wasm_f32x4_add(wasm_f32x4_mul(xv, sc), sh), act);
        st(dz + o, g);
        s0 = wasm_f32x4_add(s0, g);
        s1 = wasm_f32x4_add(s1, wasm_f32x4_mul(g, wasm_f32x4_mul(wasm_f32x4_sub(xv, m), rs)));
      }
      add4(acc + j, s0);
      add4(acc + c + j, s1);
    }
    for (int j = c4; j < c; j++) {
      float s0 = 0.0f, s1 = 0.0f;
      for (int r = r0; r < r1; r++) {
        long o = (long)r * c + j;
        float g = dact1(dy[o], x[o] * scale[j] + shift[j], act);
        dz[o] = g;
        s0 += g;
        s1 += g * (x[o] - mean[j]) * rstd[j];
      }
      acc[j] += s0;
      acc[c + j] += s1;
    }
  }
  for (int i = 0; i < 2 * c; i++) sums[i] = (float)acc[i];
}

/* Second half: dx = a·dz + b·x + k per channel, coef = [a | b | k] (3·c floats). */
EXPORT(kd_bn_grad_input)
void kd_bn_grad_input(const float* x, const float* dz, int rows, int c, const float* coef, float* dx) {
  int c4 = c & ~3;
  const float* a = coef;
  const float* b = coef + c;
  const float* k = coef + 2 * c;
  for (int r = 0; r < rows; r++) {
    long o = (long)r * c;
    for (int j = 0; j < c4; j += 4) {
      f4 v = wasm_f32x4_add(wasm_f32x4_mul(ld(a + j), ld(dz + o + j)), wasm_f32x4_mul(ld(b + j), ld(x + o + j)));
      st(dx + o + j, wasm_f32x4_add(v, ld(k + j)));
    }
    for (int j = c4; j < c; j++) dx[o + j] = a[j] * dz[o + j] + b[j] * x[o + j] + k[j];
  }
}

/* y = x·σ(x) over n values (the evaluation-mode activation after a BatchNorm-folded convolution). */
EXPORT(kd_silu)
void kd_silu(const float* x, int n, float* y) {
  int n4 = n & ~3;
  for (int i = 0; i < n4; i += 4) {
    f4 v = ld(x + i);
    st(y + i, wasm_f32x4_mul(v, sigmoid4(v)));
  }
  for (int i = n4; i < n; i++) y[i] = x[i] * sigmoid1(x[i]);
}

/*
 * col2im for a convolution's input gradient: dx[b, iy, ix, :] = Σ cols[b, oy, ox, ky, kx, :] over the
 * taps with iy = oy·sh − pt + ky, ix = ox·sw − pl + kx inside the image, where cols = dy · Wᵀ
 * ([n·oh·ow, kh·kw·ci]). dx (n·h·w·ci floats) is overwritten.
 */
EXPORT(kd_col2im)
void kd_col2im(const float* cols, int n, int oh, int ow, int kh, int kw, int ci, int h, int w,
               int sh, int sw, int pt, int pl, float* dx) {
  long total = (long)n * h * w * ci;
  long t4 = total & ~3L;
  for (long i = 0; i < t4; i += 4) st(dx + i, splat(0.0f));
  for (long i = t4; i < total; i++) dx[i] = 0.0f;
  int c4 = ci & ~3;
  for (int b = 0; b < n; b++) {
    for (int oy = 0; oy < oh; oy++) {
      for (int ox = 0; ox < ow; ox++) {
        const float* src = cols + (((long)b * oh + oy) * ow + ox) * kh * kw * ci;
        for (int ky = 0; ky < kh; ky++) {
          int iy = oy * sh - pt + ky;
          if (iy < 0 || iy >= h) continue;
          for (int kx = 0; kx < kw; kx++) {
            int ix = ox * sw - pl + kx;
            if (ix < 0 || ix >= w) continue;
            const float* s = src + (ky * kw + kx) * ci;
            float* d = dx + (((long)b * h + iy) * w + ix) * ci;
            for (int j = 0; j < c4; j += 4) st(d + j, wasm_f32x4_add(ld(d + j), ld(s + j)));
            for (int j = c4; j < ci; j++) d[j] += s[j];
          }
        }
      }
    }
  }
}

/*
 * im2col: cols[(b, oy, ox), (ky, kx, c)] = x[b, oy·sh − pt + ky, ox·sw − pl + kx, c], zero outside the
 * image; the row layout matches a [kh, kw, ci, co] filter seen as [kh·kw·ci, co].
 */
EXPORT(kd_im2col)
void kd_im2col(const float* x, int n, int h, int w, int ci, int kh, int kw, int sh, int sw, int pt, int pl,
               int oh, int ow, float* cols) {
  int c4 = ci & ~3;
  float* d = cols;
  for (int b = 0; b < n; b++) {
    for (int oy = 0; oy < oh; oy++) {
      for (int ox = 0; ox < ow; ox++) {
        int ix0 = ox * sw - pl;
        for (int ky = 0; ky < kh; ky++) {
          int iy = oy * sh - pt + ky;
          if (iy >= 0 && iy < h && ix0 >= 0 && ix0 + kw <= w) {
            // The whole row of taps lies inside the image: kw·ci contiguous floats in x.
            const float* s = x + (((long)b * h + iy) * w + ix0) * ci;
            int len = kw * ci;
            int l4 = len & ~3;
            for (int j = 0; j < l4; j += 4) st(d + j, ld(s + j));
            for (int j = l4; j < len; j++) d[j] = s[j];
            d += len;
            continue;
          }
          for (int kx = 0; kx < kw; kx++, d += ci) {
            int ix = ox * sw - pl + kx;
            if (iy < 0 || iy >= h || ix < 0 || ix >= w) {
              for (int j = 0; j < c4; j += 4) st(d + j, splat(0.0f));
              for (int j = c4; j < ci; j++) d[j] = 0.0f;
              continue;
            }
            const float* s = x + (((long)b * h + iy) * w + ix) * ci;
            for (int j = 0; j < c4; j += 4) st(d + j, ld(s + j));
            for (int j = c4; j < ci; j++) d[j] = s[j];
          }
        }
      }
    }
  }
}

#define GEMM_ROWS 256

/*
 * c[k][n] = Σ_r a[r·lda + i] · b[r·ldb + j] over r < m (c = aᵀ·b), for the long-m shape of a filter
 * gradient (m = pixels, k = kh·kw·ci, n = co) where a general GEMM is poorly blocked. Rows are taken in
 * chunks of GEMM_ROWS so a chunk of a and b stays in cache while every 4×8 block of c is updated.
 */
EXPORT(kd_gemm_tn)
void kd_gemm_tn(const float* a, int lda, const float* b, int ldb, int m, int k, int n, float* c) {
  int k4 = k & ~3;
  int n8 = n & ~7;
  int n4 = n & ~3;
  for (long i = 0; i < (long)k * n; i++) c[i] = 0.0f;
  for (int r0 = 0; r0 < m; r0 += GEMM_ROWS) {
    int r1 = r0 + GEMM_ROWS < m ? r0 + GEMM_ROWS : m;
    for (int i = 0; i < k4; i += 4) {
      float* c0 = c + (long)i * n;
      float* c1 = c0 + n;
      float* c2 = c1 + n;
      float* c3 = c2 + n;
      for (int j = 0; j < n8; j += 8) {
        f4 x00 = ld(c0 + j), x01 = ld(c0 + j + 4), x10 = ld(c1 + j), x11 = ld(c1 + j + 4);
        f4 x20 = ld(c2 + j), x21 = ld(c2 + j + 4), x30 = ld(c3 + j), x31 = ld(c3 + j + 4);
        const float* ar = a + (long)r0 * lda + i;
        const float* br = b + (long)r0 * ldb + j;
        for (int r = r0; r < r1; r++, ar += lda, br += ldb) {
          f4 av = ld(ar);
          f4 b0 = ld(br), b1 = ld(br + 4);
          f4 s = wasm_i32x4_shuffle(av, av, 0, 0, 0, 0);
          x00 = wasm_f32x4_add(x00, wasm_f32x4_mul(s, b0));
          x01 = wasm_f32x4_add(x01, wasm_f32x4_mul(s, b1));
          s = wasm_i32x4_shuffle(av, av, 1, 1, 1, 1);
          x10 = wasm_f32x4_add(x10, wasm_f32x4_mul(s, b0));
          x11 = wasm_f32x4_add(x11, wasm_f32x4_mul(s, b1));
          s = wasm_i32x4_shuffle(av, av, 2, 2, 2, 2);
          x20 = wasm_f32x4_add(x20, wasm_f32x4_mul(s, b0));
          x21 = wasm_f32x4_add(x21, wasm_f32x4_mul(s, b1));
          s = wasm_i32x4_shuffle(av, av, 3, 3, 3, 3);
          x30 = wasm_f32x4_add(x30, wasm_f32x4_mul(s, b0));
          x31 = wasm_f32x4_add(x31, wasm_f32x4_mul(s, b1));
        }
        st(c0 + j, x00); st(c0 + j + 4, x01); st(c1 + j, x10); st(c1 + j + 4, x11);
        st(c2 + j, x20); st(c2 + j + 4, x21); st(c3 + j, x30); st(c3 + j + 4, x31);
      }
      for (int j = n8; j < n4; j += 4) {
        f4 x0 = ld(c0 + j), x1 = ld(c1 + j), x2 = ld(c2 + j), x3 = ld(c3 + j);
        const float* ar = a + (long)r0 * lda + i;
        const float* br = b + (long)r0 * ldb + j;
        for (int r = r0; r < r1; r++, ar += lda, br += ldb) {
          f4 av = ld(ar);
          f4 b0 = ld(br);
          x0 = wasm_f32x4_add(x0, wasm_f32x4_mul(wasm_i32x4_shuffle(av, av, 0, 0, 0, 0), b0));
          x1 = wasm_f32x4_add(x1, wasm_f32x4_mul(wasm_i32x4_shuffle(av, av, 1, 1, 1, 1), b0));
          x2 = wasm_f32x4_add(x2, wasm_f32x4_mul(wasm_i32x4_shuffle(av, av, 2, 2, 2, 2), b0));
          x3 = wasm_f32x4_add(x3, wasm_f32x4_mul(wasm_i32x4_shuffle(av, av, 3, 3, 3, 3), b0));
        }
        st(c0 + j, x0); st(c1 + j, x1); st(c2 + j, x2); st(c3 + j, x3);
      }
      for (int j = n4; j < n; j++) {
        float s0 = c0[j], s1 = c1[j], s2 = c2[j], s3 = c3[j];
        for (int r = r0; r < r1; r++) {
          const float* ar = a + (long)r * lda + i;
          float bv = b[(long)r * ldb + j];
          s0 += ar[0] * bv; s1 += ar[1] * bv; s2 += ar[2] * bv; s3 += ar[3] * bv;
        }
        c0[j] = s0; c1[j] = s1; c2[j] = s2; c3[j] = s3;
      }
    }
    for (int i = k4; i < k; i++) {
      for (int j = 0; j < n; j++) {
        float s = c[(long)i * n + j];
        for (int r = r0; r < r1; r++) s += a[(long)r * lda + i] * b[(long)r * ldb + j];
        c[(long)i * n + j] = s;
      }
    }
  }
}

/*
 * Copies columns [from, from + width) of x[rows][c] into out[rows][width]: one output of a split along
 * the channel axis (the gradient of a channel concat, and Concat's inverse).
 */
EXPORT(kd_take_cols)
void kd_take_cols(const float* x, int rows, int c, int from, int width, float* out) {
  int w4 = width & ~3;
  for (int r = 0; r < rows; r++) {
    const float* s = x + (long)r * c + from;
    float* d = out + (long)r * width;
    for (int j = 0; j < w4; j += 4) st(d + j, ld(s + j));
    for (int j = w4; j < width; j++) d[j] = s[j];
  }
}

/* Writes x[rows][width] into columns [at, at + width) of out[rows][c]: one input of a channel concat. */
EXPORT(kd_put_cols)
void kd_put_cols(const float* x, int rows, int width, int c, int at, float* out) {
  int w4 = width & ~3;
  for (int r = 0; r < rows; r++) {
    const float* s = x + (long)r * width;
    float* d = out + (long)r * c + at;
    for (int j = 0; j < w4; j += 4) st(d + j, ld(s + j));
    for (int j = w4; j < width; j++) d[j] = s[j];
  }
}
