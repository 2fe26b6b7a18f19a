import sys

from perjax.cli import main

sys.exit(main())
