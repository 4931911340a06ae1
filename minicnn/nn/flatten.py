"""``Flatten``: merge axes into one, typically the bridge from conv features to linear layers."""
from minicnn.nn import functional as F
from minicnn.nn.module import Module


class Flatten(Module):
    """Merge axes ``start_dim..end_dim``: (N, C, H, W) -> (N, C*H*W) by default (the batch axis
    is kept)."""

    def __init__(self, start_dim=1, end_dim=-1):
        super().__init__()
        self.start_dim, self.end_dim = start_dim, end_dim

    def forward(self, input):
        return F.flatten(input, self.start_dim, self.end_dim)

    def extra_repr(self):
        return f"start_dim={self.start_dim}, end_dim={self.end_dim}"
