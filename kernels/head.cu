// The head of the model: dropout on the last LSTM layer's output, and softmax cross-entropy with
// its gradient, as cpu::head::head_forward and head_backward. (The dense layer itself is a
// matmul.cu product plus its broadcast_rows bias.) src/gpu/head.rs holds the launchers.

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

// Inverted dropout, out[i] = in[i]·m_i with m_i = 1/(1−p) if kept, else 0. Forward it maps h to
// the dense layer's input; backward, in place, it maps ∂L/∂(h⊙m) to ∂L/∂h (the mask is the slope).
// cpu::head::dropout with cpu::fill_dropout_mask's mask, and cpu::head::dropout_backward.
extern "C" __global__ void __launch_bounds__(256)
dropout(const float* in, float* out, int n, unsigned long long seed, unsigned long long step,
        unsigned long long threshold, float scale) {
    int i = blockIdx.x * blockDim.x + threadIdx.x;
    if (i >= n) return;
    out[i] = in[i] * (dropout_keeps(seed, step, i, threshold) ? scale : 0.0f);
}

// Per row of logits [rows][V], one thread each: softmax in place, shifted by the row's maximum.
// With targets, also the loss −log p[target] = max + log Σ exp(l − max) − l[target] (in double,
// as the CPU sums it) into results[r], 1 or 0 for whether the first maximum is the target into
// results[rows + r] (one buffer, so one copy brings both back), and the gradient of the mean
// loss (p − onehot(target))·inv_count written over the probabilities. cpu::head::softmax_in_place
// without targets; with them cpu::head::softmax_cross_entropy and its _backward, fused.
extern "C" __global__ void __launch_bounds__(256)
softmax_cross_entropy(float* logits, const unsigned int* targets, int rows, int vocab,
                      float inv_count, double* results) {
    int r = blockIdx.x * blockDim.x + threadIdx.x;
    if (r >= rows) return;
    float* row = logits + (long long)r * vocab;
    int argmax = 0;
    for (int j = 1; j < vocab; ++j)
        if (row[j] > row[argmax]) argmax = j;
    float max = row[argmax];
    float target_logit = targets ? row[targets[r]] : 0.0f;
    float sum = 0.0f;
    for (int j = 0; j < vocab; ++j) {
        row[j] = expf(row[j] - max);
        sum += row[j];
    }
    float inv_sum = 1.0f / sum;
    for (int j = 0; j < vocab; ++j) row[j] *= inv_sum;
    if (!targets) return;
    unsigned int target = targets[r];
    results[r] = (double)max + log((double)sum) - (double)target_logit;
    results[rows + r] = argmax == (int)target ? 1.0 : 0.0;
    row[target] -= 1.0f;
    for (int j = 0; j < vocab; ++j) row[j] *= inv_count;
}
