from mlpot.cli import main

raise SystemExit(main())
