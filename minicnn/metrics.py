"""What :func:`minicnn.fit` and :func:`minicnn.evaluate` count while they loop: the mean loss
and the accuracy of an epoch, each batch weighted by its number of images."""


def count_correct(outputs, targets):
    """(correct, counted) for class scores ``outputs`` (N, C, ...) against integer ``targets``
    (N, ...), or None when this is not classification (e.g. a regression with mse_loss).

    Per-pixel scores (N, C, H, W) against masks (N, H, W) give pixel accuracy; negative targets
    (``ignore_index``, -100 by default) are not counted.
    """
    if isinstance(outputs, (tuple, list)):  # e.g. GoogLeNet's (logits, aux1, aux2)
        outputs = outputs[0]
    scores, labels = outputs.data, targets.data
    if labels.dtype.kind not in "iu" or scores.ndim != labels.ndim + 1 or \
            scores.shape[:1] + scores.shape[2:] != labels.shape:
        return None
    counted = labels >= 0
    correct = (scores.argmax(axis=1) == labels) & counted
    return int(correct.sum()), int(counted.sum())


class EpochAverage:
    """The loss and accuracy of an epoch so far, each batch weighted by its number of images."""

    def __init__(self):
        self.loss_sum, self.images, self.correct, self.counted, self.steps = 0.0, 0, 0, 0, 0

    def update(self, loss, outputs, targets):
        n = targets.shape[0]
        self.steps += 1
        self.loss_sum += loss * n
        self.images += n
        counts = count_correct(outputs, targets)
        if counts is not None:
            self.correct += counts[0]
            self.counted += counts[1]

    @property
    def loss(self):
        return self.loss_sum / self.images if self.images else float("nan")

    @property
    def accuracy(self):
        """Fraction correct, or None when nothing was classified."""
        return self.correct / self.counted if self.counted else None
