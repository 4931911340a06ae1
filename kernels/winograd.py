"""Winograd's minimal filtering: a 3x3 convolution (stride 1) with fewer multiplications.

Lavin and Gray 2016, "Fast Algorithms for Convolutional Neural Networks" (arXiv:1509.09308).

The idea in one dimension: F(2, 3)
----------------------------------
Two outputs of a 3-tap filter ``g`` sliding over four inputs ``d`` (a CNN's "convolution" is a
correlation, as here) take 6 multiplications the direct way::

    y0 = d0*g0 + d1*g1 + d2*g2
    y1 = d1*g0 + d2*g1 + d3*g2

Winograd's way takes 4, because the filter's sums can be prepared once, before any data::

    m1 = (d0 - d2) * g0                 m2 = (d1 + d2) * (g0 + g1 + g2) / 2
    m4 = (d1 - d3) * g2                 m3 = (d2 - d1) * (g0 - g1 + g2) / 2
    y0 = m1 + m2 + m3                   y1 = m2 - m3 - m4

(multiply out m2 + m3 and m2 - m3: the cross terms cancel). In matrices, ``y = A^T [(G g) *
(B^T d)]`` with ``*`` element by element, ``B^T`` the data transform (rows: d0 - d2, d1 + d2,
d2 - d1, d1 - d3), ``G`` the filter transform and ``A^T`` the output transform: :data:`BT_2`,
:data:`G_2`, :data:`AT_2` below. Where the matrices come from (Toom-Cook): the outputs are
coefficients of the product of two polynomials, and a product of polynomials of degrees 1 and 2
is fixed by its values at ``m + r - 1 = 4`` points; evaluating both factors there (``B^T``,
``G``), multiplying the 4 values pairwise and interpolating back (``A^T``) is the algorithm. F(2,
3) uses the points 0, 1, -1 and infinity (the highest coefficient); F(4, 3), four outputs from
six inputs with 6 multiplications instead of 12, uses 0, 1, -1, 2, -2 and infinity:
:data:`BT_4`, :data:`G_4`, :data:`AT_4`. Larger points give larger entries (up to 8 in
``A^T``, down to 1/24 in ``G``), and that is where the float32 error grows.

In two dimensions: F(2x2, 3x3) and F(4x4, 3x3)
----------------------------------------------
Nest the 1-D algorithm in rows and columns: an ``m x m`` output tile of the 3x3 filter ``g``
over an ``alpha x alpha`` input tile ``d`` (``alpha = m + 2``, neighbouring tiles overlap by 2)::

    Y = A^T [ (G g G^T) * (B^T d B) ] A

``alpha**2`` multiplications per tile instead of ``9 m**2``: 16 instead of 36 for F(2x2, 3x3)
(2.25 times fewer), 36 instead of 144 for F(4x4, 3x3) (4 times fewer). Over channels, the
element-wise product becomes a sum over input channels, one matrix product per tile position
``(a, b)`` (``alpha**2`` GEMMs)::

    U[(a, b), c, oc]  = (G g[oc, c] G^T)[a, b]                 weights, once per call
    V[(a, b), t, c]   = (B^T d[t, c] B)[a, b]                  data, tile t, channel c
    M[(a, b)]         = V[(a, b)] @ U[(a, b)]                  (tiles, C) @ (C, OC)
    y[tile t, oc]     = A^T M[:, t, oc] A                      the m x m outputs of tile t

The weight gradient is the gradient of that same expression: with ``gY`` a tile of the output
gradient, ``gM = A gY A^T`` (:func:`output_grad_tiles_reference`), ``gU[(a, b)] = V[(a, b)].T @
gM[(a, b)]`` summed over tiles, and ``gW = G^T gU G`` (:func:`weight_grad_untransform`): a
Winograd correlation of the input with the output gradient, exact in exact arithmetic. The input
gradient of a stride-1 convolution is the convolution of the output gradient, zero-padded by
``2 - padding``, with the kernel rotated by 180 degrees and its in/out channels swapped
(:func:`flipped_weight`): the forward algorithm again.

Layout: channels-last images ``x (N, H, W, C)`` with zero padding ``(pH, pW)``; the output has
``OH = H + 2 pH - 2`` rows and ``tiles_h = ceil(OH / m)`` tile rows (likewise columns); tile
``t = (n*tiles_h + i)*tiles_w + j`` reads padded rows ``i*m .. i*m + alpha - 1`` (zeros beyond
the image), and writes output rows ``i*m .. i*m + m - 1`` (those below ``OH`` only).

Each kernel comes twice: a readable NumPy reference (``*_reference``, any array module: the
transforms as the matrix products above) and a numba twin (``*_numba``, serial and ``nogil``:
the engine runs it on chunks of the batch on its worker threads, the threading policy in
``kernels/__init__.py``), tested equal. No CUDA twin yet: only the CPU engine calls these
(``minicnn/engine/winograd.py``). The weight transform and its adjoint act on the small weight
arrays only; they are computed in float64 and rounded once (``G``'s sixths are not exact).
"""
import numpy as np
from numba import njit

from minicnn import backend

# ---------------------------------------------------------------------------------------------
# The matrices (Lavin and Gray 2016, section 4)
# ---------------------------------------------------------------------------------------------

#: F(2, 3), points 0, 1, -1, infinity: data transform B^T (4x4), filter G (4x3), output A^T (2x4)
BT_2 = np.array([[1, 0, -1, 0],
                 [0, 1, 1, 0],
                 [0, -1, 1, 0],
                 [0, 1, 0, -1]], dtype=np.float64)
G_2 = np.array([[1, 0, 0],
                [1 / 2, 1 / 2, 1 / 2],
                [1 / 2, -1 / 2, 1 / 2],
                [0, 0, 1]], dtype=np.float64)
AT_2 = np.array([[1, 1, 1, 0],
                 [0, 1, -1, -1]], dtype=np.float64)

#: F(4, 3), points 0, 1, -1, 2, -2, infinity: B^T (6x6), G (6x3), A^T (4x6)
BT_4 = np.array([[4, 0, -5, 0, 1, 0],
                 [0, -4, -4, 1, 1, 0],
                 [0, 4, -4, -1, 1, 0],
                 [0, -2, -1, 2, 1, 0],
                 [0, 2, -1, -2, 1, 0],
                 [0, 4, 0, -5, 0, 1]], dtype=np.float64)
G_4 = np.array([[1 / 4, 0, 0],
                [-1 / 6, -1 / 6, -1 / 6],
                [-1 / 6, 1 / 6, -1 / 6],
                [1 / 24, 1 / 12, 1 / 6],
                [1 / 24, -1 / 12, 1 / 6],
                [0, 0, 1]], dtype=np.float64)
AT_4 = np.array([[1, 1, 1, 1, 1, 0],
                 [0, 1, -1, 2, -2, 0],
                 [0, 1, 1, 4, 4, 0],
                 [0, 1, -1, 8, -8, 1]], dtype=np.float64)

#: output tile size m -> (B^T, G, A^T)
MATRICES = {2: (BT_2, G_2, AT_2), 4: (BT_4, G_4, AT_4)}


def matrices(m, dtype=np.float64):
    """``(B^T, G, A^T)`` of F(m x m, 3x3) as arrays of ``dtype`` (B^T and A^T are integers:
    exact in any float type)."""
    if m not in MATRICES:
        raise ValueError(f"winograd: tile size m must be 2 or 4, got {m!r}")
    return tuple(np.asarray(a, dtype=dtype) for a in MATRICES[m])


def tile_counts(out_hw, m):
    """Tiles per image along rows and columns: ``ceil(OH / m), ceil(OW / m)``."""
    return -(-out_hw[0] // m), -(-out_hw[1] // m)


def output_hw(input_hw, padding):
    """``(OH, OW)`` of a 3x3 stride-1 convolution with zero padding ``padding``."""
    return input_hw[0] + 2 * padding[0] - 2, input_hw[1] + 2 * padding[1] - 2


# ---------------------------------------------------------------------------------------------
# Weights: U = G g G^T, the flipped kernel, and the adjoint gW = G^T gU G
# ---------------------------------------------------------------------------------------------

def weight_transform(w, m):
    """``U (alpha**2, C, OC)`` of ``w (OC, C, 3, 3)``: ``G g G^T`` of every filter, computed in
    float64 and rounded once to ``w``'s dtype."""
    xp = backend.get_array_module(w)
    _, G, _ = matrices(m)
    G = xp.asarray(G)
    u = G @ w.astype(xp.float64) @ G.T                              # (OC, C, alpha, alpha)
    alpha = m + 2
    u = u.transpose(2, 3, 1, 0).reshape(alpha * alpha, w.shape[1], w.shape[0])
    return xp.ascontiguousarray(u.astype(w.dtype))


def weight_grad_untransform(gu, m, dtype):
    """``gW (OC, C, 3, 3) = G^T gU G`` of ``gu (alpha**2, C, OC)`` (the adjoint of
    :func:`weight_transform`), computed in float64 and rounded once to ``dtype``."""
    xp = backend.get_array_module(gu)
    _, G, _ = matrices(m)
    G = xp.asarray(G)
    alpha, C, OC = m + 2, gu.shape[1], gu.shape[2]
    gu = gu.astype(xp.float64).reshape(alpha, alpha, C, OC).transpose(3, 2, 0, 1)
    return xp.ascontiguousarray((G.T @ gu @ G).astype(dtype))


def flipped_weight(w):
    """The kernel of the input gradient: rotated by 180 degrees, in/out channels swapped,
    ``(OC, C, 3, 3) -> (C, OC, 3, 3)``."""
    return w[:, :, ::-1, ::-1].transpose(1, 0, 2, 3)


# ---------------------------------------------------------------------------------------------
# NumPy references (any array module)
# ---------------------------------------------------------------------------------------------

def input_tiles_reference(x, m, padding):
    """``V (alpha**2, N*tiles_h*tiles_w, C) = B^T d B`` of every ``alpha x alpha`` tile ``d`` of
    the zero-padded channels-last ``x (N, H, W, C)``, tiles ``m`` apart."""
    xp = backend.get_array_module(x)
    BT, _, _ = matrices(m, x.dtype)
    BT = xp.asarray(BT)
    N, H, W, C = x.shape
    (pH, pW), alpha = padding, m + 2
    th, tw = tile_counts(output_hw((H, W), padding), m)
    # pad enough for the last tile to be whole: rows up to th*m + 2 of the padded image
    xpad = xp.pad(x, ((0, 0), (pH, th * m + 2 - H - pH), (pW, tw * m + 2 - W - pW), (0, 0)))
    # d[n, i, j, c, r, s] = xpad[n, i*m + r, j*m + s, c]: one strided slice per (r, s)
    d = xp.stack([xp.stack([xpad[:, r:r + th * m:m, s:s + tw * m:m, :] for s in range(alpha)],
                           axis=-1) for r in range(alpha)], axis=-2)
    v = BT @ d @ BT.T                                               # (N, th, tw, C, alpha, alpha)
    return xp.ascontiguousarray(v.transpose(4, 5, 0, 1, 2, 3).reshape(alpha * alpha, -1, C))


def output_tiles_reference(mt, m, out_shape, b=None):
    """``y (N, OH, OW, OC)``: ``A^T M A`` of every tile of ``mt (alpha**2, tiles, OC)``, the
    ``m x m`` results side by side, cut to ``out_shape``, plus the bias ``b (OC,)``."""
    xp = backend.get_array_module(mt)
    _, _, AT = matrices(m, mt.dtype)
    AT = xp.asarray(AT)
    N, OH, OW, OC = out_shape
    th, tw = tile_counts((OH, OW), m)
    alpha = m + 2
    t = mt.reshape(alpha, alpha, N, th, tw, OC).transpose(2, 3, 4, 5, 0, 1)
    y = AT @ t @ AT.T                                               # (N, th, tw, OC, m, m)
    y = y.transpose(0, 1, 4, 2, 5, 3).reshape(N, th * m, tw * m, OC)[:, :OH, :OW]
    y = xp.ascontiguousarray(y)
    if b is not None:
        y += b
    return y


def output_grad_tiles_reference(gy, m):
    """``gM (alpha**2, tiles, OC) = A gY A^T`` of every ``m x m`` tile ``gY`` of ``gy (N, OH,
    OW, OC)`` (zeros past the edge): the adjoint of :func:`output_tiles_reference`."""
    xp = backend.get_array_module(gy)
    _, _, AT = matrices(m, gy.dtype)
    AT = xp.asarray(AT)
    N, OH, OW, OC = gy.shape
    th, tw = tile_counts((OH, OW), m)
    g = xp.pad(gy, ((0, 0), (0, th * m - OH), (0, tw * m - OW), (0, 0)))
    g = g.reshape(N, th, m, tw, m, OC).transpose(0, 1, 3, 5, 2, 4)  # (N, th, tw, OC, m, m)
    t = AT.T @ g @ AT                                               # (N, th, tw, OC, a, a)
    alpha = m + 2
    return xp.ascontiguousarray(t.transpose(4, 5, 0, 1, 2, 3).reshape(alpha * alpha, -1, OC))


def conv2d_winograd_reference(x, w, b, padding, m):
    """``y (N, OH, OW, OC)`` of ``x (N, H, W, C)``, ``w (OC, C, 3, 3)``, stride 1: transform,
    ``alpha**2`` GEMMs, transform back."""
    N, H, W, _ = x.shape
    mt = input_tiles_reference(x, m, padding) @ weight_transform(w, m)   # (a*a, tiles, OC)
    return output_tiles_reference(mt, m, (N, *output_hw((H, W), padding), w.shape[0]), b)


def conv2d_winograd_input_grad_reference(gy, w, padding, m):
    """``gx (N, H, W, C)``: the convolution of ``gy`` padded by ``2 - padding`` with the
    flipped, channel-swapped kernel."""
    full = (2 - padding[0], 2 - padding[1])
    return conv2d_winograd_reference(gy, flipped_weight(w), None, full, m)


def conv2d_winograd_weight_grad_reference(x, gy, padding, m):
    """``gW (OC, C, 3, 3) = G^T (sum over tiles of V^T gM) G``."""
    v = input_tiles_reference(x, m, padding)                        # (a*a, tiles, C)
    gm = output_grad_tiles_reference(gy, m)                         # (a*a, tiles, OC)
    return weight_grad_untransform(v.transpose(0, 2, 1) @ gm, m, x.dtype)


# ---------------------------------------------------------------------------------------------
# numba twins (serial, nogil; channels-last: the inner loops run over contiguous channels)
# ---------------------------------------------------------------------------------------------

@njit(cache=True, nogil=True)
def _tiles(x, T, step, pH, pW, th, tw, out):
    """``out[(a, b), tile, :] = sum over r, s of T[a, r] * x_tile[r, s, :] * T[b, s]`` for the
    ``k x k`` tiles (``T`` is ``(alpha, k)``) of ``x`` starting every ``step`` pixels at
    ``(-pH, -pW)``, zeros outside ``x``. Separable, a tile row at a time: first ``T`` along the
    rows (loops over whole image rows, ``W*C`` numbers, that the compiler vectorises), then
    along the columns into each tile; zero entries of ``T`` are skipped."""
    N, H, W, C = x.shape
    alpha, k = T.shape
    Wp = (tw - 1) * step + k                                       # columns the tiles read
    rows = np.zeros((alpha, Wp, C), dtype=out.dtype)               # pad columns stay 0
    z0, z1 = max(0, -pW), min(W, Wp - pW)                          # image columns in use
    for n in range(N):
        for i in range(th):
            # 1. rows: rows[a, pW + z] = sum over r of T[a, r] * x[n, i*step - pH + r, z]
            for a in range(alpha):
                first = True
                for r in range(k):
                    y = i * step - pH + r
                    coef = T[a, r]
                    if coef == 0 or y < 0 or y >= H:
                        continue
                    for z in range(z0, z1):
                        if first:
                            for c in range(C):
                                rows[a, pW + z, c] = coef * x[n, y, z, c]
                        else:
                            for c in range(C):
                                rows[a, pW + z, c] += coef * x[n, y, z, c]
                    first = False
                if first:
                    rows[a, pW + z0:pW + z1] = 0
            # 2. columns: out[(a, b), tile j] = sum over s of T[b, s] * rows[a, j*step + s]
            t0 = (n * th + i) * tw
            for a in range(alpha):
                for b in range(alpha):
                    o = a * alpha + b
                    first = True
                    for s in range(k):
                        coef = T[b, s]
                        if coef == 0:
                            continue
                        for j in range(tw):
                            if first:
                                for c in range(C):
                                    out[o, t0 + j, c] = coef * rows[a, j * step + s, c]
                            else:
                                for c in range(C):
                                    out[o, t0 + j, c] += coef * rows[a, j * step + s, c]
                        first = False


@njit(cache=True, nogil=True)
def _untiles(mt, AT, th, tw, bias, out):
    """``out[tile rows and columns u, v] = (A^T M A)[u, v] + bias`` for every tile of ``mt``,
    the ``m x m`` results side by side, those past the edge of ``out`` dropped. Separable, a
    tile row at a time: first along the columns of each tile, then along whole output rows."""
    N, OH, OW, OC = out.shape
    m, alpha = AT.shape
    cols = np.empty((alpha, tw * m, OC), dtype=out.dtype)
    for n in range(N):
        for i in range(th):
            t0 = (n * th + i) * tw
            # 1. columns: cols[a, j*m + v] = sum over b of AT[v, b] * M[(a, b), tile j]
            for a in range(alpha):
                for v in range(m):
                    first = True
                    for b in range(alpha):
                        coef = AT[v, b]
                        if coef == 0:
                            continue
                        o = a * alpha + b
                        for j in range(tw):
                            if first:
                                for c in range(OC):
                                    cols[a, j * m + v, c] = coef * mt[o, t0 + j, c]
                            else:
                                for c in range(OC):
                                    cols[a, j * m + v, c] += coef * mt[o, t0 + j, c]
                        first = False
            # 2. rows: y[n, i*m + u, :OW] = bias + sum over a of AT[u, a] * cols[a, :OW]
            for u in range(m):
                y = i * m + u
                if y >= OH:
                    break
                for z in range(OW):
                    for c in range(OC):
                        out[n, y, z, c] = bias[c]
                for a in range(alpha):
                    coef = AT[u, a]
                    if coef == 0:
                        continue
                    for z in range(OW):
                        for c in range(OC):
                            out[n, y, z, c] += coef * cols[a, z, c]


def _check_out(out, shape, dtype, what):
    if out is None:
        return np.empty(shape, dtype=dtype)
    if out.shape != tuple(shape) or out.dtype != dtype or not out.flags.c_contiguous:
        raise ValueError(f"winograd {what}: out must be a contiguous {np.dtype(dtype)} array of "
                         f"shape {tuple(shape)}, got {out.dtype} {out.shape}")
    return out


def input_tiles_numba(x, m, padding, out=None):
    """numba twin of :func:`input_tiles_reference` (``out``: where to write, optional)."""
    N, H, W, C = x.shape
    th, tw = tile_counts(output_hw((H, W), padding), m)
    out = _check_out(out, ((m + 2) ** 2, N * th * tw, C), x.dtype, "input tiles")
    BT, _, _ = matrices(m, x.dtype)
    _tiles(np.ascontiguousarray(x), BT, m, padding[0], padding[1], th, tw, out)
    return out


def output_grad_tiles_numba(gy, m, out=None):
    """numba twin of :func:`output_grad_tiles_reference`."""
    N, OH, OW, OC = gy.shape
    th, tw = tile_counts((OH, OW), m)
    out = _check_out(out, ((m + 2) ** 2, N * th * tw, OC), gy.dtype, "output-gradient tiles")
    _, _, AT = matrices(m, gy.dtype)
    _tiles(np.ascontiguousarray(gy), np.ascontiguousarray(AT.T), m, 0, 0, th, tw, out)
    return out


def output_tiles_numba(mt, m, out_shape, b=None, out=None):
    """numba twin of :func:`output_tiles_reference`."""
    out = _check_out(out, out_shape, mt.dtype, "output")
    th, tw = tile_counts(out_shape[1:3], m)
    bias = np.zeros(out_shape[3], mt.dtype) if b is None else np.ascontiguousarray(b, mt.dtype)
    _, _, AT = matrices(m, mt.dtype)
    _untiles(mt, AT, th, tw, bias, out)
    return out
