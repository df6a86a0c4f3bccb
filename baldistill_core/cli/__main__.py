import sys

from baldistill_core.cli import main

sys.exit(main())
