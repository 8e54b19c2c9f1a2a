"""``python -m bench``: the negbench command line."""
import sys

from bench.cli import main

sys.exit(main())
