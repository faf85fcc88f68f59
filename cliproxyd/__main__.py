"""`python -m cliproxyd` runs the command line."""

from cliproxyd.cli import main

raise SystemExit(main())
