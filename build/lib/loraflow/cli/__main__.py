"""`python -m loraflow.cli` runs the `loraflow` command."""
import sys

from loraflow.cli import main

sys.exit(main())
