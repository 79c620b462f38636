// The head of the model, as cpu::head: one fused kernel for a training step (dropout on the
// last LSTM layer's h, the dense layer, softmax cross-entropy and every gradient, the dense
// layer's as one partial sum per block), and a plain softmax for inference. One warp per row:
// its lanes split the row's units and symbols, and exchange maxima and sums by shuffles.
// src/gpu/head.rs holds the launchers.

#define FULL_WARP 0xffffffffu

// cpu::dropout_keeps: splitmix64's finaliser over (seed, step, index), kept when
// the top 32 bits reach `threshold` = ⌈p·2³²⌉. The same bits as the CPU, so both draw one mask.
__device__ __forceinline__ bool dropout_keeps(unsigned long long seed, unsigned long long step,
                                              unsigned long long index,
                                              unsigned long long threshold) {
    unsigned long long x = seed ^ (step * 0x9E3779B97F4A7C15ull) ^ (index * 0xD1B54A32D192ED03ull);
    x = (x ^ (x >> 30)) * 0xBF58476D1CE4E5B9ull;
    x = (x ^ (x >> 27)) * 0x94D049BB133111EBull;
    x ^= x >> 31;
    return (x >> 32) >= threshold;
}

// The warp's largest `value` and its `index`, in every lane; the first index where several lanes
// hold the largest, as cpu::head::softmax_in_place's first maximum.
__device__ __forceinline__ void warp_argmax(float& value, int& index) {
    for (int offset = warpSize / 2; offset > 0; offset /= 2) {
        float other = __shfl_xor_sync(FULL_WARP, value, offset);
        int other_index = __shfl_xor_sync(FULL_WARP, index, offset);
        if (other > value || (other == value && other_index < index)) {
            value = other;
            index = other_index;
        }
    }
}

// The warp's sum of x, the same bits in every lane (each pair is added in both orders, and
// float addition commutes).
__device__ __forceinline__ float warp_sum(float x) {
    for (int offset = warpSize / 2; offset > 0; offset /= 2)
        x += __shfl_xor_sync(FULL_WARP, x, offset);
    return x;
}

// The lanes' shares of a row of `vocab` values (lane l holds v = l, l + 32, …) replaced by
// exp(x − max), the max and first argmax in `max` and `argmax`; returns Σ exp(x − max). Every
// lane reads the whole row's first element, which the caller has made visible to it.
__device__ __forceinline__ float exp_shifted(float* row, int vocab, int lane, float& max,
                                             int& argmax) {
    // Each lane starts from element 0, which is the first maximum unless a larger one follows.
    max = row[0];
    argmax = 0;
    for (int v = lane; v < vocab; v += warpSize)
        if (row[v] > max) max = row[v], argmax = v;
    warp_argmax(max, argmax);
    __syncwarp();  // every lane has read row[0]
    float sum = 0.0f;
    for (int v = lane; v < vocab; v += warpSize) {
        row[v] = expf(row[v] - max);
        sum += row[v];
    }
    return warp_sum(sum);
}

#ifndef MELODY_ON_HOST
// The block's dynamic shared memory (as kernels/lstm.cu's: each file is compiled alone; the host
// emulation defines its own).
__device__ __forceinline__ float* dynamic_shared_memory() {
    extern __shared__ float4 shared4[];
    return reinterpret_cast<float*>(shared4);
}
#endif

// One loss row r by one warp: h ⊙ m into `dropped` [H] and ∂L/∂logits into `d_row` [V] (both in
// shared memory); where `writes_outputs`, also its ∂L/∂logits, ∂L/∂h, loss and correctness into
// the global outputs (see head_forward_backward).
__device__ __forceinline__ void head_row(const float* hidden, const float* weight,
                                         const float* bias, unsigned int target, float* dropped,
                                         float* d_row, float* d_logits, float* d_hidden,
                                         double* results, int r, int rows, int units, int vocab,
                                         int lane, bool writes_outputs, unsigned long long seed,
                                         unsigned long long step, unsigned long long threshold,
                                         float scale, float inv_count) {
    long long at = (long long)r * units;
    for (int j = lane; j < units; j += warpSize)
        dropped[j] = hidden[at + j] * (dropout_keeps(seed, step, at + j, threshold) ? scale : 0.0f);
    __syncwarp();
    // Lane l computes the logits of symbols l, l + 32, …, each a dot product over the units.
    for (int v = lane; v < vocab; v += warpSize) {
        const float* w = weight + (long long)v * units;
        float dot = 0.0f;
        for (int j = 0; j < units; ++j) dot += dropped[j] * w[j];
        d_row[v] = dot + bias[v];
    }
    __syncwarp();
    // The target's lane reads its logit before exp_shifted replaces it.
    float target_logit = lane == (int)(target % warpSize) ? d_row[target] : 0.0f;
    float max;
    int argmax;
    float sum = exp_shifted(d_row, vocab, lane, max, argmax);
    float inv_sum = 1.0f / sum;
    for (int v = lane; v < vocab; v += warpSize) {
        float p = d_row[v] * inv_sum;
        if (v == (int)target) p -= 1.0f;
        d_row[v] = p * inv_count;
    }
    __syncwarp();
    if (!writes_outputs) return;
    for (int v = lane; v < vocab; v += warpSize) d_logits[(long long)r * vocab + v] = d_row[v];
    if (lane == (int)(target % warpSize)) {
        results[r] = (double)max + log((double)sum) - (double)target_logit;
        results[rows + r] = argmax == (int)target ? 1.0 : 0.0;
    }
    // ∂L/∂h: lane l the units l, l + 32, …, each a sum over the symbols' ∂L/∂logits.
    for (int j = lane; j < units; j += warpSize) {
        float d = 0.0f;
        for (int v = 0; v < vocab; ++v) d += d_row[v] * weight[(long long)v * units + j];
        d_hidden[at + j] = d * (dropout_keeps(seed, step, at + j, threshold) ? scale : 0.0f);
    }
}

// One training step's head over `rows` loss rows:
//   dropped = h ⊙ m                    (m_j = 1/(1−p) if dropout keeps (r·H + j), else 0)
//   logits  = dropped · W_denseᵀ + b_dense
//   loss_r  = max + log Σ exp(logits − max) − logits[target]        (in double, as the CPU)
//   ∂L/∂logits = (softmax(logits) − onehot(target))·inv_count        (the mean loss's gradient)
//   ∂L/∂h   = (∂L/∂logits · W_dense) ⊙ m
//   ∂L/∂W_dense = Σ_r ∂L/∂logits[r]ᵀ·dropped[r],   ∂L/∂b_dense = Σ_r ∂L/∂logits[r]
// writing ∂L/∂logits [rows][V], ∂L/∂h [rows][H], into `results` the loss (results[r]) and
// whether the first maximum is the target (results[rows + r], 1 or 0), and the dense gradients
// as one partial sum per chunk of rows: cpu::head::head_forward then head_backward.
//
// Block (c, y) owns rows [c·rows_per_block, (c+1)·rows_per_block), a group of one row per warp
// at a time, and columns [y·tile_units, …) of ∂L/∂W_dense: the group's dropped rows and
// ∂L/∂logits wait in shared memory while each thread adds them to its own elements of the
// block's partial, also in shared memory (no atomics, rows in order: a run repeats bit for bit).
// It writes partial c, [V][H] then [V] (the bias, from blocks y = 0, which also write the rows'
// outputs; where V·H exceeds the shared memory, blocks y > 0 recompute the rows for their
// columns). src/gpu/head.rs adds the partials in chunk order. Dynamic shared memory:
// V·tile_units + V + warps·(H + V) floats.
extern "C" __global__ void __launch_bounds__(256)
head_forward_backward(const float* hidden, const float* weight, const float* bias,
                      const unsigned int* targets, float* d_logits, float* d_hidden,
                      double* results, float* d_dense_partials, int rows, int units, int vocab,
                      int rows_per_block, int tile_units, unsigned long long seed,
                      unsigned long long step, unsigned long long threshold, float scale,
                      float inv_count) {
    int warps = blockDim.x / warpSize, warp = threadIdx.x / warpSize, lane = threadIdx.x % warpSize;
    int first_unit = blockIdx.y * tile_units, width = min(tile_units, units - first_unit);
    bool writes_outputs = blockIdx.y == 0;
    float* grads = dynamic_shared_memory();         // [V][width], then the bias's [V]
    float* group_dropped = grads + vocab * width + vocab;  // [warps][H]
    float* group_d_logits = group_dropped + warps * units;  // [warps][V]
    int owned = vocab * width + vocab;
    for (int e = threadIdx.x; e < owned; e += blockDim.x) grads[e] = 0.0f;
    int first = blockIdx.x * rows_per_block, last = min(rows, first + rows_per_block);
    for (int group = first; group < last; group += warps) {
        int r = group + warp;
        if (r < last)
            head_row(hidden, weight, bias, targets[r], group_dropped + warp * units,
                     group_d_logits + warp * vocab, d_logits, d_hidden, results, r, rows, units,
                     vocab, lane, writes_outputs, seed, step, threshold, scale, inv_count);
        __syncthreads();
        int count = min(warps, last - group);
        for (int e = threadIdx.x; e < owned; e += blockDim.x) {
            float sum = grads[e];
            if (e < vocab * width) {
                int v = e / width, j = first_unit + e % width;
                for (int w = 0; w < count; ++w)
                    sum += group_d_logits[w * vocab + v] * group_dropped[w * units + j];
            } else {
                for (int w = 0; w < count; ++w) sum += group_d_logits[w * vocab + e - vocab * width];
            }
            grads[e] = sum;
        }
        __syncthreads();  // the group's rows are read before the next group replaces them
    }
    float* partial = d_dense_partials + (long long)blockIdx.x * (vocab * units + vocab);
    for (int e = threadIdx.x; e < owned; e += blockDim.x) {
        if (e < vocab * width)
            partial[(e / width) * units + first_unit + e % width] = grads[e];
        else if (writes_outputs)
            partial[vocab * units + e - vocab * width] = grads[e];
    }
}

// Softmax over each row of logits [rows][V] in place, row r by warp r, shifted by the row's
// maximum: inference's distributions (predict_last, the streaming steps).
// cpu::head::softmax_in_place.
extern "C" __global__ void __launch_bounds__(256)
softmax(float* logits, int rows, int vocab) {
    int r = blockIdx.x * (blockDim.x / warpSize) + threadIdx.x / warpSize;
    int lane = threadIdx.x % warpSize;
    if (r >= rows) return;
    float* row = logits + (long long)r * vocab;
    float max;
    int argmax;
    float inv_sum = 1.0f / exp_shifted(row, vocab, lane, max, argmax);
    for (int v = lane; v < vocab; v += warpSize) row[v] *= inv_sum;
}
