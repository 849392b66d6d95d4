"""`python -m simulator` entry point: the same as the `simulator` command."""

from simulator.cli import main

raise SystemExit(main())
