// Biases: added to every row of a product's output, and their gradient, the column sums of the
// output's gradient.

// out[r][j] = a[j] (+ b[j] when b is not null): the bias terms before a product is added.
extern "C" __global__ void __launch_bounds__(256)
broadcast_rows(float* out, const float* a, const float* b, int rows, int cols) {
    long long idx = (long long)blockIdx.x * blockDim.x + threadIdx.x;
    if (idx >= (long long)rows * cols) return;
    int j = (int)(idx % cols);
    out[idx] = b ? a[j] + b[j] : a[j];
}

// Column sums of x [rows][cols] in two deterministic passes (no atomics, so a run repeats bit
// for bit): partial[chunk][col] sums the chunk's rows, then column_sums_finish adds the chunks.
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
