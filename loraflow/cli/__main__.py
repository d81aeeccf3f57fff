"""`python -m loraflow.cli` runs the `loraflow` command."""
from loraflow.cli import entry

entry()
