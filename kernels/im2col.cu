// im2col and col2im on the GPU: the CUDA C twins of kernels/im2col.py.
//
// Layout (the same as the NumPy reference, see kernels/im2col.py): the image x is channels-last,
// (N, H, W, C), C-contiguous; for a KH x KW kernel with stride (sH, sW), zero padding (pH, pW)
// and dilation (dH, dW) (the kernel's taps dH rows and dW columns apart; 1: a dense kernel) the
// column matrix is (N*OH*OW, KH*KW*C), C-contiguous, with
//
//     cols[(n, oh, ow), (kh, kw, c)] = x[n, oh*sH - pH + kh*dH, ow*sW - pW + kw*dW, c]
//
// (0 where that pixel lies in the padding). Row (n, oh, ow) is (n*OH + oh)*OW + ow, column
// (kh, kw, c) is (kh*KW + kw)*C + c. Both kernels are templates over the element type T (float or
// double); kernels/cuda_kernels.py (minicnn.kernels) launches them through cupy.RawModule, by the
// instantiations' names ("im2col_nhwc<float>", ...).
//
// Each kernel runs ONE THREAD PER OUTPUT ELEMENT: thread i = blockIdx.x*blockDim.x + threadIdx.x
// writes element i of the C-contiguous output and nothing else, so no two threads ever write the
// same address (no atomics, no synchronisation, and the result does not depend on the order in
// which the threads run). The per-element work is a __host__ __device__ function, so the very
// same code also runs on the CPU: tests/test_cuda_kernels.py compiles this file with a host C++
// compiler (blockIdx and threadIdx emulated) and compares every element with the NumPy reference.
//
// 64-bit flat indices: the column matrix of a large batch can exceed 2^31 elements.

// ---------------------------------------------------------------------------------------------
// im2col: one thread per element of the column matrix.
//
//   thread i  ->  column-matrix element i = (row, col), row = (n, oh, ow), col = (kh, kw, c):
//       c  = i % C                  kw = (i / C) % KW          kh = (i / (C*KW)) % KH
//       ow = (i / (C*KW*KH)) % OW   oh = (i / (C*KW*KH*OW)) % OH   n = i / (C*KW*KH*OW*OH)
//   and it reads the input pixel (n, y, x, c) with y = oh*sH - pH + kh*dH,
//   x = ow*sW - pW + kw*dW (or writes 0 when (y, x) lies in the padding).
//
// Neighbouring threads take neighbouring channels c of one pixel, so a warp reads and writes
// consecutive addresses (coalesced) whenever C >= 32 or a kernel row lies inside the image.
// ---------------------------------------------------------------------------------------------
template <typename T>
__host__ __device__ inline T im2col_element(const T* x, long long i, int H, int W, int C,
                                            int KH, int KW, int sH, int sW, int pH, int pW,
                                            int dH, int dW, int OH, int OW) {
    const int c = static_cast<int>(i % C);
    long long rest = i / C;
    const int kw = static_cast<int>(rest % KW);
    rest /= KW;
    const int kh = static_cast<int>(rest % KH);
    rest /= KH;
    const int ow = static_cast<int>(rest % OW);
    rest /= OW;
    const int oh = static_cast<int>(rest % OH);
    const long long n = rest / OH;
    const int y = oh * sH - pH + kh * dH;  // the input pixel under kernel tap (kh, kw)
    const int x_ = ow * sW - pW + kw * dW;
    if (y < 0 || y >= H || x_ < 0 || x_ >= W) {
        return static_cast<T>(0);  // zero padding
    }
    return x[((n * H + y) * W + x_) * C + c];
}

template <typename T>
__global__ void im2col_nhwc(const T* __restrict__ x, T* __restrict__ cols, long long total,
                            int H, int W, int C, int KH, int KW, int sH, int sW, int pH, int pW,
                            int dH, int dW, int OH, int OW) {
    const long long i = static_cast<long long>(blockIdx.x) * blockDim.x + threadIdx.x;
    if (i < total) {  // the last block may have more threads than elements are left
        cols[i] = im2col_element(x, i, H, W, C, KH, KW, sH, sW, pH, pW, dH, dW, OH, OW);
    }
}

// ---------------------------------------------------------------------------------------------
// col2im as a GATHER: one thread per element of the image (the adjoint of im2col).
//
//   thread i  ->  image element i = (n, y, x, c):
//       c = i % C    x = (i / C) % W    y = (i / (C*W)) % H    n = i / (C*W*H)
//   and it sums every column-matrix entry that im2col copied from that pixel: the windows
//   (oh, ow) and kernel taps (kh, kw) with oh*sH - pH + kh*dH = y and ow*sW - pW + kw*dW = x.
//
// For each kernel row kh the window row is oh = (y + pH - kh*dH) / sH, which exists when the
// division is exact and 0 <= oh < OH; likewise for the columns. That is at most KH * KW terms
// (fewer when the stride skips some), found without searching. The sum runs over (kh, kw) in
// increasing order, the order in which the NumPy reference adds its slices, so both give the
// same rounding. No two threads write one pixel: no atomicAdd, and the result is deterministic.
// ---------------------------------------------------------------------------------------------
template <typename T>
__host__ __device__ inline T col2im_element(const T* cols, long long i, int H, int W, int C,
                                            int KH, int KW, int sH, int sW, int pH, int pW,
                                            int dH, int dW, int OH, int OW) {
    const int c = static_cast<int>(i % C);
    long long rest = i / C;
    const int x_ = static_cast<int>(rest % W);
    rest /= W;
    const int y = static_cast<int>(rest % H);
    const long long n = rest / H;
    const long long row_length = static_cast<long long>(KH) * KW * C;  // one window's numbers
    T sum = static_cast<T>(0);
    for (int kh = 0; kh < KH; ++kh) {
        const int dy = y + pH - kh * dH;  // = oh * sH for the window whose row kh covers y
        if (dy < 0 || dy % sH != 0 || dy / sH >= OH) {
            continue;
        }
        const int oh = dy / sH;
        for (int kw = 0; kw < KW; ++kw) {
            const int dx = x_ + pW - kw * dW;
            if (dx < 0 || dx % sW != 0 || dx / sW >= OW) {
                continue;
            }
            const int ow = dx / sW;
            const long long row = (n * OH + oh) * OW + ow;
            sum += cols[row * row_length + (kh * KW + kw) * C + c];
        }
    }
    return sum;
}

template <typename T>
__global__ void col2im_nhwc(const T* __restrict__ cols, T* __restrict__ image, long long total,
                            int H, int W, int C, int KH, int KW, int sH, int sW, int pH, int pW,
                            int dH, int dW, int OH, int OW) {
    const long long i = static_cast<long long>(blockIdx.x) * blockDim.x + threadIdx.x;
    if (i < total) {
        image[i] = col2im_element(cols, i, H, W, C, KH, KW, sH, sW, pH, pW, dH, dW, OH, OW);
    }
}
