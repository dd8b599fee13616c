"""`mlpot demo`: placeholder until the demo pipeline lands (issue: export and ASE)."""


def add_arguments(parser):
    parser.add_argument("--quick", action="store_true", help="a small, fast run (for tests)")
    parser.add_argument("--out", default="demo_output", help="output folder")


def run(args) -> int:
    print("mlpot demo: not built yet. The demo (GFN2-xTB reference data -> SchNet -> MD and "
          "IR spectrum) arrives with the export/ASE work; `make test` runs the test suite.")
    return 0
