// The pointwise parts of an LSTM layer (PyTorch's equations, gate order i, f, g, o), fused so
// that each step's gates are read and written once, either one step per launch (the matrix
// products around them are matmul.cu's) or all steps in one persistent launch (below). Buffers
// are row-major: row r of a [rows][4H] gate buffer holds a_i, a_f, a_g, a_o. Each kernel names
// the function of src/cpu/lstm.rs it follows; src/gpu/lstm.rs holds their launchers.

__device__ __forceinline__ float sigmoid(float x) { return 1.0f / (1.0f + expf(-x)); }

// Layer 0's input term for a one-hot input: W_ih·onehot(s) is column s of W_ih [4H][V], so
//   gates[r][j] = W_ih[j][tokens[r]] + b_ih[j] + b_hh[j].
// One thread per gate value. cpu::lstm::input_term for tokens (its table, gathered).
extern "C" __global__ void __launch_bounds__(256)
input_term(const float* weight_ih, const float* bias_ih, const float* bias_hh,
           const unsigned int* tokens, float* gates, int rows, int gates_per_row, int vocab) {
    long long idx = (long long)blockIdx.x * blockDim.x + threadIdx.x;
    if (idx >= (long long)rows * gates_per_row) return;
    int r = (int)(idx / gates_per_row), j = (int)(idx % gates_per_row);
    gates[idx] = weight_ih[(long long)j * vocab + tokens[r]] + bias_ih[j] + bias_hh[j];
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

// Layer 0's ∂L/∂W_ih [4H][V] for a one-hot input: ∂L/∂W_ih[j][s] = Σ over rows r with
// tokens[r] = s of ∂L/∂a[r][j]. token_rows[token_offsets[s]..token_offsets[s+1]] lists those rows
// in ascending order (a counting sort on the host, gpu::TokenRows), so each sum runs in the order
// of cpu::lstm::input_term_backward, with no atomics. One thread per (j, s); consecutive threads
// take consecutive j, so the reads of a row coalesce.
extern "C" __global__ void __launch_bounds__(256)
input_term_backward(const float* d_gates, const unsigned int* token_offsets,
                    const unsigned int* token_rows, float* d_weight_ih, int gates_per_row,
                    int vocab) {
    long long idx = (long long)blockIdx.x * blockDim.x + threadIdx.x;
    if (idx >= (long long)gates_per_row * vocab) return;
    int s = (int)(idx / gates_per_row), j = (int)(idx % gates_per_row);
    float sum = 0.0f;
    for (unsigned int k = token_offsets[s]; k < token_offsets[s + 1]; ++k)
        sum += d_gates[(long long)token_rows[k] * gates_per_row + j];
    d_weight_ih[(long long)j * vocab + s] = sum;
}

// ---------------------------------------------------------------------------------------------
// Persistent recurrence (Diamos et al. 2016, "Persistent RNNs"): one launch runs all T steps of a
// layer. Each block owns `units_per_block` hidden units and keeps their slice of W_hh in shared
// memory for the whole window, so W_hh is read from global memory once per launch instead of
// once per step; a grid-wide barrier separates the steps. The launch must be cooperative (all
// blocks resident at once), or the barrier would wait forever.
//
// Thread (r, j) of a block, r = tid / units_per_block, j = tid % units_per_block, handles hidden
// unit u = first_unit + j for batch rows r, r + rows_per_chunk, …; the recurrent product for a
// chunk of rows is staged through shared memory in slices of SLICE_K columns.

#define SLICE_K 32

#ifndef MELODY_ON_HOST
__device__ __forceinline__ float* dynamic_shared_memory() {
    extern __shared__ float shared[];
    return shared;
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

// The rows of x [rows][x_stride] staged in a tile: slice k0 of the chunk of rows from first_row,
// rows_per_chunk × SLICE_K values, at most SLICE_K per thread (threads = rows_per_chunk · units
// per block), loaded into registers so that the next slice's loads are in flight while this
// one is multiplied. Rows written by other blocks in the previous step: loaded past L1 (__ldcg).
struct Staged {
    float values[SLICE_K];
};

__device__ __forceinline__ void load_slice(Staged& staged, const float* x, int x_stride, int rows,
                                           int first_row, int width, int k0, int tile_elements) {
    int tid = threadIdx.x, threads = blockDim.x;
#pragma unroll
    for (int l = 0; l < SLICE_K; ++l) {
        // Consecutive threads take consecutive k of a row: coalesced loads.
        int e = tid + l * threads;
        int row = first_row + e / SLICE_K, k = k0 + e % SLICE_K;
        bool inside = e < tile_elements && row < rows && k < width;
        staged.values[l] = inside ? __ldcg(x + (long long)row * x_stride + k) : 0.0f;
    }
}

// acc[c] = Σ_k x[row][k] · w[c·units_per_block + j][k] over k < width, for the thread's row and
// unit j: x rows from global memory in SLICE_K-wide tiles, w the block's resident slice with rows
// of `w_stride` floats. Four partial sums per output keep four FMA chains in flight.
template <int COUNT>
__device__ void chunk_product(const float* x, int x_stride, int rows, int first_row, int width,
                              const float* w, int w_stride, int units_per_block, float* tile,
                              float* acc) {
    int tid = threadIdx.x, threads = blockDim.x;
    int rows_per_chunk = threads / units_per_block;
    int tile_elements = rows_per_chunk * SLICE_K;
    int r = tid / units_per_block, j = tid % units_per_block;
    float partial[COUNT][4];
#pragma unroll
    for (int c = 0; c < COUNT; ++c)
#pragma unroll
        for (int q = 0; q < 4; ++q) partial[c][q] = 0.0f;
    Staged staged;
    load_slice(staged, x, x_stride, rows, first_row, width, 0, tile_elements);
    for (int k0 = 0; k0 < width; k0 += SLICE_K) {
#pragma unroll
        for (int l = 0; l < SLICE_K; ++l) {
            int e = tid + l * threads;
            if (e < tile_elements) tile[(e / SLICE_K) * (SLICE_K + 1) + e % SLICE_K] = staged.values[l];
        }
        __syncthreads();
        if (k0 + SLICE_K < width)
            load_slice(staged, x, x_stride, rows, first_row, width, k0 + SLICE_K, tile_elements);
        int slice = min(SLICE_K, width - k0);
        // Unrolled by the four partial sums, so that registers are indexed by constants only.
        for (int kk = 0; kk < slice; kk += 4) {
#pragma unroll
            for (int q = 0; q < 4; ++q) {
                if (kk + q >= slice) break;
                float xv = tile[r * (SLICE_K + 1) + kk + q];
#pragma unroll
                for (int c = 0; c < COUNT; ++c)
                    partial[c][q] += xv * w[(c * units_per_block + j) * w_stride + k0 + kk + q];
            }
        }
        __syncthreads();
    }
#pragma unroll
    for (int c = 0; c < COUNT; ++c)
        acc[c] = (partial[c][0] + partial[c][1]) + (partial[c][2] + partial[c][3]);
}

// Forward over all steps. On entry gates [T][B][4H] holds the input terms W_ih·x_t + b; on exit
// the activations i, f, g, o; cell, tanh_cell, hidden [T][B][H] are written.
// cpu::lstm::lstm_forward (lstm_step at every t).
// Shared memory: the W_hh rows of the block's units, 4·units_per_block rows of H (+1 padding),
// then the staging tile, rows_per_chunk × (SLICE_K + 1).
extern "C" __global__ void __launch_bounds__(128)
lstm_forward_persistent(float* gates, const float* weight_hh, float* cell, float* tanh_cell,
                        float* hidden, int steps, int batch, int units, int units_per_block,
                        unsigned int* barrier) {
    float* w = dynamic_shared_memory();
    int w_stride = units + 1;
    float* tile = w + 4 * units_per_block * w_stride;
    int tid = threadIdx.x, threads = blockDim.x;
    int first_unit = blockIdx.x * units_per_block;
    // Row (g, j) of the slice is W_hh row g·H + first_unit + j.
    for (int e = tid; e < 4 * units_per_block * units; e += threads) {
        int row = e / units, k = e % units;
        int g = row / units_per_block, j = row % units_per_block;
        int u = first_unit + j;
        w[row * w_stride + k] = u < units ? weight_hh[(long long)(g * units + u) * units + k] : 0.0f;
    }
    __syncthreads();
    int rows_per_chunk = threads / units_per_block;
    int r = tid / units_per_block, u = first_unit + tid % units_per_block;
    long long bh = (long long)batch * units;
    for (int t = 0; t < steps; ++t) {
        for (int first_row = 0; first_row < batch; first_row += rows_per_chunk) {
            float acc[4] = {0.0f, 0.0f, 0.0f, 0.0f};
            // h_{−1} = 0: step 0 has no recurrent term.
            if (t > 0)
                chunk_product<4>(hidden + (t - 1) * bh, units, batch, first_row, units, w,
                                 w_stride, units_per_block, tile, acc);
            int b = first_row + r;
            if (b >= batch || u >= units) continue;
            float* a = gates + (t * (long long)batch + b) * 4 * units;
#pragma unroll
            for (int g = 0; g < 4; ++g) a[g * units + u] += acc[g];
            long long here = t * bh + (long long)b * units + u;
            cell_forward_at(a, u, units, t > 0 ? cell[here - bh] : 0.0f, cell + here,
                            tanh_cell + here, hidden + here);
        }
        // Step t+1 reads every block's h_t; after the last step, the kernel's end suffices.
        if (t + 1 < steps) grid_barrier(barrier);
    }
}

// Backward over all steps, t = T−1 … 0. On entry d_hidden [T][B][H] holds ∂L/∂h_t from above
// and d_cell [B][H] zeros; on exit d_hidden holds the total ∂L/∂h_t (the recurrent term
// ∂L/∂a_{t+1}·W_hh added) and d_gates [T][B][4H] holds ∂L/∂a_t. The recurrence of
// cpu::lstm::lstm_backward (the weight gradients are matmul.cu products after it).
// Shared memory: the W_hh columns of the block's units, units_per_block rows of 4H (+1), then
// the staging tile.
extern "C" __global__ void __launch_bounds__(128)
lstm_backward_persistent(const float* gates, const float* cell, const float* tanh_cell,
                         const float* weight_hh, float* d_hidden, float* d_cell, float* d_gates,
                         int steps, int batch, int units, int units_per_block,
                         unsigned int* barrier) {
    float* w = dynamic_shared_memory();
    int h4 = 4 * units, w_stride = h4 + 1;
    float* tile = w + units_per_block * w_stride;
    int tid = threadIdx.x, threads = blockDim.x;
    int first_unit = blockIdx.x * units_per_block;
    // Row j of the slice is column first_unit + j of W_hh [4H][H]; consecutive threads read
    // consecutive units of a W_hh row.
    for (int e = tid; e < units_per_block * h4; e += threads) {
        int k = e / units_per_block, j = e % units_per_block;
        int u = first_unit + j;
        w[j * w_stride + k] = u < units ? weight_hh[(long long)k * units + u] : 0.0f;
    }
    __syncthreads();
    int rows_per_chunk = threads / units_per_block;
    int r = tid / units_per_block, u = first_unit + tid % units_per_block;
    long long bh = (long long)batch * units;
    for (int t = steps - 1; t >= 0; --t) {
        for (int first_row = 0; first_row < batch; first_row += rows_per_chunk) {
            float recurrent = 0.0f;
            // Nothing after the window depends on h_{T−1} but the loss above it.
            if (t < steps - 1)
                chunk_product<1>(d_gates + (t + 1) * bh * 4, h4, batch, first_row, h4, w,
                                 w_stride, units_per_block, tile, &recurrent);
            int b = first_row + r;
            if (b >= batch || u >= units) continue;
            long long here = t * bh + (long long)b * units + u;
            long long row = (t * (long long)batch + b) * 4 * units;
            float dh = d_hidden[here] + recurrent;
            d_hidden[here] = dh;
            cell_backward_at(gates + row, d_gates + row, u, units, t > 0 ? cell[here - bh] : 0.0f,
                             tanh_cell[here], dh, d_cell + (long long)b * units + u);
        }
        // Step t−1 reads every block's ∂L/∂a_t; after step 0, the kernel's end suffices.
        if (t > 0) grid_barrier(barrier);
    }
}
