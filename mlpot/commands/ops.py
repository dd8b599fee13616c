"""`mlpot ops [--path | --cmake] [--force]`: mlpot's C++ operators (torch.ops.mlpot.*) as one
shared library for C++ engines that load model files with `kernels` fused or tabulated: loading
it (dlopen, or torch.ops.load_library) registers the operators. Compiled if needed (cached).
md_examples/cpp is a C++ example; docs/exported_model.md ("In C++")."""
import sys


def add_arguments(parser):
    what = parser.add_mutually_exclusive_group()
    what.add_argument("--path", action="store_true",
                      help="print only the library's absolute path (for dlopen)")
    what.add_argument("--cmake", action="store_true",
                      help="print -DCMAKE_PREFIX_PATH=<torch's libtorch> -DMLPOT_OPS_LIBRARY=<library> for a "
                           "CMake build against the same libtorch (md_examples/cpp)")
    parser.add_argument("--force", action="store_true", help="compile again even when cached")


def operator_names(library) -> list:
    """Names of the operators the library registers (loads it into this process)."""
    import torch  # lazy: cli.py imports every command module to build `mlpot --help`, which stays free of torch

    torch.ops.load_library(str(library))
    return sorted({s.name for s in torch._C._jit_get_all_schemas() if s.name.startswith("mlpot::")})


def run(args) -> int:
    # lazy: cli.py imports every command module to build `mlpot --help`, which stays free of torch
    import torch.utils

    from mlpot.ops.build import build_library

    try:
        library = build_library(force=args.force).resolve()
    except (RuntimeError, OSError) as error:
        print(f"mlpot ops: {error}", file=sys.stderr)
        return 1
    prefix = torch.utils.cmake_prefix_path
    if args.path:
        print(library)
    elif args.cmake:
        print(f"-DCMAKE_PREFIX_PATH={prefix} -DMLPOT_OPS_LIBRARY={library}")
    else:
        print(f"library     {library}\n"
              f"operators   {', '.join(operator_names(library))}\n"
              f"libtorch    {prefix} (torch {torch.__version__}, C++20, "
              f"_GLIBCXX_USE_CXX11_ABI={int(torch._C._GLIBCXX_USE_CXX11_ABI)}): link the same one\n"
              "load it with dlopen(PATH, RTLD_NOW | RTLD_GLOBAL) before torch::jit::load; "
              "example: md_examples/cpp (docs/exported_model.md)")
    return 0
