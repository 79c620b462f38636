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
// for bit): partial[chunk][col] sums the chunk's rows, then column_sums_finish adds the chunks.
// src/cpu/matmul.rs's `column_sums`, summed in another order.
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
