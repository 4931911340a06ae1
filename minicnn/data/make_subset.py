"""Regenerate the Fashion-MNIST subset that ships in ``minicnn/data/bundled/``.

    python -m minicnn.data.make_subset [--source /usr/share/datasets/fashion-mnist] [--out FILE]

Selection (deterministic, no random numbers): for each class c = 0..9, the first
``TRAIN_PER_CLASS`` = 600 training images with label c and the first ``TEST_PER_CLASS`` = 100 test
images with label c, in the order of the official files; the chosen images keep that order
(so the classes are interleaved as in the original). That makes 6,000 training and 1,000 test
images, class-balanced, in about 3.1 MB (``np.savez_compressed`` of the uint8 arrays).

The file holds ``train_images`` uint8 (6000, 28, 28), ``train_labels`` uint8 (6000,),
``train_indices`` int32 (positions in the official training file), and the same three
``test_*`` arrays. The source files are checked against the SHA-256 of the original
(decompressed) Fashion-MNIST files before anything is written.
"""
import argparse
import hashlib
import io
import os
import sys
from pathlib import Path

import numpy as np

from minicnn.data.idx import _read_bytes, read_idx
from minicnn.data.mnist import BUNDLED_SUBSET, SPLIT_FILES, FashionMNIST, _find_file

TRAIN_PER_CLASS = 600
TEST_PER_CLASS = 100
DEFAULT_SOURCE = Path("/usr/share/datasets/fashion-mnist")


def select(labels, per_class, num_classes=10):
    """Indices of the first ``per_class`` samples of every class, in file order."""
    chosen = []
    for c in range(num_classes):
        where = np.flatnonzero(labels == c)[:per_class]
        if len(where) < per_class:
            raise ValueError(f"class {c} has only {len(where)} samples, {per_class} wanted")
        chosen.append(where)
    return np.sort(np.concatenate(chosen))


def build(source=DEFAULT_SOURCE, verify=True):
    """The subset arrays, as a dict of NumPy arrays ready for ``np.savez_compressed``."""
    source = Path(source)
    arrays = {}
    for train, per_class, split in ((True, TRAIN_PER_CLASS, "train"),
                                    (False, TEST_PER_CLASS, "test")):
        paths = [_find_file(source, stem) for stem in SPLIT_FILES[train]]
        if None in paths:
            raise FileNotFoundError(f"{source} lacks the Fashion-MNIST {split} files "
                                    f"{SPLIT_FILES[train]} (.gz or not)")
        if verify:
            for stem, path in zip(SPLIT_FILES[train], paths):
                digest = hashlib.sha256(_read_bytes(path)).hexdigest()
                if digest != FashionMNIST.raw_sha256[stem]:
                    raise ValueError(f"{path}: its contents are not the original Fashion-MNIST "
                                     f"file (SHA-256 {digest})")
        images, labels = read_idx(paths[0]), read_idx(paths[1])
        idx = select(labels, per_class)
        arrays[f"{split}_images"] = images[idx]
        arrays[f"{split}_labels"] = labels[idx]
        arrays[f"{split}_indices"] = idx.astype(np.int32)
    return arrays


def save(arrays, out):
    """Write the arrays compressed and atomically (temporary file, then rename)."""
    buffer = io.BytesIO()
    np.savez_compressed(buffer, **arrays)
    out = Path(out)
    tmp = out.with_name(out.name + ".tmp")
    tmp.write_bytes(buffer.getvalue())
    os.replace(tmp, out)
    return out


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--source", default=str(DEFAULT_SOURCE),
                        help="folder with the four original Fashion-MNIST IDX files")
    parser.add_argument("--out", default=str(BUNDLED_SUBSET), help="the .npz file to write")
    args = parser.parse_args(argv)
    arrays = build(args.source)
    out = save(arrays, args.out)
    print(f"wrote {out} ({out.stat().st_size / 1e6:.2f} MB): "
          f"{len(arrays['train_images']):,} training and {len(arrays['test_images']):,} test "
          "images")
    return 0


if __name__ == "__main__":
    sys.exit(main())
