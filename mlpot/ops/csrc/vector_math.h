// Element-wise transcendental loops of the fused kernels, compiled with -ffast-math so that exp
// and log vectorise through glibc's libmvec (see build.py); no infinities or NaNs arise here.
#pragma once
#include <cstdint>

namespace mlpot {
// With z = x[q m + k] + bias[k] (rows q < n of width m): sp = softplus(z) (z itself above 20, as
// torch.nn.functional.softplus), sig = its derivative, the logistic sigmoid (exactly 1 above 20).
// x, sp, sig [n, m], bias [m]; sp may alias x.
void softplus_and_sigmoid(const float* x, const float* bias, int64_t n, int64_t m, float* sp, float* sig);
void softplus_and_sigmoid(const double* x, const double* bias, int64_t n, int64_t m, double* sp, double* sig);

// rbf[q K + k] = exp(coeff (d[q] − centers[k])²) for q < n, k < K.
void gaussians(const float* d, int64_t n, const float* centers, int64_t K, double coeff, float* rbf);
void gaussians(const double* d, int64_t n, const double* centers, int64_t K, double coeff, double* rbf);
}  // namespace mlpot
