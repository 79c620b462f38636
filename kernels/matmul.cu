// Matrix product C = A·B (or C += A·B) on row-major buffers, with A and B given as strided views,
// so a transpose costs nothing, as cpu::matmul::matmul's `Mat` views: A(i, k) = a[i·a_row + k·a_col],
// B(k, j) = b[k·b_row + j·b_col], C(i, j) = c[i·ldc + j]. src/gpu/matmul.rs holds the launchers.
//
// Classic shared-memory tiling: a block of 16×16 threads computes a 64×64 tile of C, each thread
// a 4×4 strided sub-tile (rows ty + 16·m, columns tx + 16·n, so a warp reads shared memory
// without bank conflicts), walking K in slices of 16. Both tiles are padded by one column so that
// the stores of either load layout spread over the banks too. Edges are zero-padded, so any M, N,
// K works.

#define TILE 64
#define SLICE 16

extern "C" __global__ void __launch_bounds__(256)
matmul(const float* a, long long a_row, long long a_col, const float* b, long long b_row,
       long long b_col, float* c, long long ldc, int m, int n, int k, int accumulate) {
    __shared__ float a_tile[SLICE][TILE + 1];
    __shared__ float b_tile[SLICE][TILE + 1];
    int tx = threadIdx.x, ty = threadIdx.y;
    int tid = ty * 16 + tx;
    int row0 = blockIdx.x * TILE, col0 = blockIdx.y * TILE;  // rows along x: its limit is 2³¹ − 1
    float acc[4][4] = {};
    for (int k0 = 0; k0 < k; k0 += SLICE) {
        // Each thread loads 4 elements of each tile, consecutive threads along whichever
        // dimension is contiguous in memory, so global reads coalesce.
        for (int l = 0; l < 4; ++l) {
            int e = tid + 256 * l;
            int r, kk;
            if (a_col == 1) { kk = e % SLICE; r = e / SLICE; } else { r = e % TILE; kk = e / TILE; }
            int gi = row0 + r, gk = k0 + kk;
            a_tile[kk][r] = (gi < m && gk < k) ? a[gi * a_row + gk * a_col] : 0.0f;
            int cc;
            if (b_col == 1) { cc = e % TILE; kk = e / TILE; } else { kk = e % SLICE; cc = e / SLICE; }
            int gj = col0 + cc;
            gk = k0 + kk;
            b_tile[kk][cc] = (gk < k && gj < n) ? b[gk * b_row + gj * b_col] : 0.0f;
        }
        __syncthreads();
        #pragma unroll
        for (int kk = 0; kk < SLICE; ++kk) {
            float av[4], bv[4];
            #pragma unroll
            for (int q = 0; q < 4; ++q) {
                av[q] = a_tile[kk][ty + 16 * q];
                bv[q] = b_tile[kk][tx + 16 * q];
            }
            #pragma unroll
            for (int p = 0; p < 4; ++p)
                #pragma unroll
                for (int q = 0; q < 4; ++q) acc[p][q] += av[p] * bv[q];
        }
        __syncthreads();
    }
    for (int p = 0; p < 4; ++p) {
        int i = row0 + ty + 16 * p;
        if (i >= m) continue;
        for (int q = 0; q < 4; ++q) {
            int j = col0 + tx + 16 * q;
            if (j >= n) continue;
            float* out = c + i * ldc + j;
            *out = accumulate ? *out + acc[p][q] : acc[p][q];
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Weight gradients: ∂L/∂W [m][n] = Σ_r ∂L/∂y[r]ᵀ·x[r], the sum over all k = T·B rows of the outer
// products of a layer's output gradient d_out [k][m] and its input x [k][n] (both row-major, rows
// `ld_out` and `ld_x` floats apart). M and N are a layer's widths, K is long, so a tiling of the
// output alone gives a few blocks walking K serially: here K is split too (split-K), each block
// summing its share of rows into its own partial product, and column_sums_finish adds the
// partials in split order, so a run repeats bit for bit. cpu::matmul::matmul(d_outᵀ, x).
//
// A block of 256 threads computes a 128×128 tile of one partial, each thread 8×8 outputs (rows
// 4·ty + {0..3} and 64 + 4·ty + {0..3}, columns likewise by tx), walking its rows in slices of 8
// through two shared-memory buffers: the next slice is loaded while this one is multiplied.
// Slices move as 16-byte vectors where the strides and pointers allow, with cp.async on sm_80+
// (the copy bypasses the registers and overlaps the arithmetic), and element by element at the
// ragged edges.

#define WG_TILE 128
#define WG_SLICE 8

// 16 bytes from global to shared memory, asynchronously where the device can.
__device__ __forceinline__ void copy_vector(float* to, const float* from) {
#if defined(__CUDA_ARCH__) && __CUDA_ARCH__ >= 800
    unsigned address = (unsigned)__cvta_generic_to_shared(to);
    asm volatile("cp.async.cg.shared.global [%0], [%1], 16;\n" ::"r"(address), "l"(from));
#else
    *reinterpret_cast<float4*>(to) = *reinterpret_cast<const float4*>(from);
#endif
}

// Closes the group of copies issued since the last call.
__device__ __forceinline__ void copies_issued() {
#if defined(__CUDA_ARCH__) && __CUDA_ARCH__ >= 800
    asm volatile("cp.async.commit_group;\n" ::);
#endif
}

// Waits until at most `pending` (0 or 1) groups of copies are still in flight.
__device__ __forceinline__ void copies_landed(int pending) {
#if defined(__CUDA_ARCH__) && __CUDA_ARCH__ >= 800
    if (pending) asm volatile("cp.async.wait_group 1;\n" ::);
    else asm volatile("cp.async.wait_group 0;\n" ::);
#endif
}

// One slice [WG_SLICE][WG_TILE] of an operand into shared memory: `rows` and `cols` of it are
// in the matrix (from `from`, rows `ld` apart), the rest is zero. Thread t loads row t / 32,
// columns 4·(t % 32) + {0..3}: a warp reads 512 contiguous bytes.
__device__ __forceinline__ void load_slice(float* slice, const float* from, long long ld,
                                           int rows, int cols, bool vectors) {
    int r = threadIdx.x / 32, c = 4 * (threadIdx.x % 32);
    float* to = slice + r * WG_TILE + c;
    if (vectors && r < rows && c + 4 <= cols) {
        copy_vector(to, from + r * ld + c);
        return;
    }
    for (int q = 0; q < 4; ++q) to[q] = (r < rows && c + q < cols) ? from[r * ld + c + q] : 0.0f;
}

extern "C" __global__ void __launch_bounds__(256)
weight_gradient(const float* d_out, long long ld_out, const float* x, long long ld_x,
                float* partials, int m, int n, int k, int rows_per_split) {
    __shared__ __align__(16) float a_slices[2][WG_SLICE][WG_TILE];
    __shared__ __align__(16) float b_slices[2][WG_SLICE][WG_TILE];
    int tx = threadIdx.x % 16, ty = threadIdx.x / 16;
    int row0 = blockIdx.x * WG_TILE, col0 = blockIdx.y * WG_TILE;
    int first = blockIdx.z * rows_per_split, last = min(k, first + rows_per_split);
    bool vectors = (ld_out % 4 == 0) && (ld_x % 4 == 0) &&
                   (((unsigned long long)d_out | (unsigned long long)x) % 16 == 0);
    auto load = [&](int buffer, int r) {
        int rows = min(WG_SLICE, last - r);
        load_slice(&a_slices[buffer][0][0], d_out + r * ld_out + row0, ld_out, rows, m - row0,
                   vectors);
        load_slice(&b_slices[buffer][0][0], x + r * ld_x + col0, ld_x, rows, n - col0, vectors);
        copies_issued();
    };
    float acc[8][8] = {};
    int slices = (last - first + WG_SLICE - 1) / WG_SLICE;
    load(0, first);
    for (int s = 0; s < slices; ++s) {
        int buffer = s % 2;
        // The other buffer was last read in the previous slice, which every thread has left.
        if (s + 1 < slices) load(1 - buffer, first + (s + 1) * WG_SLICE);
        copies_landed(s + 1 < slices);
        __syncthreads();
        #pragma unroll
        for (int kk = 0; kk < WG_SLICE; ++kk) {
            float av[8], bv[8];
            #pragma unroll
            for (int half = 0; half < 2; ++half) {
                float4 a4 = *reinterpret_cast<const float4*>(&a_slices[buffer][kk][64 * half + 4 * ty]);
                float4 b4 = *reinterpret_cast<const float4*>(&b_slices[buffer][kk][64 * half + 4 * tx]);
                av[4 * half] = a4.x, av[4 * half + 1] = a4.y, av[4 * half + 2] = a4.z, av[4 * half + 3] = a4.w;
                bv[4 * half] = b4.x, bv[4 * half + 1] = b4.y, bv[4 * half + 2] = b4.z, bv[4 * half + 3] = b4.w;
            }
            #pragma unroll
            for (int p = 0; p < 8; ++p)
                #pragma unroll
                for (int q = 0; q < 8; ++q) acc[p][q] += av[p] * bv[q];
        }
        __syncthreads();
    }
    float* out = partials + (long long)blockIdx.z * m * n;
    for (int p = 0; p < 8; ++p) {
        int i = row0 + 64 * (p / 4) + 4 * ty + p % 4;
        if (i >= m) continue;
        for (int q = 0; q < 8; ++q) {
            int j = col0 + 64 * (q / 4) + 4 * tx + q % 4;
            if (j < n) out[(long long)i * n + j] = acc[p][q];
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Biases: added to every row of a product's output, and their gradient, the column sums of the
// output's gradient.

// out[r][j] = a[j] (+ b[j] when b is not null): the bias terms before a product is added.
// src/cpu/matmul.rs's `broadcast_rows`.
extern "C" __global__ void __launch_bounds__(256)
broadcast_rows(float* out, const float* a, const float* b, int rows, int cols) {
    long long idx = (long long)blockIdx.x * blockDim.x + threadIdx.x;
    if (idx >= (long long)rows * cols) return;
    int j = (int)(idx % cols);
    out[idx] = b ? a[j] + b[j] : a[j];
}

// Column sums of x [rows][cols] in two deterministic passes (no atomics, so a run repeats bit
// for bit): partial[chunk][col] sums the chunk's rows, then column_sums_finish adds the chunks
// (and weight_gradient's partial products). src/cpu/matmul.rs's `column_sums`, summed in another
// order.
extern "C" __global__ void __launch_bounds__(256)
column_sums_partial(const float* x, float* partial, int rows, int cols, int rows_per_chunk) {
    int col = blockIdx.x * blockDim.x + threadIdx.x;
    int chunk = blockIdx.y;
    if (col >= cols) return;
    int first = chunk * rows_per_chunk;
    int last = min(rows, first + rows_per_chunk);
    float sum = 0.0f;
    for (int r = first; r < last; ++r) sum += x[(long long)r * cols + col];
    partial[(long long)chunk * cols + col] = sum;
}

extern "C" __global__ void __launch_bounds__(256)
column_sums_finish(const float* partial, float* out, int chunks, int cols) {
    int col = blockIdx.x * blockDim.x + threadIdx.x;
    if (col >= cols) return;
    float sum = 0.0f;
    for (int k = 0; k < chunks; ++k) sum += partial[(long long)k * cols + col];
    out[col] = sum;
}
