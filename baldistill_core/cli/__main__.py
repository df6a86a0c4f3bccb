import sys

from baldistill_core.cli import main

if __name__ == "__main__":  # guarded: a spawned worker process (the map's UMAP transform) imports the main module
    sys.exit(main())
