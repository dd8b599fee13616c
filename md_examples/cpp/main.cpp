// Energy and forces of a molecule from an mlpot model file, in plain libtorch (README.md here).
//   build/mlpot_forces model.pt [LIBRARY] < molecule.txt    (one atom a line: Z x y z, in Å)
// LIBRARY: `mlpot ops --path`, which registers torch.ops.mlpot.* when loaded (default: the one
// given to CMake as MLPOT_OPS_LIBRARY; "-": none, then only `--kernels reference` files load).
#include <dlfcn.h>
#include <torch/script.h>
#include <iostream>
#ifndef MLPOT_OPS_LIBRARY
#define MLPOT_OPS_LIBRARY "-"
#endif

int main(int argc, char** argv) try {
  if (argc < 2) throw std::runtime_error("usage: mlpot_forces model.pt [LIBRARY | -] < molecule.txt");
  std::string library = argc > 2 ? argv[2] : MLPOT_OPS_LIBRARY;
  if (library != "-" && !dlopen(library.c_str(), RTLD_NOW | RTLD_GLOBAL)) throw std::runtime_error(dlerror());
  torch::jit::ExtraFilesMap extra{{"mlpot.json", ""}};        // the file's metadata (JSON)
  torch::jit::Module model = torch::jit::load(argv[1], torch::kCPU, extra);
  auto meta = [&](std::string key) { auto& j = extra["mlpot.json"]; return j.substr(j.find('"' + key + "\": ") + key.size() + 4); };
  double cutoff = std::stod(meta("cutoff"));
  auto dtype = meta("dtype").starts_with("\"float64\"") ? torch::kFloat64 : torch::kFloat32;   // the model's dtype
  std::vector<int64_t> z; std::vector<double> xyz; int64_t zi; double x, y, w;
  while (std::cin >> zi >> x >> y >> w) { z.push_back(zi); xyz.insert(xyz.end(), {x, y, w}); }
  int64_t n = z.size();
  auto positions = torch::tensor(xyz, torch::kFloat64).reshape({n, 3});
  auto close = torch::cdist(positions, positions) < cutoff;   // full neighbour list, brute force: i->j and j->i
  auto edges = (close & ~torch::eye(n, torch::kBool)).nonzero().t().contiguous();
  auto out = model.forward({positions.to(dtype), torch::tensor(z), edges, torch::zeros({edges.size(1), 3}, dtype),
                            torch::zeros({3, 3}, dtype), n, /*compute_virial=*/false}).toGenericDict();
  auto forces = out.at("forces").toTensor().to(torch::kFloat64);
  std::cout.precision(17);
  std::cout << "energy " << out.at("energy").toTensor().item<double>() << " eV\nforces eV/A\n";
  for (int64_t i = 0; i < n; ++i) std::cout << forces[i][0].item<double>() << " " << forces[i][1].item<double>()
                                            << " " << forces[i][2].item<double>() << "\n";
} catch (const std::exception& error) {
  std::cerr << "mlpot_forces: " << error.what() << "\n";
  return 1;
}
