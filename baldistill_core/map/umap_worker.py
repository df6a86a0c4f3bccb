"""A worker process of ``clusters.umap_layout``: places its share of a large pool's points with the
fitted reducer. Run as ``python -m baldistill_core.map.umap_worker FOLDER W WORKERS PARTS``: it reads
``FOLDER/reducer.pkl`` and ``FOLDER/in{i}.npy`` for the parts ``i = W, W + WORKERS, ...`` and writes
``FOLDER/out{i}.npy`` (float32 x, y)."""

from __future__ import annotations

import pickle
import sys
import warnings
from pathlib import Path

import numpy as np


def main(folder: Path, w: int, workers: int, parts: int) -> None:
    from baldistill_core.map.clusters import import_umap

    import_umap()   # numba's on-disk cache on, as in the parent: no compiling again
    reducer = pickle.loads((folder / "reducer.pkl").read_bytes())
    for i in range(w, parts, workers):
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", UserWarning)
            xy = reducer.transform(np.load(folder / f"in{i}.npy"))
        np.save(folder / f"out{i}.npy", np.asarray(xy, dtype=np.float32))


if __name__ == "__main__":
    main(Path(sys.argv[1]), *(int(x) for x in sys.argv[2:5]))
