// The loops of torch.ops.mlpot.cfconv: see cfconv_kernels.h for the formulas.
//
// Edges are processed in blocks (block_size): radial basis, the filter network's matrix products
// (ATen mm on the block) and the gather-multiply-scatter stay in cache, so no [P, F] tensor of
// messages is materialised. Blocks run in parallel (at::parallel_for, torch's intra-op threads),
// each thread accumulating atom-indexed outputs and weight gradients into its own copy.
#include "cfconv_kernels.h"

#include <ATen/Parallel.h>

#include <algorithm>
#include <cmath>
#include <vector>

#include "messages.h"
#include "vector_math.h"

namespace mlpot::cfconv {
namespace {

using torch::Tensor;

// Edges per block: at most 512 (the block's working set stays in cache), and a whole number of
// blocks per thread, so that the threads share the edges evenly (a 1152-edge training batch
// would otherwise split 1024 : 128 between two threads, a 5568-edge water box 6 : 5 blocks).
int64_t block_size(int64_t P) {
  const int64_t threads = at::get_num_threads();
  const int64_t per_thread = (P + threads - 1) / threads;
  const int64_t blocks_per_thread = std::max<int64_t>(2, (per_thread + 511) / 512);
  return std::clamp<int64_t>((per_thread + blocks_per_thread - 1) / blocks_per_thread, 64, 512);
}

// The per-edge shapes and raw pointers every loop reads.
template <typename T>
struct View {
  int64_t P, F, H, K;
  const T* d;
  const T* x;
  const T* centers;
  const int64_t* ii;
  const int64_t* jj;
  int64_t block;
  explicit View(const Inputs& in)
      : P(in.d.size(0)), F(in.x.size(1)), H(in.w1.size(0)), K(in.w1.size(1)), d(in.d.data_ptr<T>()),
        x(in.x.data_ptr<T>()), centers(in.centers.data_ptr<T>()), ii(in.idx_i.data_ptr<int64_t>()),
        jj(in.idx_j.data_ptr<int64_t>()), block(block_size(P)) {}
  int64_t blocks() const { return (P + block - 1) / block; }
};

// For edges p0 .. p0+n: rbf [n, K] and d rbf/dd [n, K] (each skipped if null), fc [n] and
// dfc/dd [n] (skipped if null).
template <typename T>
void radial(const Inputs& in, const View<T>& v, int64_t p0, int64_t n, T* rbf, T* drbf, T* fc, T* dfc) {
  const T* d = v.d + p0;
  if (rbf) mlpot::gaussians(d, n, v.centers, v.K, in.coeff, rbf);
  if (drbf) {
    const T two_c = static_cast<T>(2.0 * in.coeff);
    for (int64_t q = 0; q < n; ++q)
#pragma omp simd
      for (int64_t k = 0; k < v.K; ++k) drbf[q * v.K + k] = rbf[q * v.K + k] * two_c * (d[q] - v.centers[k]);
  }
  const double a = M_PI / in.cutoff;
  for (int64_t q = 0; q < n; ++q) {
    const double dq = d[q];
    const bool inside = dq < in.cutoff;
    fc[q] = inside ? static_cast<T>(0.5 * (std::cos(a * dq) + 1.0)) : T(0);
    if (dfc) dfc[q] = inside ? static_cast<T>(-0.5 * a * std::sin(a * dq)) : T(0);
  }
}

// act = softplus(z) (ssp + ln2), sig = σ(z) for z = rbf w1ᵀ + b1 on a block; rbf [n, K].
template <typename T>
void hidden(const Inputs& in, const Tensor& w1t, const Tensor& rbf, Tensor act, Tensor sig) {
  at::mm_out(act, rbf, w1t);
  mlpot::softplus_and_sigmoid(act.data_ptr<T>(), in.b1.data_ptr<T>(), act.size(0), act.size(1), act.data_ptr<T>(),
                              sig.data_ptr<T>());
}

// Σ over the rows of m [n, cols] added into acc [cols].
template <typename T>
void add_rows(const T* m, int64_t n, int64_t cols, T* acc) {
  for (int64_t q = 0; q < n; ++q)
#pragma omp simd
    for (int64_t c = 0; c < cols; ++c) acc[c] += m[q * cols + c];
}

// b2 − ln2 Σ_h w2 [rows] for w2 [rows, H] (contiguous): the shift of ssp folded into the bias of
// the filter's second layer, f = w2 softplus(z) + that.
template <typename T>
std::vector<T> shifted_bias(const T* w2, const T* b2, int64_t rows, int64_t H) {
  std::vector<T> out(rows);
  for (int64_t f = 0; f < rows; ++f) {
    T sum = 0;
#pragma omp simd reduction(+ : sum)
    for (int64_t h = 0; h < H; ++h) sum += w2[f * H + h];
    out[f] = static_cast<T>(b2[f] - LN2 * sum);
  }
  return out;
}

Tensor workspace(int64_t rows, int64_t cols, const torch::TensorOptions& opts) { return torch::empty({rows, cols}, opts); }

// out[i] += x[j] ⊙ f_q c_q (and out[j] += x[i] ⊙ f_q c_q two-way) for the edges p0 .. p0+n of a
// block; w: their filter rows f [n, F], fc: their cutoffs.
template <typename T>
void scatter_block(const Inputs& in, const View<T>& v, const T* w, const T* fc, int64_t p0, int64_t n, T* out) {
  const int64_t F = v.F;
  for (int64_t q = 0; q < n; ++q) {
    const T c = fc[q];
    if (c == T(0)) continue;
    const int64_t p = p0 + q, i = v.ii[p], j = v.jj[p];
    const T* wq = w + q * F;
    T* oi = out + i * F;
    const T* xj = v.x + j * F;
    if (p < in.n_two_way) {
      T* oj = out + j * F;
      const T* xi = v.x + i * F;
#pragma omp simd
      for (int64_t f = 0; f < F; ++f) {
        const T wf = wq[f] * c;
        oi[f] += xj[f] * wf;
        oj[f] += xi[f] * wf;
      }
    } else {
#pragma omp simd
      for (int64_t f = 0; f < F; ++f) oi[f] += xj[f] * wq[f] * c;
    }
  }
}

template <typename T>
Forward forward_t(const Inputs& in, bool keep) {
  const View<T> v(in);
  const int64_t P = v.P, F = v.F, H = v.H, K = v.K;
  auto opts = in.x.options();
  Forward r;
  r.out = torch::zeros({in.n_out, F}, opts);
  if (keep) {
    r.filter = torch::empty({P, F}, opts);
    r.slope = torch::empty({P, F}, opts);
  }
  if (P == 0) return r;
  const Tensor w1t = in.w1.t(), w2t = in.w2.t();
  const std::vector<T> b2 = shifted_bias(in.w2.data_ptr<T>(), in.b2.data_ptr<T>(), F, H);
  mlpot::PerThreadSum out_sum(r.out);

  at::parallel_for(0, v.blocks(), 1, [&](int64_t first, int64_t last) {
    T* out = out_sum.mine().data_ptr<T>();
    Tensor rbf = workspace(v.block, K, opts), drbf = keep ? workspace(v.block, K, opts) : Tensor();
    Tensor act = workspace(v.block, H, opts), sig = workspace(v.block, H, opts), grow = keep ? workspace(v.block, H, opts) : Tensor();
    Tensor filter_local = keep ? Tensor() : workspace(v.block, F, opts);
    std::vector<T> fc(v.block);
    for (int64_t b = first; b < last; ++b) {
      const int64_t p0 = b * v.block, n = std::min(v.block, P - p0);
      radial<T>(in, v, p0, n, rbf.data_ptr<T>(), keep ? drbf.data_ptr<T>() : nullptr, fc.data(), nullptr);
      Tensor a = act.narrow(0, 0, n), s = sig.narrow(0, 0, n);
      hidden<T>(in, w1t, rbf.narrow(0, 0, n), a, s);
      Tensor filt = keep ? r.filter.narrow(0, p0, n) : filter_local.narrow(0, 0, n);
      at::mm_out(filt, a, w2t);
      T* w = filt.data_ptr<T>();
      for (int64_t q = 0; q < n; ++q)  // f = w2 softplus(z) + b2 − ln2 Σ_h w2
#pragma omp simd
        for (int64_t f = 0; f < F; ++f) w[q * F + f] += b2[f];
      if (keep) {  // f' = w2 (σ ⊙ w1 r')
        Tensor g = grow.narrow(0, 0, n);
        at::mm_out(g, drbf.narrow(0, 0, n), w1t);
        g.mul_(s);
        Tensor slope = r.slope.narrow(0, p0, n);
        at::mm_out(slope, g, w2t);
      }
      scatter_block<T>(in, v, w, fc.data(), p0, n, out);
    }
  });
  out_sum.sum();
  return r;
}

template <typename T>
Tensor messages_t(const Inputs& in, const Tensor& filter) {
  const View<T> v(in);
  Tensor out = torch::zeros({in.n_out, v.F}, in.x.options());
  if (v.P == 0) return out;
  const T* fil = filter.data_ptr<T>();
  mlpot::PerThreadSum out_sum(out);
  at::parallel_for(0, v.blocks(), 1, [&](int64_t first, int64_t last) {
    T* o = out_sum.mine().data_ptr<T>();
    std::vector<T> fc(v.block);
    for (int64_t b = first; b < last; ++b) {
      const int64_t p0 = b * v.block, n = std::min(v.block, v.P - p0);
      radial<T>(in, v, p0, n, nullptr, nullptr, fc.data(), nullptr);
      scatter_block<T>(in, v, fil + p0 * v.F, fc.data(), p0, n, o);
    }
  });
  out_sum.sum();
  return out;
}

template <typename T>
Gradients gradient_t(const Inputs& in, const Tensor& filter, const Tensor& slope, const Tensor& go_, bool want_d,
                     bool want_x, bool want_filter) {
  const View<T> v(in);
  const int64_t P = v.P, F = v.F, N = in.x.size(0);
  auto opts = in.x.options();
  const Tensor go = go_.contiguous();
  Gradients g;
  if (want_d) g.d = torch::zeros({P}, opts);
  if (want_filter) g.filter = torch::empty({P, F}, opts);
  // the gather-scatter loop always accumulates grad_x (a scratch copy when not wanted)
  g.x = torch::zeros({N, F}, opts);
  if (P == 0) {
    if (!want_x) g.x = Tensor();
    return g;
  }
  const T* gop = go.data_ptr<T>();
  const T* fil = filter.data_ptr<T>();
  const T* slo = slope.data_ptr<T>();
  T* gd = want_d ? g.d.data_ptr<T>() : nullptr;
  T* gfp = want_filter ? g.filter.data_ptr<T>() : nullptr;
  mlpot::PerThreadSum x_sum(g.x);

  at::parallel_for(0, v.blocks(), 1, [&](int64_t first, int64_t last) {
    T* gx = x_sum.mine().data_ptr<T>();
    std::vector<T> fc(v.block), dfc(v.block);
    for (int64_t b = first; b < last; ++b) {
      const int64_t p0 = b * v.block, n = std::min(v.block, P - p0);
      radial<T>(in, v, p0, n, nullptr, nullptr, fc.data(), dfc.data());
      for (int64_t q = 0; q < n; ++q) {
        const int64_t p = p0 + q, i = v.ii[p], j = v.jj[p];
        const T c = fc[q], cp = dfc[q];
        if (c == T(0)) {
          if (gfp) std::fill(gfp + p * F, gfp + (p + 1) * F, T(0));
          continue;  // grad_d stays 0
        }
        const T* fq = fil + p * F;
        const T* sq = slo + p * F;
        const T* goi = gop + i * F;
        const T* xj = v.x + j * F;
        T* gxj = gx + j * F;
        T s0 = 0, s1 = 0;  // G·f, G·f'
        if (p < in.n_two_way) {
          const T* goj = gop + j * F;
          const T* xi = v.x + i * F;
          T* gxi = gx + i * F;
#pragma omp simd reduction(+ : s0, s1)
          for (int64_t f = 0; f < F; ++f) {
            const T G = goi[f] * xj[f] + goj[f] * xi[f];
            s0 += G * fq[f];
            s1 += G * sq[f];
            gxj[f] += goi[f] * fq[f] * c;
            gxi[f] += goj[f] * fq[f] * c;
          }
          if (gfp) {
            T* gq = gfp + p * F;
#pragma omp simd
            for (int64_t f = 0; f < F; ++f) gq[f] = (goi[f] * xj[f] + goj[f] * xi[f]) * c;
          }
        } else {
#pragma omp simd reduction(+ : s0, s1)
          for (int64_t f = 0; f < F; ++f) {
            const T G = goi[f] * xj[f];
            s0 += G * fq[f];
            s1 += G * sq[f];
            gxj[f] += goi[f] * fq[f] * c;
          }
          if (gfp) {
            T* gq = gfp + p * F;
#pragma omp simd
            for (int64_t f = 0; f < F; ++f) gq[f] = goi[f] * xj[f] * c;
          }
        }
        if (gd) gd[p] = c * s1 + cp * s0;
      }
    }
  });
  x_sum.sum();
  if (!want_x) g.x = Tensor();
  return g;
}

template <typename T>
SecondGradients second_t(const Inputs& in, const Tensor& filter, const Tensor& slope, const Tensor& go_,
                         const Tensor& gg_d_, const Tensor& gg_x_, bool want_filter) {
  const View<T> v(in);
  const int64_t P = v.P, F = v.F, N = in.x.size(0);
  auto opts = in.x.options();
  const Tensor go = go_.contiguous();
  const Tensor gg_d = gg_d_.defined() ? gg_d_.contiguous() : torch::zeros({P}, opts);
  const Tensor gg_x = gg_x_.defined() ? gg_x_.contiguous() : torch::zeros({N, F}, opts);
  SecondGradients g{torch::zeros_like(go), torch::zeros({N, F}, opts)};
  if (want_filter) {
    g.filter = torch::empty({P, F}, opts);
    g.slope = torch::empty({P, F}, opts);
  }
  if (P == 0) return g;
  const T* gop = go.data_ptr<T>();
  const T* ggd = gg_d.data_ptr<T>();
  const T* ggx = gg_x.data_ptr<T>();
  const T* fil = filter.data_ptr<T>();
  const T* slo = slope.data_ptr<T>();
  T* gfp = want_filter ? g.filter.data_ptr<T>() : nullptr;
  T* gsp = want_filter ? g.slope.data_ptr<T>() : nullptr;
  mlpot::PerThreadSum go_sum(g.go), x_sum(g.x);

  at::parallel_for(0, v.blocks(), 1, [&](int64_t first, int64_t last) {
    T* ggo = go_sum.mine().data_ptr<T>();
    T* gx = x_sum.mine().data_ptr<T>();
    std::vector<T> fc(v.block), dfc(v.block);
    std::vector<T> scratch(want_filter ? 0 : 2 * F);  // dL/df, dL/df' when not kept
    for (int64_t b = first; b < last; ++b) {
      const int64_t p0 = b * v.block, n = std::min(v.block, P - p0);
      radial<T>(in, v, p0, n, nullptr, nullptr, fc.data(), dfc.data());
      for (int64_t q = 0; q < n; ++q) {
        const int64_t p = p0 + q, i = v.ii[p], j = v.jj[p];
        const T c = fc[q], cp = dfc[q], gd = ggd[p];
        T* gfq = want_filter ? gfp + p * F : scratch.data();      // dL/df
        T* gsq = want_filter ? gsp + p * F : scratch.data() + F;  // dL/df'
        if (c == T(0) && cp == T(0)) {
          std::fill(gfq, gfq + F, T(0));
          std::fill(gsq, gsq + F, T(0));
          continue;
        }
        const T* fq = fil + p * F;
        const T* sq = slo + p * F;
        const T* goi = gop + i * F;
        const T* xj = v.x + j * F;
        const T* ggxj = ggx + j * F;
        T* ggoi = ggo + i * F;
        T* gxj = gx + j * F;
        if (p < in.n_two_way) {
          const T* goj = gop + j * F;
          const T* xi = v.x + i * F;
          const T* ggxi = ggx + i * F;
          T* ggoj = ggo + j * F;
          T* gxi = gx + i * F;
#pragma omp simd
          for (int64_t f = 0; f < F; ++f) {
            const T W = fq[f] * c, Wp = sq[f] * c + fq[f] * cp;
            const T gG = gd * Wp;  // dL/dG
            const T G = goi[f] * xj[f] + goj[f] * xi[f];
            ggoi[f] += gG * xj[f] + ggxj[f] * W;
            ggoj[f] += gG * xi[f] + ggxi[f] * W;
            gxj[f] += gG * goi[f];
            gxi[f] += gG * goj[f];
            const T gW = ggxj[f] * goi[f] + ggxi[f] * goj[f], gWp = gd * G;
            gfq[f] = gW * c + gWp * cp;
            gsq[f] = gWp * c;
          }
        } else {
#pragma omp simd
          for (int64_t f = 0; f < F; ++f) {
            const T W = fq[f] * c, Wp = sq[f] * c + fq[f] * cp;
            const T gG = gd * Wp;
            const T G = goi[f] * xj[f];
            ggoi[f] += gG * xj[f] + ggxj[f] * W;
            gxj[f] += gG * goi[f];
            const T gW = ggxj[f] * goi[f], gWp = gd * G;
            gfq[f] = gW * c + gWp * cp;
            gsq[f] = gWp * c;
          }
        }
      }
    }
  });
  go_sum.sum();
  x_sum.sum();
  return g;
}

template <typename T>
WeightGradients filter_backward_t(const Inputs& in, const Tensor& grad_filter, const Tensor& grad_slope) {
  const View<T> v(in);
  const int64_t P = v.P, F = v.F, H = v.H, K = v.K;
  auto opts = in.x.options();
  WeightGradients g{torch::zeros_like(in.w1), torch::zeros_like(in.b1), torch::zeros_like(in.w2),
                    torch::zeros_like(in.b2)};
  if (P == 0 || (!grad_filter.defined() && !grad_slope.defined())) return g;
  const Tensor gF = grad_filter.defined() ? grad_filter.contiguous() : torch::zeros({P, F}, opts);
  const bool stacked = grad_slope.defined();  // rows [0, n): f, rows [n, 2n): f'
  const Tensor gS = stacked ? grad_slope.contiguous() : Tensor();
  const int64_t m = stacked ? 2 : 1;
  const Tensor w1t = in.w1.t();
  std::vector<mlpot::PerThreadSum> sums;
  for (const Tensor& t : {g.w1, g.b1, g.w2, g.b2}) sums.emplace_back(t);

  at::parallel_for(0, v.blocks(), 1, [&](int64_t first, int64_t last) {
    std::vector<Tensor> mine;
    for (auto& s : sums) mine.push_back(s.mine());
    Tensor radial2 = workspace(m * v.block, K, opts);  // r | r'
    Tensor hidden2 = workspace(m * v.block, H, opts);  // z → a = softplus(z) | u = w1 r'
    Tensor act2 = workspace(m * v.block, H, opts);     // a | s = σ(z) ⊙ u
    Tensor sig = workspace(v.block, H, opts);
    Tensor grad_f2 = workspace(m * v.block, F, opts);  // dL/df | dL/df'
    Tensor grad_h2 = workspace(m * v.block, H, opts);  // dL/da | dL/ds, then dL/dz | dL/du
    std::vector<T> fc(v.block);
    for (int64_t b = first; b < last; ++b) {
      const int64_t p0 = b * v.block, n = std::min(v.block, P - p0), rows = m * n;
      radial<T>(in, v, p0, n, radial2.data_ptr<T>(), stacked ? radial2.data_ptr<T>() + n * K : nullptr, fc.data(),
                nullptr);
      Tensor r2 = radial2.narrow(0, 0, rows), h2 = hidden2.narrow(0, 0, rows), a2 = act2.narrow(0, 0, rows);
      Tensor gf2 = grad_f2.narrow(0, 0, rows), gh2 = grad_h2.narrow(0, 0, rows);
      gf2.narrow(0, 0, n).copy_(gF.narrow(0, p0, n));
      if (stacked) gf2.narrow(0, n, n).copy_(gS.narrow(0, p0, n));
      at::mm_out(h2, r2, w1t);
      T* zp = h2.data_ptr<T>();
      T* ap = a2.data_ptr<T>();
      T* sgp = sig.data_ptr<T>();
      mlpot::softplus_and_sigmoid(zp, in.b1.data_ptr<T>(), n, H, ap, sgp);
      const T* up = zp + n * H;
      if (stacked)
        for (int64_t e = 0; e < n * H; ++e) ap[n * H + e] = sgp[e] * up[e];
      add_rows(gf2.data_ptr<T>(), n, F, mine[3].data_ptr<T>());
      mine[2].addmm_(gf2.t(), a2);     // Σ dL/df ⊗ a + dL/df' ⊗ s
      at::mm_out(gh2, gf2, in.w2);     // dL/da | dL/ds
      T* gap = gh2.data_ptr<T>();
      if (stacked) {
        T* gup = gap + n * H;
#pragma omp simd
        for (int64_t e = 0; e < n * H; ++e) {
          const T sigma = sgp[e], gsv = gup[e];
          gap[e] = gap[e] * sigma + gsv * up[e] * sigma * (T(1) - sigma);  // dL/dz
          gup[e] = gsv * sigma;                                             // dL/du
        }
      } else {
#pragma omp simd
        for (int64_t e = 0; e < n * H; ++e) gap[e] *= sgp[e];
      }
      add_rows(gap, n, H, mine[1].data_ptr<T>());
      mine[0].addmm_(gh2.t(), r2);     // Σ dL/dz ⊗ r + dL/du ⊗ r'
    }
  });
  for (auto& s : sums) s.sum();
  g.w2.sub_(LN2 * g.b2.unsqueeze(1));  // a above is ssp + ln2
  return g;
}

template <typename T>
std::pair<Tensor, Tensor> filters_t(const Inputs& in, const Tensor& w1, const Tensor& b1, const Tensor& w2,
                                    const Tensor& b2) {
  const View<T> v(in);
  const int64_t P = v.P, K = v.K, NT = w1.size(0), H = w1.size(1), F = w2.size(1), TH = NT * H;
  auto opts = in.d.options();
  Tensor filter = torch::empty({NT, P, F}, opts), slope = torch::empty({NT, P, F}, opts);
  if (P == 0 || NT == 0) return {filter, slope};
  const Tensor w1all_t = w1.reshape({TH, K}).t();            // [K, T H]
  const Tensor b1all = b1.reshape({TH}).contiguous();
  const std::vector<T> b2s = shifted_bias(w2.data_ptr<T>(), b2.data_ptr<T>(), NT * F, H);  // per network
  std::vector<Tensor> w2t(NT), filter_t(NT), slope_t(NT);     // per network: w2ᵀ [H, F], its f and f' [P, F]
  for (int64_t t = 0; t < NT; ++t) {
    w2t[t] = w2[t].t();
    filter_t[t] = filter[t];
    slope_t[t] = slope[t];
  }
  at::parallel_for(0, v.blocks(), 1, [&](int64_t first, int64_t last) {
    Tensor radial2 = workspace(2 * v.block, K, in.d.options());   // r | r'
    Tensor hidden2 = workspace(2 * v.block, TH, in.d.options());  // z → softplus(z) | u = w1 r' → σ(z) ⊙ u
    Tensor sig = workspace(v.block, TH, in.d.options());
    std::vector<T> fc(v.block);
    for (int64_t b = first; b < last; ++b) {
      const int64_t p0 = b * v.block, n = std::min(v.block, P - p0);
      radial<T>(in, v, p0, n, radial2.data_ptr<T>(), radial2.data_ptr<T>() + n * K, fc.data(), nullptr);
      Tensor h2 = hidden2.narrow(0, 0, 2 * n);
      at::mm_out(h2, radial2.narrow(0, 0, 2 * n), w1all_t);
      T* hp = h2.data_ptr<T>();
      T* sp = sig.data_ptr<T>();
      mlpot::softplus_and_sigmoid(hp, b1all.data_ptr<T>(), n, TH, hp, sp);
      T* up = hp + n * TH;
#pragma omp simd
      for (int64_t e = 0; e < n * TH; ++e) up[e] *= sp[e];
      for (int64_t t = 0; t < NT; ++t) {
        Tensor f_rows = filter_t[t].narrow(0, p0, n), s_rows = slope_t[t].narrow(0, p0, n);
        at::mm_out(f_rows, h2.narrow(0, 0, n).narrow(1, t * H, H), w2t[t]);
        at::mm_out(s_rows, h2.narrow(0, n, n).narrow(1, t * H, H), w2t[t]);
        T* fp = f_rows.data_ptr<T>();
        const T* bias = b2s.data() + t * F;
        for (int64_t q = 0; q < n; ++q)
#pragma omp simd
          for (int64_t f = 0; f < F; ++f) fp[q * F + f] += bias[f];
      }
    }
  });
  return {filter, slope};
}

}  // namespace

Forward forward(const Inputs& in, bool keep) {
  Forward r;
  AT_DISPATCH_FLOATING_TYPES(in.x.scalar_type(), "mlpot_cfconv_forward", [&] { r = forward_t<scalar_t>(in, keep); });
  return r;
}

Tensor messages(const Inputs& in, const Tensor& filter) {
  Tensor out;
  AT_DISPATCH_FLOATING_TYPES(in.x.scalar_type(), "mlpot_cfconv_messages", [&] { out = messages_t<scalar_t>(in, filter); });
  return out;
}

Gradients gradient(const Inputs& in, const Tensor& filter, const Tensor& slope, const Tensor& go, bool want_d,
                   bool want_x, bool want_filter) {
  Gradients g;
  AT_DISPATCH_FLOATING_TYPES(in.x.scalar_type(), "mlpot_cfconv_gradient", [&] {
    g = gradient_t<scalar_t>(in, filter, slope, go, want_d, want_x, want_filter);
  });
  return g;
}

SecondGradients second_gradient(const Inputs& in, const Tensor& filter, const Tensor& slope, const Tensor& go,
                                const Tensor& gg_d, const Tensor& gg_x, bool want_filter) {
  SecondGradients g;
  AT_DISPATCH_FLOATING_TYPES(in.x.scalar_type(), "mlpot_cfconv_second_gradient", [&] {
    g = second_t<scalar_t>(in, filter, slope, go, gg_d, gg_x, want_filter);
  });
  return g;
}

WeightGradients filter_backward(const Inputs& in, const Tensor& grad_filter, const Tensor& grad_slope) {
  WeightGradients g;
  AT_DISPATCH_FLOATING_TYPES(in.x.scalar_type(), "mlpot_cfconv_filter_backward", [&] {
    g = filter_backward_t<scalar_t>(in, grad_filter, grad_slope);
  });
  return g;
}

std::pair<Tensor, Tensor> filters(const Inputs& in, const Tensor& w1, const Tensor& b1, const Tensor& w2,
                                  const Tensor& b2) {
  std::pair<Tensor, Tensor> r;
  AT_DISPATCH_FLOATING_TYPES(in.d.scalar_type(), "mlpot_cfconv_filters",
                             [&] { r = filters_t<scalar_t>(in, w1, b1, w2, b2); });
  return r;
}

}  // namespace mlpot::cfconv
