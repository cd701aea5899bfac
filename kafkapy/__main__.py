"""`python -m kafkapy` runs the same CLI as the `kafkapy` command."""

from kafkapy.cli import main

raise SystemExit(main())
