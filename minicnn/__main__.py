"""``python -m minicnn`` runs the command line."""
import sys

from minicnn.cli import main

sys.exit(main())
