// Max and average pooling, forward and backward, on the GPU: the CUDA C twins of
// kernels/pooling.py.
//
// Layout: like the numba twins, these kernels take C-contiguous channels-last arrays, the input
// (N, H, W, C) and the output (N, OH, OW, C). An NCHW tensor is passed as (N*C, H, W, 1) -- each
// channel plane an image of one channel -- and a channels-last tensor as it is (see to_images()
// in kernels/pooling.py). Window rules are PyTorch's: output pixel (oh, ow) looks at input rows
// oh*sH - pH ... oh*sH - pH + KH - 1 and columns ow*sW - pW ... ow*sW - pW + KW - 1, where
// anything outside 0..H-1 x 0..W-1 is padding. A dilated max pooling (dH, dW > 1) looks only at
// its KH x KW taps, rows oh*sH - pH + kh*dH and columns ow*sW - pW + kw*dW. Max-pool indices
// are int32 flat positions h*W + w inside the input plane (PyTorch's numbering).
//
// Every kernel runs ONE THREAD PER OUTPUT ELEMENT and writes only that element: the forward
// kernels one thread per element of y, the backward kernels one thread per element of gx, which
// GATHERS the gradient of every window that contains its pixel (instead of each window scattering
// into its pixels, which would need atomicAdd where windows overlap). The per-element work is a
// __host__ __device__ function; tests/test_cuda_kernels.py runs these same functions on the CPU
// (host compiler, blockIdx/threadIdx emulated) and compares them with the NumPy references.
// Templates over T = float or double, instantiated by name from kernels/cuda_kernels.py.

// Window extent along one axis: the real input rows [lo, hi) of the window that starts at
// `start` (= o*s - p); empty when the window lies in the padding only.
__host__ __device__ inline void window_extent(int start, int size, int kernel, int* lo,
                                              int* hi) {
    *lo = start < 0 ? 0 : start;
    *hi = start + kernel < size ? start + kernel : size;
}

// The taps of a dilated window along one axis that are real input rows: start + k*dilation for
// k = 0 .. kernel-1, inside [0, size). They run from *lo (the first tap at or after 0) to below
// *hi in steps of `dilation`; none when *lo >= *hi. With dilation 1 this is window_extent.
__host__ __device__ inline void dilated_extent(int start, int size, int kernel, int dilation,
                                               int* lo, int* hi) {
    *lo = start < 0 ? start + (-start + dilation - 1) / dilation * dilation : start;
    const int end = start + (kernel - 1) * dilation + 1;
    *hi = end < size ? end : size;
}

// -inf, the max-pool's starting value. NVRTC (what CuPy compiles with) knows no
// __builtin_huge_val and has no <cmath>, so the device side builds it from its bit pattern; the
// host side (tests/test_cuda_kernels.py runs these functions on the CPU) uses the builtin.
template <typename T>
__host__ __device__ inline T negative_infinity();

template <>
__host__ __device__ inline float negative_infinity<float>() {
#ifdef __CUDA_ARCH__
    return -__int_as_float(0x7f800000);  // exponent all ones, mantissa 0: +inf
#else
    return -__builtin_huge_valf();
#endif
}

template <>
__host__ __device__ inline double negative_infinity<double>() {
#ifdef __CUDA_ARCH__
    return -__longlong_as_double(0x7ff0000000000000LL);
#else
    return -__builtin_huge_val();
#endif
}

// ---------------------------------------------------------------------------------------------
// max_pool2d_forward_nhwc: one thread per element of y (and of indices).
//
//   thread i  ->  output element i = (n, oh, ow, c):
//       c = i % C    ow = (i / C) % OW    oh = (i / (C*OW)) % OH    n = i / (C*OW*OH)
//   it scans its window's real taps row by row (dH rows and dW columns apart); a value wins when
//   it is GREATER than the best so far (so ties keep the FIRST maximum) or when it is NaN (NaN
//   propagates), as in PyTorch. Before anything wins, the index points at the first real tap.
// ---------------------------------------------------------------------------------------------
template <typename T>
__host__ __device__ inline void max_pool2d_forward_element(
        const T* x, long long i, int H, int W, int C, int KH, int KW, int sH, int sW, int pH,
        int pW, int dH, int dW, int OH, int OW, T* best_out, int* index_out) {
    const int c = static_cast<int>(i % C);
    long long rest = i / C;
    const int ow = static_cast<int>(rest % OW);
    rest /= OW;
    const int oh = static_cast<int>(rest % OH);
    const long long n = rest / OH;
    int h0, h1, w0, w1;
    dilated_extent(oh * sH - pH, H, KH, dH, &h0, &h1);
    dilated_extent(ow * sW - pW, W, KW, dW, &w0, &w1);
    T best = negative_infinity<T>();  // padding counts as -inf: it never wins
    int index = h0 * W + w0;
    const T* plane = x + n * H * W * C + c;  // element (n, 0, 0, c); pixels are C apart
    for (int h = h0; h < h1; h += dH) {
        for (int w = w0; w < w1; w += dW) {
            const T v = plane[(static_cast<long long>(h) * W + w) * C];
            if (v > best || v != v) {  // strictly greater, or NaN
                best = v;
                index = h * W + w;
            }
        }
    }
    *best_out = best;
    *index_out = index;
}

template <typename T>
__global__ void max_pool2d_forward_nhwc(const T* __restrict__ x, T* __restrict__ y,
                                        int* __restrict__ indices, long long total, int H, int W,
                                        int C, int KH, int KW, int sH, int sW, int pH, int pW,
                                        int dH, int dW, int OH, int OW) {
    const long long i = static_cast<long long>(blockIdx.x) * blockDim.x + threadIdx.x;
    if (i < total) {
        max_pool2d_forward_element(x, i, H, W, C, KH, KW, sH, sW, pH, pW, dH, dW, OH, OW, &y[i],
                                   &indices[i]);
    }
}

// ---------------------------------------------------------------------------------------------
// max_pool2d_backward_nhwc: one thread per element of gx.
//
//   thread i  ->  input element i = (n, h, w, c):
//       c = i % C    w = (i / C) % W    h = (i / (C*W)) % H    n = i / (C*W*H)
//   it adds gy[n, oh, ow, c] of every window (oh, ow) that contains (h, w) AND whose recorded
//   winner is this pixel (indices[n, oh, ow, c] == h*W + w). The window whose tap row kh covers h
//   is oh = (h + pH - kh*dH) / sH (when exact and 0 <= oh < OH). Terms are added in (kh, kw)
//   order, the NumPy reference's order.
// ---------------------------------------------------------------------------------------------
template <typename T>
__host__ __device__ inline T max_pool2d_backward_element(
        const T* gy, const int* indices, long long i, int H, int W, int C, int KH, int KW,
        int sH, int sW, int pH, int pW, int dH, int dW, int OH, int OW) {
    const int c = static_cast<int>(i % C);
    long long rest = i / C;
    const int w = static_cast<int>(rest % W);
    rest /= W;
    const int h = static_cast<int>(rest % H);
    const long long n = rest / H;
    const int me = h * W + w;
    T sum = static_cast<T>(0);
    for (int kh = 0; kh < KH; ++kh) {
        const int dy = h + pH - kh * dH;
        if (dy < 0 || dy % sH != 0 || dy / sH >= OH) {
            continue;
        }
        const int oh = dy / sH;
        for (int kw = 0; kw < KW; ++kw) {
            const int dx = w + pW - kw * dW;
            if (dx < 0 || dx % sW != 0 || dx / sW >= OW) {
                continue;
            }
            const long long o = ((n * OH + oh) * OW + dx / sW) * C + c;
            if (indices[o] == me) {
                sum += gy[o];
            }
        }
    }
    return sum;
}

template <typename T>
__global__ void max_pool2d_backward_nhwc(const T* __restrict__ gy,
                                         const int* __restrict__ indices, T* __restrict__ gx,
                                         long long total, int H, int W, int C, int KH, int KW,
                                         int sH, int sW, int pH, int pW, int dH, int dW, int OH,
                                         int OW) {
    const long long i = static_cast<long long>(blockIdx.x) * blockDim.x + threadIdx.x;
    if (i < total) {
        gx[i] = max_pool2d_backward_element(gy, indices, i, H, W, C, KH, KW, sH, sW, pH, pW,
                                            dH, dW, OH, OW);
    }
}

// ---------------------------------------------------------------------------------------------
// avg_pool2d_forward_nhwc: one thread per element of y.
//
//   thread i  ->  output element i = (n, oh, ow, c):
//       c = i % C    ow = (i / C) % OW    oh = (i / (C*OW)) % OH    n = i / (C*OW*OH)
//   y = (sum of the window's real pixels, row by row) / divisors[oh, ow]. The divisors (OH, OW)
//   come from avg_pool2d_divisors() in kernels/pooling.py (count_include_pad, divisor_override).
// ---------------------------------------------------------------------------------------------
template <typename T>
__host__ __device__ inline T avg_pool2d_forward_element(
        const T* x, const T* divisors, long long i, int H, int W, int C, int KH, int KW, int sH,
        int sW, int pH, int pW, int OH, int OW) {
    const int c = static_cast<int>(i % C);
    long long rest = i / C;
    const int ow = static_cast<int>(rest % OW);
    rest /= OW;
    const int oh = static_cast<int>(rest % OH);
    const long long n = rest / OH;
    int h0, h1, w0, w1;
    window_extent(oh * sH - pH, H, KH, &h0, &h1);
    window_extent(ow * sW - pW, W, KW, &w0, &w1);
    const T* plane = x + n * H * W * C + c;
    T sum = static_cast<T>(0);  // padding adds zeros: skipping it changes nothing
    for (int h = h0; h < h1; ++h) {
        for (int w = w0; w < w1; ++w) {
            sum += plane[(static_cast<long long>(h) * W + w) * C];
        }
    }
    return sum / divisors[oh * OW + ow];
}

template <typename T>
__global__ void avg_pool2d_forward_nhwc(const T* __restrict__ x, const T* __restrict__ divisors,
                                        T* __restrict__ y, long long total, int H, int W, int C,
                                        int KH, int KW, int sH, int sW, int pH, int pW, int OH,
                                        int OW) {
    const long long i = static_cast<long long>(blockIdx.x) * blockDim.x + threadIdx.x;
    if (i < total) {
        y[i] = avg_pool2d_forward_element(x, divisors, i, H, W, C, KH, KW, sH, sW, pH, pW, OH,
                                          OW);
    }
}

// ---------------------------------------------------------------------------------------------
// avg_pool2d_backward_nhwc: one thread per element of gx.
//
//   thread i  ->  input element i = (n, h, w, c):
//       c = i % C    w = (i / C) % W    h = (i / (C*W)) % H    n = i / (C*W*H)
//   it adds gy[n, oh, ow, c] / divisors[oh, ow] of every window (oh, ow) containing (h, w), in
//   (kh, kw) order (the NumPy reference's); each window's share is divided once, as PyTorch does.
// ---------------------------------------------------------------------------------------------
template <typename T>
__host__ __device__ inline T avg_pool2d_backward_element(
        const T* gy, const T* divisors, long long i, int H, int W, int C, int KH, int KW,
        int sH, int sW, int pH, int pW, int OH, int OW) {
    const int c = static_cast<int>(i % C);
    long long rest = i / C;
    const int w = static_cast<int>(rest % W);
    rest /= W;
    const int h = static_cast<int>(rest % H);
    const long long n = rest / H;
    T sum = static_cast<T>(0);
    for (int kh = 0; kh < KH; ++kh) {
        const int dy = h + pH - kh;
        if (dy < 0 || dy % sH != 0 || dy / sH >= OH) {
            continue;
        }
        const int oh = dy / sH;
        for (int kw = 0; kw < KW; ++kw) {
            const int dx = w + pW - kw;
            if (dx < 0 || dx % sW != 0 || dx / sW >= OW) {
                continue;
            }
            const int ow = dx / sW;
            sum += gy[((n * OH + oh) * OW + ow) * C + c] / divisors[oh * OW + ow];
        }
    }
    return sum;
}

template <typename T>
__global__ void avg_pool2d_backward_nhwc(const T* __restrict__ gy,
                                         const T* __restrict__ divisors, T* __restrict__ gx,
                                         long long total, int H, int W, int C, int KH, int KW,
                                         int sH, int sW, int pH, int pW, int OH, int OW) {
    const long long i = static_cast<long long>(blockIdx.x) * blockDim.x + threadIdx.x;
    if (i < total) {
        gx[i] = avg_pool2d_backward_element(gy, divisors, i, H, W, C, KH, KW, sH, sW, pH, pW,
                                            OH, OW);
    }
}
