/* Registers pair_style mlpot with LAMMPS when the plugin is loaded
   (`plugin load mlpotplugin.so`, or automatically from a folder in LAMMPS_PLUGIN_PATH). */
#include "lammpsplugin.h"
#include "pair_mlpot.h"

#ifndef MLPOT_LAMMPS_VERSION
#error "define MLPOT_LAMMPS_VERSION, the LAMMPS version string (e.g. \"22 Jul 2025\"); CMakeLists.txt does"
#endif

using namespace LAMMPS_NS;

static Pair *mlpot_creator(LAMMPS *lmp) {
  return new PairMLPot(lmp);
}

extern "C" __attribute__((visibility("default"))) void lammpsplugin_init(void *lmp, void *handle, void *regfunc) {
  lammpsplugin_t plugin;
  auto register_plugin = (lammpsplugin_regfunc) regfunc;
  plugin.version = MLPOT_LAMMPS_VERSION;
  plugin.style = "pair";
  plugin.name = "mlpot";
  plugin.info = "mlpot machine-learned potential (TorchScript export, message passing across MPI ranks)";
  plugin.author = "mlpot developers";
  plugin.creator.v1 = (lammpsplugin_factory1 *) &mlpot_creator;
  plugin.handle = handle;
  (*register_plugin)(&plugin, lmp);
}
