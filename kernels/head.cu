// The head of the model, as cpu::head: one fused kernel for a training step (dropout on the
// last LSTM layer's h, the dense layer, softmax cross-entropy and every gradient that stays
// within a row), and a plain softmax for inference. One warp per row: its lanes split the row's
// units and symbols, and exchange maxima and sums by shuffles. src/gpu/head.rs holds the
// launchers.

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

// One training step's head over `rows` loss rows, row r by warp r:
//   dropped = h ⊙ m                    (m_j = 1/(1−p) if dropout keeps (r·H + j), else 0)
//   logits  = dropped · W_denseᵀ + b_dense
//   loss_r  = max + log Σ exp(logits − max) − logits[target]        (in double, as the CPU)
//   ∂L/∂logits = (softmax(logits) − onehot(target))·inv_count        (the mean loss's gradient)
//   ∂L/∂h   = (∂L/∂logits · W_dense) ⊙ m
// writing `dropped` [rows][H] and ∂L/∂logits [rows][V] (the dense gradients' operands),
// ∂L/∂h [rows][H], and into `results` the loss (results[r]) and whether the first maximum is the
// target (results[rows + r], 1 or 0): cpu::head::head_forward then head_backward, less the dense
// gradients (src/gpu/head.rs adds them: a sum over rows, which a row's warp cannot own).
extern "C" __global__ void __launch_bounds__(256)
head_forward_backward(const float* hidden, const float* weight, const float* bias,
                      const unsigned int* targets, float* dropped, float* d_logits,
                      float* d_hidden, double* results, int rows, int units, int vocab,
                      unsigned long long seed, unsigned long long step,
                      unsigned long long threshold, float scale, float inv_count) {
    int r = blockIdx.x * (blockDim.x / warpSize) + threadIdx.x / warpSize;
    int lane = threadIdx.x % warpSize;
    if (r >= rows) return;  // the whole warp: rows are warps
    long long at = (long long)r * units;
    for (int j = lane; j < units; j += warpSize)
        dropped[at + j] = hidden[at + j] * (dropout_keeps(seed, step, at + j, threshold) ? scale : 0.0f);
    __syncwarp();
    // Lane l computes the logits of symbols l, l + 32, …, each a dot product over the units.
    float* row = d_logits + (long long)r * vocab;
    for (int v = lane; v < vocab; v += warpSize) {
        const float* w = weight + (long long)v * units;
        float dot = 0.0f;
        for (int j = 0; j < units; ++j) dot += dropped[at + j] * w[j];
        row[v] = dot + bias[v];
    }
    __syncwarp();
    unsigned int target = targets[r];
    // The target's lane reads its logit before exp_shifted replaces it.
    float target_logit = lane == (int)(target % warpSize) ? row[target] : 0.0f;
    float max;
    int argmax;
    float sum = exp_shifted(row, vocab, lane, max, argmax);
    float inv_sum = 1.0f / sum;
    for (int v = lane; v < vocab; v += warpSize) {
        float p = row[v] * inv_sum;
        if (v == (int)target) p -= 1.0f;
        row[v] = p * inv_count;
    }
    if (lane == (int)(target % warpSize)) {
        results[r] = (double)max + log((double)sum) - (double)target_logit;
        results[rows + r] = argmax == (int)target ? 1.0 : 0.0;
    }
    __syncwarp();
    // ∂L/∂h: lane l the units l, l + 32, …, each a sum over the symbols' ∂L/∂logits.
    for (int j = lane; j < units; j += warpSize) {
        float d = 0.0f;
        for (int v = 0; v < vocab; ++v) d += row[v] * weight[(long long)v * units + j];
        d_hidden[at + j] = d * (dropout_keeps(seed, step, at + j, threshold) ? scale : 0.0f);
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
