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
//
// With `tf32` (engine --tf32, sm_80+) each warp instead feeds the tensor cores: a 64×32 share of
// the tile as 4×4 mma.sync m16n8k8 products per slice, operands rounded to TF32 (10 mantissa
// bits) by cvt.rna.tf32.f32, sums in fp32. The host emulation's twin rounds the operands the same
// way and multiplies in fp32 (round_tf32); src/gpu/matmul.rs never asks below sm_80.

#define WG_TILE 128
#define WG_SLICE 8
// A slice's row in shared memory: 8 floats of padding put the mma fragments' rows (t, t + 4 for
// t < 4) in different banks.
#define WG_STRIDE (WG_TILE + 8)

#if defined(__CUDA_ARCH__) && __CUDA_ARCH__ >= 800
#define TENSOR_CORES 1
#else
#define TENSOR_CORES 0
#endif

// x rounded to TF32 as cvt.rna.tf32.f32 does: to nearest with ties away from zero, keeping 10 of
// the 23 mantissa bits (adding half of the dropped part to the magnitude, then truncating);
// infinities and NaNs unchanged.
__device__ __forceinline__ float round_tf32(float x) {
    unsigned int bits = __float_as_uint(x);
    if ((bits & 0x7f800000u) != 0x7f800000u) bits = (bits + 0x1000u) & ~0x1fffu;
    return __uint_as_float(bits);
}

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

// One slice [WG_SLICE][WG_TILE] (rows WG_STRIDE apart) of an operand into shared memory: `rows`
// and `cols` of it are in the matrix (from `from`, rows `ld` apart), the rest is zero. Thread t
// loads row t / 32, columns 4·(t % 32) + {0..3}: a warp reads 512 contiguous bytes.
__device__ __forceinline__ void load_slice(float* slice, const float* from, long long ld,
                                           int rows, int cols, bool vectors) {
    int r = threadIdx.x / 32, c = 4 * (threadIdx.x % 32);
    float* to = slice + r * WG_STRIDE + c;
    if (vectors && r < rows && c + 4 <= cols) {
        copy_vector(to, from + r * ld + c);
        return;
    }
    for (int q = 0; q < 4; ++q) to[q] = (r < rows && c + q < cols) ? from[r * ld + c + q] : 0.0f;
}

// One slice's outer products into thread (tx, ty)'s 8×8 outputs (rows 4·ty + {0..3} and
// 64 + 4·ty + {0..3}, columns likewise by tx), in fp32; with Tf32, of operands rounded to TF32
// (the host emulation's twin of slice_mma).
template <bool Tf32>
__device__ __forceinline__ void slice_fma(float (&acc)[8][8], const float* a, const float* b) {
    int tx = threadIdx.x % 16, ty = threadIdx.x / 16;
    #pragma unroll
    for (int kk = 0; kk < WG_SLICE; ++kk) {
        float av[8], bv[8];
        #pragma unroll
        for (int half = 0; half < 2; ++half) {
            float4 a4 = *reinterpret_cast<const float4*>(&a[kk * WG_STRIDE + 64 * half + 4 * ty]);
            float4 b4 = *reinterpret_cast<const float4*>(&b[kk * WG_STRIDE + 64 * half + 4 * tx]);
            av[4 * half] = a4.x, av[4 * half + 1] = a4.y, av[4 * half + 2] = a4.z, av[4 * half + 3] = a4.w;
            bv[4 * half] = b4.x, bv[4 * half + 1] = b4.y, bv[4 * half + 2] = b4.z, bv[4 * half + 3] = b4.w;
        }
        if (Tf32) {
            #pragma unroll
            for (int q = 0; q < 8; ++q) av[q] = round_tf32(av[q]), bv[q] = round_tf32(bv[q]);
        }
        #pragma unroll
        for (int p = 0; p < 8; ++p)
            #pragma unroll
            for (int q = 0; q < 8; ++q) acc[p][q] += av[p] * bv[q];
    }
}

// One slice on the tensor cores: warp w the rows 64·(w / 4) + [0, 64) and columns
// 32·(w % 4) + [0, 32) of the tile, as 4×4 m16n8k8 products; lane (g, t) = (lane / 4, lane % 4)
// holds acc[2·mt + h][2·nt + e] = C(16·mt + 8·h + g, 8·nt + 2·t + e), the mma's D fragment.
__device__ __forceinline__ void slice_mma(float (&acc)[8][8], const float* a, const float* b) {
#if TENSOR_CORES
    int warp = threadIdx.x / 32, g = threadIdx.x % 32 / 4, t = threadIdx.x % 4;
    int row0 = 64 * (warp / 4), col0 = 32 * (warp % 4);
    auto tf32 = [](float x) {
        unsigned int bits;
        asm("cvt.rna.tf32.f32 %0, %1;\n" : "=r"(bits) : "f"(x));
        return bits;
    };
    // A(i, k) = a[k][i] (the slice holds d_out's rows), B(k, j) = b[k][j]. B's fragments are
    // kept for the slice, A's loaded per row of tiles (fewer registers live).
    unsigned int bf[4][2];
    #pragma unroll
    for (int nt = 0; nt < 4; ++nt) {
        int j = col0 + 8 * nt + g;
        bf[nt][0] = tf32(b[t * WG_STRIDE + j]);
        bf[nt][1] = tf32(b[(t + 4) * WG_STRIDE + j]);
    }
    #pragma unroll
    for (int mt = 0; mt < 4; ++mt) {
        int i = row0 + 16 * mt + g;
        unsigned int af[4] = {tf32(a[t * WG_STRIDE + i]), tf32(a[t * WG_STRIDE + i + 8]),
                              tf32(a[(t + 4) * WG_STRIDE + i]),
                              tf32(a[(t + 4) * WG_STRIDE + i + 8])};
        #pragma unroll
        for (int nt = 0; nt < 4; ++nt)
            asm("mma.sync.aligned.m16n8k8.row.col.f32.tf32.tf32.f32 {%0, %1, %2, %3}, "
                "{%4, %5, %6, %7}, {%8, %9}, {%0, %1, %2, %3};\n"
                : "+f"(acc[2 * mt][2 * nt]), "+f"(acc[2 * mt][2 * nt + 1]),
                  "+f"(acc[2 * mt + 1][2 * nt]), "+f"(acc[2 * mt + 1][2 * nt + 1])
                : "r"(af[0]), "r"(af[1]), "r"(af[2]), "r"(af[3]), "r"(bf[nt][0]),
                  "r"(bf[nt][1]));
    }
#endif
}

extern "C" __global__ void __launch_bounds__(256)
weight_gradient(const float* d_out, long long ld_out, const float* x, long long ld_x,
                float* partials, int m, int n, int k, int rows_per_split, int tf32) {
    __shared__ __align__(16) float a_slices[2][WG_SLICE][WG_STRIDE];
    __shared__ __align__(16) float b_slices[2][WG_SLICE][WG_STRIDE];
    int row0 = blockIdx.x * WG_TILE, col0 = blockIdx.y * WG_TILE;
    int first = blockIdx.z * rows_per_split, last = min(k, first + rows_per_split);
    bool vectors = (ld_out % 4 == 0) && (ld_x % 4 == 0) &&
                   (((unsigned long long)d_out | (unsigned long long)x) % 16 == 0);
    bool mma = TENSOR_CORES && tf32;
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
        const float* a = &a_slices[buffer][0][0];
        const float* b = &b_slices[buffer][0][0];
        if (mma) slice_mma(acc, a, b);
        else if (tf32) slice_fma<true>(acc, a, b);
        else slice_fma<false>(acc, a, b);
        __syncthreads();
    }
    // Where each accumulator's output lies: slice_fma's 8×8 per thread, or slice_mma's fragments.
    int tx = threadIdx.x % 16, ty = threadIdx.x / 16;
    int warp = threadIdx.x / 32, g = threadIdx.x % 32 / 4, t = threadIdx.x % 4;
    float* out = partials + (long long)blockIdx.z * m * n;
    for (int p = 0; p < 8; ++p) {
        int i = row0 + (mma ? 64 * (warp / 4) + 16 * (p / 2) + 8 * (p % 2) + g
                            : 64 * (p / 4) + 4 * ty + p % 4);
        if (i >= m) continue;
        for (int q = 0; q < 8; ++q) {
            int j = col0 + (mma ? 32 * (warp % 4) + 8 * (q / 2) + 2 * t + q % 2
                                : 64 * (q / 4) + 4 * tx + q % 4);
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
