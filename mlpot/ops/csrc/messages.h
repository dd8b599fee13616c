// Shared by the convolution kernels: the composite (ATen, differentiable) message scatter.
#pragma once
#include <ATen/Parallel.h>
#include <torch/torch.h>

#include <string>
#include <utility>
#include <vector>

namespace mlpot {
// out [n_out, F]: out[idx_i[p]] += x[idx_j[p]] * w[p] for every edge, and out[idx_j[p]] +=
// x[idx_i[p]] * w[p] for p < n_two_way. x [N, F], w [P, F], idx_i/idx_j [P].
inline torch::Tensor scatter_messages(const torch::Tensor& x, const torch::Tensor& w, const torch::Tensor& idx_i,
                                      const torch::Tensor& idx_j, int64_t n_two_way, int64_t n_out) {
  auto out = torch::zeros({n_out, x.size(1)}, x.options());
  out = out.index_add(0, idx_i, x.index_select(0, idx_j) * w);
  if (n_two_way > 0) {
    auto ii = idx_i.narrow(0, 0, n_two_way), jj = idx_j.narrow(0, 0, n_two_way);
    out = out.index_add(0, jj, x.index_select(0, ii) * w.narrow(0, 0, n_two_way));
  }
  return out;
}

// The checks every kernel makes on its edge list: int64 [P] indices, idx_i < n_out, idx_j <
// x_rows, idx_j < n_out on the first n_two_way edges.
inline void check_edges(const torch::Tensor& idx_i, const torch::Tensor& idx_j, int64_t n_edges, int64_t x_rows,
                        int64_t n_two_way, int64_t n_out, const char* op) {
  const std::string name(op);
  TORCH_CHECK(idx_i.dim() == 1 && idx_j.dim() == 1 && idx_i.size(0) == n_edges && idx_j.size(0) == n_edges,
              name, ": d, idx_i, idx_j must be [P] of one length");
  TORCH_CHECK(idx_i.scalar_type() == torch::kLong && idx_j.scalar_type() == torch::kLong, name, ": indices must be int64");
  TORCH_CHECK(n_two_way >= 0 && n_two_way <= n_edges, name, ": n_two_way out of range");
  TORCH_CHECK(n_out >= 0, name, ": n_out must be >= 0");
  if (n_edges == 0) return;
  const auto [min_i, max_i] = torch::aminmax(idx_i);
  const auto [min_j, max_j] = torch::aminmax(idx_j);
  TORCH_CHECK(min_i.item<int64_t>() >= 0 && min_j.item<int64_t>() >= 0, name, ": negative index");
  TORCH_CHECK(max_i.item<int64_t>() < n_out, name, ": idx_i must be < n_out");
  TORCH_CHECK(max_j.item<int64_t>() < x_rows, name, ": idx_j must be < x.size(0)");
  if (n_two_way > 0 && max_j.item<int64_t>() >= n_out)
    TORCH_CHECK(idx_j.narrow(0, 0, n_two_way).max().item<int64_t>() < n_out, name,
                ": two-way edges need idx_j < n_out");
}

// An output [rows, F] accumulated by the threads of one at::parallel_for: thread 0 adds into
// the output itself, every other thread into its own zeroed copy; sum() adds the copies in.
class PerThreadSum {
 public:
  explicit PerThreadSum(torch::Tensor out) : out_(std::move(out)), copies_(at::get_num_threads()) {}
  // The tensor the calling thread accumulates into (call once per thread, inside the loop body).
  torch::Tensor mine() {
    const int tid = at::get_thread_num();
    if (tid == 0) return out_;
    copies_[tid] = torch::zeros_like(out_);
    return copies_[tid];
  }
  void sum() {
    for (size_t t = 1; t < copies_.size(); ++t)
      if (copies_[t].defined()) out_.add_(copies_[t]);
  }

 private:
  torch::Tensor out_;
  std::vector<torch::Tensor> copies_;
};
}  // namespace mlpot
