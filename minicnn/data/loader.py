"""``DataLoader``: a data set cut into batches of tensors, shuffled reproducibly, on a device.

    >>> loader = DataLoader(train, batch_size=128, shuffle=True, seed=0)
    >>> for images, labels in loader:     # Tensor float32 (128, 1, 28, 28), Tensor int64 (128,)
    ...     loss = F.cross_entropy(model(images), labels)

Shuffling draws one permutation per epoch (per pass over the loader):

* ``seed=None``: from ``minicnn.random.get_generator()``, so ``mc.manual_seed(n)`` makes the
  whole run repeatable (and the generator's state in a checkpoint resumes it exactly);
* ``seed=s``: from a generator of its own for every epoch e, seeded with ``(s, e)``, so epoch e's
  order is always the same, whatever else draws random numbers, and differs between epochs.
  ``loader.epoch`` counts the passes; ``set_epoch(e)`` jumps to one (to resume training).

Data sets with ``get_batch(indices)`` (all of ``minicnn.data``'s) are fetched a batch at a time
in one vectorised step; any other data set with ``__len__``/``__getitem__`` works too, one item
at a time, the items stacked.
"""
import numpy as np

from minicnn import backend
from minicnn import random as _random
from minicnn.autograd import Tensor
from minicnn.data.transforms import to_float32


def _to_numpy(x):
    if isinstance(x, Tensor):
        x = x.data
    return backend.to_numpy(x) if backend.device_of(x) == "cuda" else np.asarray(x)


class DataLoader:
    """``DataLoader(dataset, batch_size=1, shuffle=False, drop_last=False, seed=None,
    device=None, transform=None)``.

    Yields ``(images, labels)``: images a float32 Tensor (B, C, H, W) (uint8 pixels scaled to
    [0, 1]), labels an int64 Tensor (B,) (or (B, H, W) masks), both on ``device`` (``"cpu"`` by
    default; ``"cuda"`` or ``"auto"`` to follow the model). ``len(loader)`` is the number of
    batches: ``ceil(N / batch_size)``, or ``N // batch_size`` with ``drop_last=True`` (which
    drops the last, smaller batch). ``transform`` is an extra batch transform applied here.
    """

    def __init__(self, dataset, batch_size=1, shuffle=False, drop_last=False, seed=None,
                 device=None, transform=None):
        if not (hasattr(dataset, "__len__") and
                (hasattr(dataset, "__getitem__") or hasattr(dataset, "get_batch"))):
            raise TypeError(f"DataLoader: {type(dataset).__name__} is not a data set: it needs "
                            "__len__ and __getitem__ (or get_batch)")
        if isinstance(batch_size, bool) or not isinstance(batch_size, (int, np.integer)) \
                or batch_size < 1:
            raise ValueError(f"DataLoader: batch_size must be a positive integer, got "
                             f"{batch_size!r}")
        if seed is not None and (isinstance(seed, bool) or not isinstance(seed, (int, np.integer))
                                 or seed < 0):
            raise ValueError(f"DataLoader: seed must be a non-negative integer or None, got "
                             f"{seed!r}")
        self.dataset = dataset
        self.batch_size = int(batch_size)
        self.shuffle = bool(shuffle)
        self.drop_last = bool(drop_last)
        self.seed = None if seed is None else int(seed)
        self.device = "cpu" if device is None else backend.normalize_device(device)
        self.transform = transform
        self.epoch = 0
        get_batch = getattr(dataset, "get_batch", None)
        self._get_batch = get_batch if callable(get_batch) else None

    def __len__(self):
        n = len(self.dataset)
        return n // self.batch_size if self.drop_last else -(-n // self.batch_size)

    def set_epoch(self, epoch):
        """The next pass over the loader is epoch ``epoch`` (its shuffle order, with a seed)."""
        self.epoch = int(epoch)

    def state_dict(self):
        """The loader's own state, for checkpoints: the epoch counter (a seeded loader's next
        order follows from it; an unseeded one's from minicnn's generator, saved separately)."""
        return {"epoch": self.epoch}

    def load_state_dict(self, state):
        self.set_epoch(state["epoch"])

    def order(self, epoch=None):
        """The sample indices of an epoch, in the order they will be served.

        With ``seed=None`` this draws from minicnn's generator, like iterating does."""
        n = len(self.dataset)
        if not self.shuffle:
            return np.arange(n)
        if self.seed is None:
            rng = _random.get_generator()
        else:
            rng = np.random.default_rng([self.seed, self.epoch if epoch is None else int(epoch)])
        return rng.permutation(n)

    def __iter__(self):
        order = self.order(self.epoch)  # drawn now, when the pass starts
        self.epoch += 1
        return self._batches(order)

    def _batches(self, order):
        n, size = len(order), self.batch_size
        stop = n - n % size if self.drop_last else n
        for start in range(0, stop, size):
            images, labels = self.fetch(order[start:start + size])
            yield Tensor(images, device=self.device), Tensor(labels, device=self.device)

    def fetch(self, indices):
        """``(images, labels)`` NumPy arrays for the given sample indices, transforms applied."""
        indices = np.asarray(indices, dtype=np.int64)
        if self._get_batch is not None:
            images, labels = self._get_batch(indices)
        else:
            items = [self.dataset[int(i)] for i in indices]
            for item in items[:1]:
                if not isinstance(item, (tuple, list)) or len(item) != 2:
                    raise TypeError(f"DataLoader: {type(self.dataset).__name__}[i] must return "
                                    f"(image, label), got {type(item).__name__}")
            images = np.stack([_to_numpy(x) for x, _ in items]) if items else np.zeros((0,))
            labels = np.stack([_to_numpy(y) for _, y in items]) if items else np.zeros((0,))
        images = to_float32(np.asarray(images))
        if self.transform is not None:
            images = self.transform(images)
        labels = np.asarray(labels)
        if labels.dtype.kind in "iub":
            labels = labels.astype(np.int64, copy=False)
        elif labels.dtype.kind == "f":
            labels = labels.astype(np.float32, copy=False)
        return images, labels

    def __repr__(self):
        return (f"DataLoader({type(self.dataset).__name__} of {len(self.dataset):,}, "
                f"batch_size={self.batch_size}, shuffle={self.shuffle}, "
                f"drop_last={self.drop_last}, seed={self.seed}, device='{self.device}')")
