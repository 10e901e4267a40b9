// One decode step (a single new token) of the Llama-family decoder in six kernels per layer.
//
// candle runs a decode step as about twenty small operations per layer (norms, products,
// copies for reshapes, RoPE, cache concatenation, softmax …), each a kernel launch with its
// host-side cost; at batch 1 the launches, not the weights' bytes, set the time per token.
// These kernels fuse each stretch between two matrix products into the product's prologue or
// epilogue:
//
//   embed                      x = E[token]
//   gemv_cols<RMS>             qkv = rmsnorm(x)·Wqkv (+ bias)
//   kv_write                   RoPE(k) and v into the cache at the step's slot
//   attn_decode                RoPE(q), scores over the cache, softmax, · V
//   gemv_cols<PLAIN> + res     x = x + y·Wo
//   gemv_cols<RMS>             gu = rmsnorm(x)·Wgate_up
//   gemv_cols<SWIGLU> + res    x = x + (silu(gate)·up)·Wdown
//   gemv_cols|rows<RMS> → f32  logits = rmsnorm(x)·Whead (or ·Eᵀ, tied)
//
// Weights are the decoder's (in, out) row-major matrices (`gemv_cols`) or the embedding's
// (vocab, hidden) rows (`gemv_rows`). Every sum is in f32; values are rounded to the model's
// dtype where the op-by-op path stores them (the residual stream, q/k/v, the cache, the
// attention output), so the two paths differ by where intermediate roundings fall.
//
// Launch shapes are chosen by the host (methods/src/model/cuda/mod.rs), which also checks
// every precondition stated here (alignment, sizes, shared memory) before a launch.

#include <cuda_bf16.h>
#include <cuda_fp16.h>
#include <stdint.h>

#define THREADS 256

__device__ __forceinline__ float to_f(float x) { return x; }
__device__ __forceinline__ float to_f(__half x) { return __half2float(x); }
__device__ __forceinline__ float to_f(__nv_bfloat16 x) { return __bfloat162float(x); }

template <typename T> __device__ __forceinline__ T from_f(float x);
template <> __device__ __forceinline__ float from_f<float>(float x) { return x; }
template <> __device__ __forceinline__ __half from_f<__half>(float x) { return __float2half_rn(x); }
template <> __device__ __forceinline__ __nv_bfloat16 from_f<__nv_bfloat16>(float x) {
  return __float2bfloat16_rn(x);
}

// 16 bytes of T unpacked to f32.
template <typename T> struct Pack {
  static constexpr int N = 16 / sizeof(T);
};

__device__ __forceinline__ void unpack(const uint4 u, float* f, float) {
  f[0] = __uint_as_float(u.x);
  f[1] = __uint_as_float(u.y);
  f[2] = __uint_as_float(u.z);
  f[3] = __uint_as_float(u.w);
}

__device__ __forceinline__ void unpack(const uint4 u, float* f, __nv_bfloat16) {
  const uint32_t w[4] = {u.x, u.y, u.z, u.w};
#pragma unroll
  for (int i = 0; i < 4; ++i) {
    f[2 * i] = __uint_as_float(w[i] << 16);
    f[2 * i + 1] = __uint_as_float(w[i] & 0xffff0000u);
  }
}

__device__ __forceinline__ void unpack(const uint4 u, float* f, __half) {
  const uint32_t w[4] = {u.x, u.y, u.z, u.w};
#pragma unroll
  for (int i = 0; i < 4; ++i) {
    __half2 h;
    memcpy(&h, &w[i], 4);
    const float2 p = __half22float2(h);
    f[2 * i] = p.x;
    f[2 * i + 1] = p.y;
  }
}

template <typename T> __device__ __forceinline__ void load16(const T* p, float* f) {
  const uint4 u = __ldg(reinterpret_cast<const uint4*>(p));
  unpack(u, f, T());
}

__device__ __forceinline__ float warp_sum(float v) {
#pragma unroll
  for (int o = 16; o > 0; o >>= 1) v += __shfl_xor_sync(0xffffffffu, v, o);
  return v;
}

__device__ __forceinline__ float warp_max(float v) {
#pragma unroll
  for (int o = 16; o > 0; o >>= 1) v = fmaxf(v, __shfl_xor_sync(0xffffffffu, v, o));
  return v;
}

// The block's sum (MAX = false) or maximum of `v`, returned to every thread.
template <bool MAX> __device__ float block_reduce(float v) {
  __shared__ float part[32];
  v = MAX ? warp_max(v) : warp_sum(v);
  const int warps = (blockDim.x + 31) / 32;
  __syncthreads();  // `part` may still be read by a previous reduction
  if ((threadIdx.x & 31) == 0) part[threadIdx.x >> 5] = v;
  __syncthreads();
  float r = part[0];
  for (int i = 1; i < warps; ++i) r = MAX ? fmaxf(r, part[i]) : r + part[i];
  return r;
}

enum { PLAIN = 0, RMS = 1, SWIGLU = 2 };

// The product's inputs k0..k1, in f32, into shared memory `xs[0 .. k1 - k0]`:
//   PLAIN   x
//   RMS     x / sqrt(mean(x²) + eps) · g   (RMSNorm as candle's rms_norm; the mean over all K)
//   SWIGLU  silu(x[k]) · x[K + k]          (x = gate then up, side by side)
template <typename T, int PRO>
__device__ void stage(const T* __restrict__ x, const T* __restrict__ g, float eps, int K, int k0, int k1,
                      float* xs) {
  if (PRO == RMS) {
    float ss = 0.f;
    for (int i = threadIdx.x; i < K; i += blockDim.x) {
      const float v = to_f(x[i]);
      ss += v * v;
    }
    const float inv = rsqrtf(block_reduce<false>(ss) / (float)K + eps);
    for (int k = k0 + threadIdx.x; k < k1; k += blockDim.x) xs[k - k0] = to_f(x[k]) * inv * to_f(g[k]);
  } else if (PRO == SWIGLU) {
    for (int k = k0 + threadIdx.x; k < k1; k += blockDim.x) {
      const float a = to_f(x[k]);
      xs[k - k0] = a / (1.f + __expf(-a)) * to_f(x[K + k]);
    }
  } else {
    for (int k = k0 + threadIdx.x; k < k1; k += blockDim.x) xs[k - k0] = to_f(x[k]);
  }
  __syncthreads();
}

// Threads side by side on a row in a column product (8 × 16 bytes: a 128-byte line).
#define CT 8

// y[n] = Σ_k xs[k] · W[k, n] (+ bias[n]) (+ res[n]) for W (K, N) row-major.
//
// Block (tile, split) owns columns tile·C .. +C (C = CT · V, V = 16 bytes of T) and rows
// split·ks .. +ks: its CT threads per row read the row's pieces side by side (coalesced) and
// its THREADS / CT row groups take the range's rows in turn. With one split the block
// writes y; with several, each writes its column sums to `partial[split][n]`, and the tile's
// last block to finish (a ticket from `counter[tile]`, which it resets to 0) adds the
// splits in split order (the result does not depend on which block is last) and writes y.
// Splitting the rows gives a product of few columns enough blocks to keep the memory busy.
// Needs N % V == 0, W 16-byte aligned, ks a multiple of THREADS / CT, dynamic shared memory
// (THREADS · V + ks) floats; `partial` gridDim.y · N floats and `counter` gridDim.x zeros
// when gridDim.y > 1.
template <typename T, typename TO, int PRO>
__device__ void gemv_cols(const T* __restrict__ w, const T* __restrict__ x, const T* __restrict__ g,
                          float eps, const T* __restrict__ bias, const T* __restrict__ res,
                          TO* __restrict__ y, int K, int N, int ks, float* __restrict__ partial,
                          unsigned* __restrict__ counter) {
  constexpr int V = Pack<T>::N, C = CT * V, G = THREADS / CT, P = THREADS / C;
  extern __shared__ float smem[];
  float* red = smem;
  float* xs = smem + THREADS * V;
  const int tile = blockIdx.x, split = blockIdx.y, splits = gridDim.y;
  const int k0 = split * ks, k1 = min(K, k0 + ks);
  stage<T, PRO>(x, g, eps, K, k0, k1, xs);
  const int c = threadIdx.x % CT, r = threadIdx.x / CT;
  const int col = tile * C + c * V;
  float acc[V];
#pragma unroll
  for (int v = 0; v < V; ++v) acc[v] = 0.f;
  if (col < N) {
    const T* p = w + (size_t)(k0 + r) * N + col;
    const size_t step = (size_t)G * N;
#pragma unroll 4
    for (int k = k0 + r; k < k1; k += G, p += step) {
      float f[V];
      load16(p, f);
      const float xk = xs[k - k0];
#pragma unroll
      for (int v = 0; v < V; ++v) acc[v] = fmaf(xk, f[v], acc[v]);
    }
  }
#pragma unroll
  for (int v = 0; v < V; ++v) red[r * C + c * V + v] = acc[v];
  __syncthreads();
  // Column sums: P threads per column each add G / P row groups, then the P partials.
  const int i = threadIdx.x % C, q0 = threadIdx.x / C;
  float s = 0.f;
  for (int q = q0; q < G; q += P) s += red[q * C + i];
  __syncthreads();
  red[q0 * C + i] = s;
  __syncthreads();
  const int n = tile * C + threadIdx.x;
  const bool mine = threadIdx.x < C && n < N;
  float t = 0.f;
  if (mine)
    for (int q = 0; q < P; ++q) t += red[q * C + threadIdx.x];
  if (splits > 1) {
    __shared__ unsigned ticket;
    if (mine) partial[(size_t)split * N + n] = t;
    __threadfence();
    __syncthreads();
    if (threadIdx.x == 0) ticket = atomicAdd(&counter[tile], 1u);
    __syncthreads();
    if (ticket != (unsigned)splits - 1) return;
    __threadfence();
    t = 0.f;
    if (mine) {
#pragma unroll 8
      for (int q = 0; q < splits; ++q) t += __ldcg(&partial[(size_t)q * N + n]);
    }
    if (threadIdx.x == 0) counter[tile] = 0;
  }
  if (!mine) return;
  if (bias) t += to_f(bias[n]);
  if (res) t += to_f(res[n]);
  y[n] = from_f<TO>(t);
}

// y[n] = Σ_k xs[k] · W[n, k] for W (N, K) row-major (the tied head: the embedding's rows).
// A warp per row, `rows` rows per warp. Needs K % V == 0, W 16-byte aligned, dynamic shared
// memory K floats.
template <typename T, typename TO, int PRO>
__device__ void gemv_rows(const T* __restrict__ w, const T* __restrict__ x, const T* __restrict__ g,
                          float eps, TO* __restrict__ y, int K, int N, int rows) {
  constexpr int V = Pack<T>::N;
  extern __shared__ float smem[];
  float* xs = smem;
  stage<T, PRO>(x, g, eps, K, 0, K, xs);
  const int warps = blockDim.x / 32, warp = threadIdx.x / 32, lane = threadIdx.x % 32;
  for (int i = 0; i < rows; ++i) {
    const int n = (blockIdx.x * rows + i) * warps + warp;
    if (n >= N) break;
    const T* p = w + (size_t)n * K;
    float acc = 0.f;
    for (int k = lane * V; k < K; k += 32 * V) {
      float f[V];
      load16(p + k, f);
#pragma unroll
      for (int v = 0; v < V; ++v) acc = fmaf(xs[k + v], f[v], acc);
    }
    acc = warp_sum(acc);
    if (lane == 0) y[n] = from_f<TO>(acc);
  }
}

// x = E[token] (one row of the (vocab, K) table).
template <typename T> __device__ void embed(const T* __restrict__ table, T* __restrict__ x, int token, int K) {
  const int i = blockIdx.x * blockDim.x + threadIdx.x;
  if (i < K) x[i] = table[(size_t)token * K + i];
}

// RoPE, rotate-half convention (as candle_nn::rotary_emb::rope): element i of a head pairs
// with i ± D/2; cos/sin are rows `pos` of the (max_seq, D/2) tables.
template <typename T>
__device__ __forceinline__ float rope(const T* head, int i, int D, const T* cos_t, const T* sin_t, int pos) {
  const int half = D / 2;
  const int j = i < half ? i : i - half;
  const float c = to_f(cos_t[(size_t)pos * half + j]), s = to_f(sin_t[(size_t)pos * half + j]);
  const float a = to_f(head[i]);
  const float b = i < half ? -to_f(head[i + half]) : to_f(head[i - half]);
  return a * c + b * s;
}

// The step's keys (rotated) and values into the caches (KVH, cap, D) at position `slot`.
// qkv = [q (H·D) | k (KVH·D) | v (KVH·D)]. Grid KVH, block D threads.
template <typename T>
__device__ void kv_write(const T* __restrict__ qkv, const T* __restrict__ cos_t, const T* __restrict__ sin_t,
                         T* __restrict__ kc, T* __restrict__ vc, int pos, int slot, int cap, int H, int KVH,
                         int D) {
  const int kh = blockIdx.x, i = threadIdx.x;
  if (i >= D) return;
  const T* k = qkv + (size_t)(H + kh) * D;
  const T* v = qkv + (size_t)(H + KVH + kh) * D;
  const size_t at = ((size_t)kh * cap + slot) * D + i;
  kc[at] = from_f<T>(rope(k, i, D, cos_t, sin_t, pos));
  vc[at] = v[i];
}

// One query head per block: q rotated at `pos` (rounded to T as the op-by-op path stores
// it) and scaled, scores against the L cached keys of its KV head (a thread per key),
// softmax, then the values' weighted sum (threads over D × key chunks). Dynamic shared
// memory (D + L + THREADS) floats.
template <typename T>
__device__ void attn_decode(const T* __restrict__ qkv, const T* __restrict__ cos_t, const T* __restrict__ sin_t,
                            const T* __restrict__ kc, const T* __restrict__ vc, T* __restrict__ out, int pos,
                            int L, int cap, int H, int KVH, int D, float scale) {
  constexpr int V = Pack<T>::N;
  extern __shared__ float smem[];
  float* q = smem;
  float* sc = smem + D;
  float* red = sc + L;
  const int h = blockIdx.x, kh = h / (H / KVH);
  for (int i = threadIdx.x; i < D; i += blockDim.x)
    q[i] = to_f(from_f<T>(rope(qkv + (size_t)h * D, i, D, cos_t, sin_t, pos)));
  __syncthreads();
  const T* kb = kc + (size_t)kh * cap * D;
  const T* vb = vc + (size_t)kh * cap * D;
  float m = -INFINITY;
  for (int j = threadIdx.x; j < L; j += blockDim.x) {
    const T* kr = kb + (size_t)j * D;
    float d = 0.f;
#pragma unroll 4
    for (int c = 0; c < D; c += V) {
      float f[V];
      load16(kr + c, f);
#pragma unroll
      for (int v = 0; v < V; ++v) d = fmaf(q[c + v], f[v], d);
    }
    d *= scale;
    sc[j] = d;
    m = fmaxf(m, d);
  }
  m = block_reduce<true>(m);
  float s = 0.f;
  for (int j = threadIdx.x; j < L; j += blockDim.x) {
    const float e = __expf(sc[j] - m);
    sc[j] = e;
    s += e;
  }
  s = block_reduce<false>(s);  // ends after a barrier: every sc[j] is visible
  const int chunks = blockDim.x / D;
  const int d = threadIdx.x % D, ch = threadIdx.x / D;
  if (ch < chunks) {
    float a = 0.f;
#pragma unroll 4
    for (int j = ch; j < L; j += chunks) a = fmaf(sc[j], to_f(vb[(size_t)j * D + d]), a);
    red[ch * D + d] = a;
  }
  __syncthreads();
  for (int i = threadIdx.x; i < D; i += blockDim.x) {
    float a = 0.f;
    for (int c = 0; c < chunks; ++c) a += red[c * D + i];
    out[(size_t)h * D + i] = from_f<T>(a / s);
  }
}

#define INSTANTIATE(T, S)                                                                          \
  extern "C" __global__ void oae_embed_##S(const T* table, T* x, int token, int K) {               \
    embed<T>(table, x, token, K);                                                                  \
  }                                                                                                \
  extern "C" __global__ void __launch_bounds__(THREADS)                                            \
      oae_gemv_plain_##S(const T* w, const T* x, const T* g, float eps, const T* bias, const T* res, \
                         T* y, int K, int N, int ks, float* partial, unsigned* counter) {          \
    gemv_cols<T, T, PLAIN>(w, x, g, eps, bias, res, y, K, N, ks, partial, counter);                \
  }                                                                                                \
  extern "C" __global__ void __launch_bounds__(THREADS)                                            \
      oae_gemv_rms_##S(const T* w, const T* x, const T* g, float eps, const T* bias, const T* res, \
                       T* y, int K, int N, int ks, float* partial, unsigned* counter) {            \
    gemv_cols<T, T, RMS>(w, x, g, eps, bias, res, y, K, N, ks, partial, counter);                  \
  }                                                                                                \
  extern "C" __global__ void __launch_bounds__(THREADS)                                            \
      oae_gemv_swiglu_##S(const T* w, const T* x, const T* g, float eps, const T* bias,            \
                          const T* res, T* y, int K, int N, int ks, float* partial, unsigned* counter) { \
    gemv_cols<T, T, SWIGLU>(w, x, g, eps, bias, res, y, K, N, ks, partial, counter);               \
  }                                                                                                \
  extern "C" __global__ void __launch_bounds__(THREADS)                                            \
      oae_head_cols_##S(const T* w, const T* x, const T* g, float eps, const T* bias, const T* res, \
                        float* y, int K, int N, int ks, float* partial, unsigned* counter) {       \
    gemv_cols<T, float, RMS>(w, x, g, eps, bias, res, y, K, N, ks, partial, counter);              \
  }                                                                                                \
  extern "C" __global__ void __launch_bounds__(THREADS)                                            \
      oae_head_rows_##S(const T* w, const T* x, const T* g, float eps, float* y, int K, int N,     \
                        int rows) {                                                                \
    gemv_rows<T, float, RMS>(w, x, g, eps, y, K, N, rows);                                         \
  }                                                                                                \
  extern "C" __global__ void oae_kv_write_##S(const T* qkv, const T* cos_t, const T* sin_t, T* kc, \
                                              T* vc, int pos, int slot, int cap, int H, int KVH,   \
                                              int D) {                                             \
    kv_write<T>(qkv, cos_t, sin_t, kc, vc, pos, slot, cap, H, KVH, D);                             \
  }                                                                                                \
  extern "C" __global__ void __launch_bounds__(THREADS)                                            \
      oae_attn_decode_##S(const T* qkv, const T* cos_t, const T* sin_t, const T* kc, const T* vc,  \
                          T* out, int pos, int L, int cap, int H, int KVH, int D, float scale) {   \
    attn_decode<T>(qkv, cos_t, sin_t, kc, vc, out, pos, L, cap, H, KVH, D, scale);                 \
  }

INSTANTIATE(float, f32)
INSTANTIATE(__nv_bfloat16, bf16)
INSTANTIATE(__half, f16)
