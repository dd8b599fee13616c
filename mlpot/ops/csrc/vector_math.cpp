#include "vector_math.h"

#include <cmath>
#include <limits>

namespace {
// log(1 + e) for e in [0, 1]. float: 2 atanh(s), s = e / (2 + e) <= 1/3, by its series to s^15
// (truncation < 1e-9, below float rounding), cheaper than a vector log; double: std::log.
inline float log1p_unit(float e) {
  const float s = e / (2.0f + e), s2 = s * s;
  const float series = 1.0f + s2 * (1.0f / 3 + s2 * (1.0f / 5 + s2 * (1.0f / 7 + s2 * (1.0f / 9 + s2 * (1.0f / 11 + s2 * (1.0f / 13 + s2 * (1.0f / 15)))))));
  return 2.0f * s * series;
}
inline double log1p_unit(double e) { return std::log(1.0 + e); }  // 1 + e in (1, 2]: accurate

template <typename T>
inline void kernel(const T* x, const T* bias, int64_t n, int64_t m, T* sp, T* sig) {
  for (int64_t q = 0; q < n; ++q) {
    const T* xq = x + q * m;
    T* spq = sp + q * m;
    T* sigq = sig + q * m;
#pragma omp simd
    for (int64_t k = 0; k < m; ++k) {
      const T v = xq[k] + bias[k];
      const T e = std::exp(-std::fabs(v));
      const T inv = T(1) / (T(1) + e);
      const bool above = v > T(20);
      sigq[k] = above ? T(1) : (v >= T(0) ? inv : e * inv);
      spq[k] = above ? v : std::fmax(v, T(0)) + log1p_unit(e);
    }
  }
}

template <typename T>
inline void gaussian_kernel(const T* d, int64_t n, const T* centers, int64_t K, double coeff, T* rbf) {
  const T c = static_cast<T>(coeff);
  // exponents below this give values under the smallest normal number: clamping them keeps exp
  // off its slow underflow path and changes each value by less than that number
  const T lowest = std::log(std::numeric_limits<T>::min());
  for (int64_t q = 0; q < n; ++q) {
    const T dq = d[q];
    T* r = rbf + q * K;
#pragma omp simd
    for (int64_t k = 0; k < K; ++k) {
      const T u = dq - centers[k];
      r[k] = std::exp(std::fmax(c * u * u, lowest));
    }
  }
}
}  // namespace

namespace mlpot {
void gaussians(const float* d, int64_t n, const float* centers, int64_t K, double coeff, float* rbf) {
  gaussian_kernel(d, n, centers, K, coeff, rbf);
}
void gaussians(const double* d, int64_t n, const double* centers, int64_t K, double coeff, double* rbf) {
  gaussian_kernel(d, n, centers, K, coeff, rbf);
}
void softplus_and_sigmoid(const float* x, const float* bias, int64_t n, int64_t m, float* sp, float* sig) {
  kernel(x, bias, n, m, sp, sig);
}
void softplus_and_sigmoid(const double* x, const double* bias, int64_t n, int64_t m, double* sp, double* sig) {
  kernel(x, bias, n, m, sp, sig);
}
}  // namespace mlpot
