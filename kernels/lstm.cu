// The pointwise parts of an LSTM layer (PyTorch's equations, gate order i, f, g, o), fused so
// that each step's gates are read and written once, either one step per launch (the matrix
// products around them are matmul.cu's) or all steps in one persistent launch (below). Buffers
// are row-major: row r of a [rows][4H] gate buffer holds a_i, a_f, a_g, a_o. Each kernel names
// the function of src/cpu/lstm.rs it follows; src/gpu/lstm.rs holds their launchers.

__device__ __forceinline__ float sigmoid(float x) { return 1.0f / (1.0f + expf(-x)); }

// Layer 0's input term for a multi-hot input: W_ih·x_r is the sum of the columns of W_ih that
// row r's indices name, so
//   gates[r][j] = (Σ_k W_ih[j][indices[r·K + k]]) + b_ih[j] + b_hh[j].
// One thread per gate value. cpu::lstm::gather_input_term: row r's `per_step` columns of W_ih
// [4H][width], at indices[r·per_step..], summed in order, then b_ih, then b_hh (the same additions
// in the same order, so the same bits).
extern "C" __global__ void __launch_bounds__(256)
input_term(const float* weight_ih, const float* bias_ih, const float* bias_hh,
           const unsigned int* indices, float* gates, int rows, int gates_per_row, int width,
           int per_step) {
    long long idx = (long long)blockIdx.x * blockDim.x + threadIdx.x;
    if (idx >= (long long)rows * gates_per_row) return;
    int r = (int)(idx / gates_per_row), j = (int)(idx % gates_per_row);
    const unsigned int* step = indices + (long long)r * per_step;
    const float* row = weight_ih + (long long)j * width;
    float sum = row[step[0]];
    for (int k = 1; k < per_step; ++k) sum += row[step[k]];
    gates[idx] = sum + bias_ih[j] + bias_hh[j];
}

// The cell update of one (row, unit) from its pre-activations a[g·H + u]:
//   i, f, o = σ(a_i, a_f, a_o);  g = tanh(a_g);  c = f⊙c_prev + i⊙g;  h = o⊙tanh(c)
// a is overwritten with i, f, g, o for the backward pass.
__device__ __forceinline__ void cell_forward_at(float* a, int u, int units, float cell_prev,
                                                float* cell, float* tanh_cell, float* hidden) {
    float i = sigmoid(a[u]);
    float f = sigmoid(a[units + u]);
    float g = tanhf(a[2 * units + u]);
    float o = sigmoid(a[3 * units + u]);
    float c = f * cell_prev + i * g;
    float tc = tanhf(c);
    a[u] = i;
    a[units + u] = f;
    a[2 * units + u] = g;
    a[3 * units + u] = o;
    *cell = c;
    *tanh_cell = tc;
    *hidden = o * tc;
}

// The cell update backwards for one (row, unit), with dh = ∂L/∂h_t and *d_cell = ∂L/∂c_t through
// c_{t+1}:
//   dc = d_cell + dh⊙o⊙(1 − tanh²c)
//   da_i = dc⊙g⊙i(1−i);  da_f = dc⊙c_prev⊙f(1−f);  da_g = dc⊙i⊙(1−g²);  da_o = dh⊙tanh(c)⊙o(1−o)
// leaving dc⊙f in *d_cell for step t−1.
__device__ __forceinline__ void cell_backward_at(const float* a, float* da, int u, int units,
                                                 float cell_prev, float tanh_cell, float dh,
                                                 float* d_cell) {
    float i = a[u], f = a[units + u], g = a[2 * units + u], o = a[3 * units + u];
    float dc = *d_cell + dh * o * (1.0f - tanh_cell * tanh_cell);
    da[u] = dc * g * i * (1.0f - i);
    da[units + u] = dc * cell_prev * f * (1.0f - f);
    da[2 * units + u] = dc * i * (1.0f - g * g);
    da[3 * units + u] = dh * tanh_cell * o * (1.0f - o);
    *d_cell = dc * f;
}

// One step for n rows, given the pre-activations a = W_ih·x + b + W_hh·h_prev in `gates`.
// c_prev null is the zero state. One thread per (row, unit). cpu::lstm::lstm_cell_forward.
extern "C" __global__ void __launch_bounds__(256)
lstm_cell_forward(float* gates, const float* cell_prev, float* cell, float* tanh_cell,
                  float* hidden, int rows, int units) {
    int idx = blockIdx.x * blockDim.x + threadIdx.x;
    if (idx >= rows * units) return;
    int r = idx / units, u = idx % units;
    cell_forward_at(gates + (long long)r * 4 * units, u, units,
                    cell_prev ? cell_prev[idx] : 0.0f, cell + idx, tanh_cell + idx,
                    hidden + idx);
}

// One step backwards for n rows: d_cell carries ∂L/∂c between steps. c_prev null is the zero
// state. One thread per (row, unit). cpu::lstm::lstm_cell_backward.
extern "C" __global__ void __launch_bounds__(256)
lstm_cell_backward(const float* gates, const float* cell_prev, const float* tanh_cell,
                   const float* d_hidden, float* d_cell, float* d_gates, int rows, int units) {
    int idx = blockIdx.x * blockDim.x + threadIdx.x;
    if (idx >= rows * units) return;
    int r = idx / units, u = idx % units;
    long long row = (long long)r * 4 * units;
    cell_backward_at(gates + row, d_gates + row, u, units, cell_prev ? cell_prev[idx] : 0.0f,
                     tanh_cell[idx], d_hidden[idx], d_cell + idx);
}

// Layer 0's ∂L/∂W_ih [4H][width] for a multi-hot input: ∂L/∂W_ih[j][d] = Σ over every (row r,
// k) whose index is d of ∂L/∂a[r][j]. index_rows[index_offsets[d]..index_offsets[d+1]] lists
// those rows in ascending (r, k) order, a row once per occurrence (a counting sort on the host,
// gpu::IndexRows), so each sum runs in the order of cpu::lstm::input_term_backward, with no
// atomics. One thread per (j, d); consecutive threads take consecutive j, so the reads of a row
// coalesce.
extern "C" __global__ void __launch_bounds__(256)
input_term_backward(const float* d_gates, const unsigned int* index_offsets,
                    const unsigned int* index_rows, float* d_weight_ih, int gates_per_row,
                    int width) {
    long long idx = (long long)blockIdx.x * blockDim.x + threadIdx.x;
    if (idx >= (long long)gates_per_row * width) return;
    int d = (int)(idx / gates_per_row), j = (int)(idx % gates_per_row);
    float sum = 0.0f;
    for (unsigned int k = index_offsets[d]; k < index_offsets[d + 1]; ++k)
        sum += d_gates[(long long)index_rows[k] * gates_per_row + j];
    d_weight_ih[(long long)j * width + d] = sum;
}

// ---------------------------------------------------------------------------------------------
// Persistent recurrence (Diamos et al. 2016, "Persistent RNNs"): one launch runs all T steps of a
// layer. Each block owns `units_per_block` hidden units and keeps their slice of W_hh in shared
// memory for the whole window, so W_hh is read from global memory once per launch instead of
// once per step; a grid-wide barrier separates the steps. The launch must be cooperative (all
// blocks resident at once), or the barrier would wait forever.
//
// A step's recurrent product runs a chunk of `rows_per_chunk` batch rows at a time: the chunk's
// rows of x (h_{t−1}, or ∂L/∂a_{t+1} backwards) are staged whole in shared memory, then thread
// (share, row group, unit j) multiplies ROWS rows by the W_hh rows of unit j over its share of
// the k range with 128-bit shared loads: ROWS·4 outputs per thread forwards (the four gates),
// ROWS·1 backwards. The k shares' partial sums meet in shared memory and are added in share
// order, so the result does not depend on scheduling. src/gpu/persistent.rs plans the chunk and
// the number of shares (`k_split`) to fit the device's shared memory, with the same padding
// (padded_width, shared_stride) as here.

// Rows per thread of the products: forwards × 4 gates, backwards × 1 unit; 8 and 4 outputs.
#define FORWARD_ROWS 2
#define BACKWARD_ROWS 4

#ifndef MELODY_ON_HOST
__device__ __forceinline__ float* dynamic_shared_memory() {
    extern __shared__ float4 shared4[];
    return reinterpret_cast<float*>(shared4);
}
__device__ __forceinline__ void spin_pause() { __nanosleep(32); }
// A load that always goes to memory (never a register or L1 copy): for a value other blocks write.
__device__ __forceinline__ unsigned int load_volatile(unsigned int* p) {
    return *(volatile unsigned int*)p;
}
#endif

// All blocks wait here until every block has arrived. barrier[0] counts arrivals, barrier[1]
// is the generation; the last block to arrive resets the count and advances the generation.
__device__ void grid_barrier(unsigned int* barrier) {
    __syncthreads();
    if (threadIdx.x == 0) {
        unsigned int seen = load_volatile(barrier + 1);
        __threadfence();
        if (atomicAdd(barrier, 1u) == gridDim.x - 1) {
            atomicExch(barrier, 0u);
            __threadfence();
            atomicAdd(barrier + 1, 1u);
        } else {
            while (load_volatile(barrier + 1) == seen) spin_pause();
        }
        __threadfence();
    }
    __syncthreads();
}

// A product's k range, zero-padded to whole float4s in every share.
__device__ __forceinline__ int padded_width(int width, int k_split) {
    int quad = 4 * k_split;
    return (width + quad - 1) / quad * quad;
}

// The shared-memory row stride for padded rows: an odd number of float4s, so that the eight
// threads of a 128-bit load phase reading eight different rows hit eight different bank groups.
__device__ __forceinline__ int shared_stride(int padded) {
    return (padded / 4) % 2 == 0 ? padded + 4 : padded;
}

// tile[r][k] = x[first_row + r][k] for a chunk of rows, zero past the batch and past `width`.
// Consecutive threads take consecutive k: coalesced loads, past L1 (other blocks wrote x).
__device__ __forceinline__ void stage_rows(float* tile, int stride, int padded, const float* x,
                                           int x_stride, int width, int rows, int first_row,
                                           int batch) {
    for (int e = threadIdx.x; e < rows * padded; e += blockDim.x) {
        int r = e / padded, k = e % padded, row = first_row + r;
        bool inside = row < batch && k < width;
        tile[r * stride + k] = inside ? __ldcg(x + (long long)row * x_stride + k) : 0.0f;
    }
}

// partial[i][c] = Σ_{k_begin ≤ k < k_end} tile[first + i][k] · w[c·units_per_block + j][k], in
// k order: ROWS·COUNT independent FMA chains, each float4 of w reused by ROWS rows and each
// float4 of x by COUNT rows of w.
template <int ROWS, int COUNT>
__device__ __forceinline__ void product_share(const float* tile, const float* w, int stride,
                                              int first, int j, int units_per_block, int k_begin,
                                              int k_end, float (&partial)[ROWS][COUNT]) {
#pragma unroll
    for (int i = 0; i < ROWS; ++i)
#pragma unroll
        for (int c = 0; c < COUNT; ++c) partial[i][c] = 0.0f;
    for (int k = k_begin; k < k_end; k += 4) {
        float4 wv[COUNT];
#pragma unroll
        for (int c = 0; c < COUNT; ++c)
            wv[c] = *reinterpret_cast<const float4*>(w + (c * units_per_block + j) * stride + k);
#pragma unroll
        for (int i = 0; i < ROWS; ++i) {
            float4 xv = *reinterpret_cast<const float4*>(tile + (first + i) * stride + k);
#pragma unroll
            for (int c = 0; c < COUNT; ++c) {
                float p = partial[i][c];
                p += xv.x * wv[c].x;
                p += xv.y * wv[c].y;
                p += xv.z * wv[c].z;
                p += xv.w * wv[c].w;
                partial[i][c] = p;
            }
        }
    }
}

// The recurrent product of one chunk, step 1 of 2: stages the chunk's rows of x and leaves each
// thread's partial sums in `sums` [k_split][rows_per_chunk][units_per_block][COUNT]. The caller
// adds them up with chunk_sum after the block has synchronised.
template <int ROWS, int COUNT>
__device__ __forceinline__ void chunk_partials(const float* x, int x_stride, int width, int batch,
                                               int first_row, const float* w, float* tile,
                                               float* sums, int units_per_block,
                                               int rows_per_chunk, int k_split) {
    int padded = padded_width(width, k_split), stride = shared_stride(padded);
    stage_rows(tile, stride, padded, x, x_stride, width, rows_per_chunk, first_row, batch);
    __syncthreads();
    int tid = threadIdx.x;
    int groups = rows_per_chunk / ROWS * units_per_block;
    int j = tid % units_per_block, first = tid / units_per_block % (rows_per_chunk / ROWS) * ROWS;
    int share = tid / groups, share_width = padded / k_split;
    float partial[ROWS][COUNT];
    product_share<ROWS, COUNT>(tile, w, stride, first, j, units_per_block, share * share_width,
                               (share + 1) * share_width, partial);
#pragma unroll
    for (int i = 0; i < ROWS; ++i)
#pragma unroll
        for (int c = 0; c < COUNT; ++c)
            sums[((share * rows_per_chunk + first + i) * units_per_block + j) * COUNT + c] =
                partial[i][c];
    __syncthreads();
}

// Step 2 of 2: output c of (chunk row r, unit j), the k shares added in order.
template <int COUNT>
__device__ __forceinline__ float chunk_sum(const float* sums, int r, int j, int c,
                                           int units_per_block, int rows_per_chunk, int k_split) {
    float sum = 0.0f;
    for (int share = 0; share < k_split; ++share)
        sum += sums[((share * rows_per_chunk + r) * units_per_block + j) * COUNT + c];
    return sum;
}

// Forward over all steps. On entry gates [T][B][4H] holds the input terms W_ih·x_t + b; on exit
// the activations i, f, g, o; cell, tanh_cell, hidden [T][B][H] are written.
// cpu::lstm::lstm_forward (lstm_step at every t).
// Shared memory: the W_hh rows of the block's units, 4·units_per_block rows of H (padded), the
// staging tile of rows_per_chunk such rows, then the partial sums.
extern "C" __global__ void __launch_bounds__(256)
lstm_forward_persistent(float* gates, const float* weight_hh, float* cell, float* tanh_cell,
                        float* hidden, int steps, int batch, int units, int units_per_block,
                        int rows_per_chunk, int k_split, unsigned int* barrier) {
    int padded = padded_width(units, k_split), stride = shared_stride(padded);
    float* w = dynamic_shared_memory();
    float* tile = w + 4 * units_per_block * stride;
    float* sums = tile + rows_per_chunk * stride;
    int tid = threadIdx.x, threads = blockDim.x;
    int first_unit = blockIdx.x * units_per_block;
    // Row (g, j) of the slice is W_hh row g·H + first_unit + j.
    for (int e = tid; e < 4 * units_per_block * padded; e += threads) {
        int row = e / padded, k = e % padded;
        int g = row / units_per_block, u = first_unit + row % units_per_block;
        bool inside = u < units && k < units;
        w[row * stride + k] = inside ? weight_hh[(long long)(g * units + u) * units + k] : 0.0f;
    }
    __syncthreads();
    long long bh = (long long)batch * units;
    for (int t = 0; t < steps; ++t) {
        for (int first_row = 0; first_row < batch; first_row += rows_per_chunk) {
            // h_{−1} = 0: step 0 has no recurrent term.
            if (t > 0)
                chunk_partials<FORWARD_ROWS, 4>(hidden + (t - 1) * bh, units, units, batch,
                                                first_row, w, tile, sums, units_per_block,
                                                rows_per_chunk, k_split);
            for (int item = tid; item < rows_per_chunk * units_per_block; item += threads) {
                int r = item / units_per_block, j = item % units_per_block;
                int b = first_row + r, u = first_unit + j;
                if (b >= batch || u >= units) continue;
                float* a = gates + (t * (long long)batch + b) * 4 * units;
                if (t > 0)
#pragma unroll
                    for (int g = 0; g < 4; ++g)
                        a[g * units + u] +=
                            chunk_sum<4>(sums, r, j, g, units_per_block, rows_per_chunk, k_split);
                long long here = t * bh + (long long)b * units + u;
                cell_forward_at(a, u, units, t > 0 ? cell[here - bh] : 0.0f, cell + here,
                                tanh_cell + here, hidden + here);
            }
        }
        // Step t+1 reads every block's h_t; after the last step, the kernel's end suffices.
        if (t + 1 < steps) grid_barrier(barrier);
    }
}

// Backward over all steps, t = T−1 … 0. On entry d_hidden [T][B][H] holds ∂L/∂h_t from above
// and d_cell [B][H] zeros; on exit d_hidden holds the total ∂L/∂h_t (the recurrent term
// ∂L/∂a_{t+1}·W_hh added) and d_gates [T][B][4H] holds ∂L/∂a_t. The recurrence of
// cpu::lstm::lstm_backward (the weight gradients are matmul.cu products after it).
// Shared memory: the W_hh columns of the block's units, units_per_block rows of 4H (padded), the
// staging tile of rows_per_chunk rows of ∂L/∂a, then the partial sums.
extern "C" __global__ void __launch_bounds__(256)
lstm_backward_persistent(const float* gates, const float* cell, const float* tanh_cell,
                         const float* weight_hh, float* d_hidden, float* d_cell, float* d_gates,
                         int steps, int batch, int units, int units_per_block, int rows_per_chunk,
                         int k_split, unsigned int* barrier) {
    int h4 = 4 * units;
    int padded = padded_width(h4, k_split), stride = shared_stride(padded);
    float* w = dynamic_shared_memory();
    float* tile = w + units_per_block * stride;
    float* sums = tile + rows_per_chunk * stride;
    int tid = threadIdx.x, threads = blockDim.x;
    int first_unit = blockIdx.x * units_per_block;
    // Row j of the slice is column first_unit + j of W_hh [4H][H]; consecutive threads read
    // consecutive units of a W_hh row.
    for (int e = tid; e < units_per_block * padded; e += threads) {
        int k = e / units_per_block, j = e % units_per_block;
        int u = first_unit + j;
        bool inside = u < units && k < h4;
        w[j * stride + k] = inside ? weight_hh[(long long)k * units + u] : 0.0f;
    }
    __syncthreads();
    long long bh = (long long)batch * units;
    for (int t = steps - 1; t >= 0; --t) {
        for (int first_row = 0; first_row < batch; first_row += rows_per_chunk) {
            // Nothing after the window depends on h_{T−1} but the loss above it.
            bool recurrent = t < steps - 1;
            if (recurrent)
                chunk_partials<BACKWARD_ROWS, 1>(d_gates + (t + 1) * bh * 4, h4, h4, batch,
                                                 first_row, w, tile, sums, units_per_block,
                                                 rows_per_chunk, k_split);
            for (int item = tid; item < rows_per_chunk * units_per_block; item += threads) {
                int r = item / units_per_block, j = item % units_per_block;
                int b = first_row + r, u = first_unit + j;
                if (b >= batch || u >= units) continue;
                long long here = t * bh + (long long)b * units + u;
                long long row = (t * (long long)batch + b) * 4 * units;
                float dh = d_hidden[here];
                if (recurrent)
                    dh += chunk_sum<1>(sums, r, j, 0, units_per_block, rows_per_chunk, k_split);
                d_hidden[here] = dh;
                cell_backward_at(gates + row, d_gates + row, u, units,
                                 t > 0 ? cell[here - bh] : 0.0f, tanh_cell[here], dh,
                                 d_cell + (long long)b * units + u);
            }
        }
        // Step t−1 reads every block's ∂L/∂a_t; after step 0, the kernel's end suffices.
        if (t > 0) grid_barrier(barrier);
    }
}
