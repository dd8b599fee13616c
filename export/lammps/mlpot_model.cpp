/* Loading an mlpot export and calling its forward from C++ (the only file that sees libtorch). */
#include "mlpot_model.h"

#include "json.h"  // LAMMPS' bundled nlohmann::json (header only)

#include <torch/csrc/jit/runtime/graph_executor.h>
#include <torch/script.h>

#include <stdexcept>

namespace mlpot {

static const int SUPPORTED_FORMAT_VERSION = 1;
static const char *METADATA_NAME = "mlpot.json";

struct Model::Impl {
  torch::jit::Module module;
  torch::Dtype dtype = torch::kFloat64;
};

static std::string first_line(const std::string &text) {
  return text.substr(0, text.find('\n'));
}

static ModelInfo parse_metadata(const std::string &path, const std::string &text) {
  using LAMMPS_NS::json;
  const std::string not_export = path + " is not an mlpot export";
  if (text.empty())
    throw std::runtime_error(not_export + " (no mlpot.json inside): give pair_coeff a file written by `mlpot export`");
  json meta;
  try {
    meta = json::parse(text);
  } catch (const std::exception &e) {
    throw std::runtime_error(not_export + " (its mlpot.json is not valid JSON): export the model again");
  }
  ModelInfo info;
  try {
    info.format_version = meta.at("format_version").get<int>();
    if (info.format_version > SUPPORTED_FORMAT_VERSION)
      throw std::runtime_error(path + " has model format version " + std::to_string(info.format_version) +
                               " but this plugin reads up to " + std::to_string(SUPPORTED_FORMAT_VERSION) +
                               ": update mlpot and rebuild the plugin with `mlpot lammps build`");
    info.mlpot_version = meta.value("mlpot_version", std::string("unknown"));
    info.cutoff = meta.at("cutoff").get<double>();
    info.n_interactions = meta.at("n_interactions").get<int>();
    info.species = meta.at("species").get<std::vector<int64_t>>();
    info.symbols = meta.at("species_symbols").get<std::vector<std::string>>();
    info.dtype = meta.at("dtype").get<std::string>();
  } catch (const json::exception &e) {
    throw std::runtime_error(not_export + " (mlpot.json: " + first_line(e.what()) +
                             "): export the model again with `mlpot export`");
  }
  if (info.species.size() != info.symbols.size() || info.species.empty())
    throw std::runtime_error(not_export + " (mlpot.json: species and species_symbols differ in length)");
  if (!(info.cutoff > 0.0) || info.n_interactions < 0)
    throw std::runtime_error(not_export + " (mlpot.json: cutoff must be > 0 and n_interactions >= 0)");
  if (info.dtype != "float32" && info.dtype != "float64")
    throw std::runtime_error(not_export + " (mlpot.json: dtype '" + info.dtype + "' is neither float32 nor float64)");
  return info;
}

Model::Model(const std::string &path) : impl_(std::make_unique<Impl>()) {
  // The profiling executor re-specialises the graph for every new atom or edge count, which
  // changes at every neighbour-list rebuild in MD (measured: ~7x slower steps, seconds-long
  // stalls). Plain execution of the scripted graph is steady. Process-wide setting.
  torch::jit::setGraphExecutorOptimize(false);
  torch::jit::ExtraFilesMap extra{{METADATA_NAME, ""}};
  try {
    impl_->module = torch::jit::load(path, torch::kCPU, extra);
  } catch (const c10::Error &e) {
    throw std::runtime_error("cannot read " + path + " as a TorchScript model (" +
                             first_line(e.what_without_backtrace()) + "): give pair_coeff a file written by `mlpot export`");
  }
  info_ = parse_metadata(path, extra[METADATA_NAME]);
  impl_->dtype = info_.dtype == "float32" ? torch::kFloat32 : torch::kFloat64;
  impl_->module.eval();
}

Model::~Model() = default;

void Model::evaluate(const double *positions, const int64_t *numbers, int64_t n,
                     const std::vector<int64_t> &edge_i, const std::vector<int64_t> &edge_j,
                     const double *cell, int64_t n_local, bool want_virial, bool want_energies,
                     Result &out) {
  torch::AutoGradMode grad_enabled(true);  // the model takes forces and virial by autograd
  const auto f64 = torch::TensorOptions().dtype(torch::kFloat64);
  const auto i64 = torch::TensorOptions().dtype(torch::kInt64);
  const int64_t n_edges = static_cast<int64_t>(edge_i.size());

  torch::Tensor pos = torch::from_blob(const_cast<double *>(positions), {n, 3}, f64).to(impl_->dtype).clone();
  torch::Tensor z = torch::from_blob(const_cast<int64_t *>(numbers), {n}, i64).clone();
  torch::Tensor edges = torch::empty({2, n_edges}, i64);
  if (n_edges > 0) {
    std::copy(edge_i.begin(), edge_i.end(), edges.data_ptr<int64_t>());
    std::copy(edge_j.begin(), edge_j.end(), edges.data_ptr<int64_t>() + n_edges);
  }
  torch::Tensor shifts = torch::zeros({n_edges, 3}, torch::TensorOptions().dtype(impl_->dtype));
  torch::Tensor box = torch::from_blob(const_cast<double *>(cell), {3, 3}, f64).to(impl_->dtype).clone();

  std::vector<torch::jit::IValue> inputs{pos, z, edges, shifts, box, n_local, want_virial};
  auto result = impl_->module.forward(inputs).toGenericDict();

  out.energy = result.at("energy").toTensor().to(torch::kFloat64).sum().item<double>();
  torch::Tensor forces = result.at("forces").toTensor().to(torch::kFloat64).contiguous();
  out.forces.assign(forces.data_ptr<double>(), forces.data_ptr<double>() + n * 3);
  if (want_energies) {
    torch::Tensor energies = result.at("energies").toTensor().to(torch::kFloat64).contiguous();
    out.energies.assign(energies.data_ptr<double>(), energies.data_ptr<double>() + n);
  }
  if (want_virial) {
    torch::Tensor virial = result.at("virial").toTensor().to(torch::kFloat64).contiguous();
    std::copy(virial.data_ptr<double>(), virial.data_ptr<double>() + 9, out.virial);
  }
}

}  // namespace mlpot
