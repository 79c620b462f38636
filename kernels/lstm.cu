// The pointwise parts of an LSTM layer (PyTorch's equations, gate order i, f, g, o), fused so
// that each step's gates are read and written once. The matrix products around them are
// gemm.cu's. Buffers are row-major: row r of a [rows][4H] gate buffer holds a_i, a_f, a_g, a_o.
// src/cpu/lstm.rs is the reference each kernel here follows.

__device__ __forceinline__ float sigmoid(float x) { return 1.0f / (1.0f + expf(-x)); }

// Layer 0's input term for a one-hot input: W_ih·onehot(s) is column s of W_ih [4H][V], so
//   gates[r][j] = W_ih[j][tokens[r]] + b_ih[j] + b_hh[j].
// One thread per gate value.
extern "C" __global__ void embed_input(const float* weight_ih, const float* bias_ih,
                                       const float* bias_hh, const unsigned int* tokens,
                                       float* gates, int rows, int gates_per_row, int vocab) {
    long long idx = (long long)blockIdx.x * blockDim.x + threadIdx.x;
    if (idx >= (long long)rows * gates_per_row) return;
    int r = (int)(idx / gates_per_row), j = (int)(idx % gates_per_row);
    gates[idx] = weight_ih[(long long)j * vocab + tokens[r]] + bias_ih[j] + bias_hh[j];
}

// One step for n rows, given the pre-activations a = W_ih·x + b + W_hh·h_prev in `gates`:
//   i, f, o = σ(a_i, a_f, a_o);  g = tanh(a_g);  c = f⊙c_prev + i⊙g;  h = o⊙tanh(c)
// `gates` is overwritten with i, f, g, o for the backward pass. c_prev null is the zero state.
// One thread per (row, unit).
extern "C" __global__ void lstm_cell_forward(float* gates, const float* cell_prev, float* cell,
                                             float* tanh_cell, float* hidden, int rows,
                                             int units) {
    int idx = blockIdx.x * blockDim.x + threadIdx.x;
    if (idx >= rows * units) return;
    int r = idx / units, u = idx % units;
    float* a = gates + (long long)r * 4 * units;
    float i = sigmoid(a[u]);
    float f = sigmoid(a[units + u]);
    float g = tanhf(a[2 * units + u]);
    float o = sigmoid(a[3 * units + u]);
    float c = f * (cell_prev ? cell_prev[idx] : 0.0f) + i * g;
    float tc = tanhf(c);
    a[u] = i;
    a[units + u] = f;
    a[2 * units + u] = g;
    a[3 * units + u] = o;
    cell[idx] = c;
    tanh_cell[idx] = tc;
    hidden[idx] = o * tc;
}

// One step backwards for n rows, with dh = ∂L/∂h_t and d_cell = ∂L/∂c_t through c_{t+1}:
//   dc = d_cell + dh⊙o⊙(1 − tanh²c)
//   da_i = dc⊙g⊙i(1−i);  da_f = dc⊙c_prev⊙f(1−f);  da_g = dc⊙i⊙(1−g²);  da_o = dh⊙tanh(c)⊙o(1−o)
// and leaves dc⊙f in d_cell for step t−1. c_prev null is the zero state.
extern "C" __global__ void lstm_cell_backward(const float* gates, const float* cell_prev,
                                              const float* tanh_cell, const float* d_hidden,
                                              float* d_cell, float* d_gates, int rows,
                                              int units) {
    int idx = blockIdx.x * blockDim.x + threadIdx.x;
    if (idx >= rows * units) return;
    int r = idx / units, u = idx % units;
    const float* a = gates + (long long)r * 4 * units;
    float* da = d_gates + (long long)r * 4 * units;
    float i = a[u], f = a[units + u], g = a[2 * units + u], o = a[3 * units + u];
    float tc = tanh_cell[idx], dh = d_hidden[idx];
    float dc = d_cell[idx] + dh * o * (1.0f - tc * tc);
    float cp = cell_prev ? cell_prev[idx] : 0.0f;
    da[u] = dc * g * i * (1.0f - i);
    da[units + u] = dc * cp * f * (1.0f - f);
    da[2 * units + u] = dc * i * (1.0f - g * g);
    da[3 * units + u] = dh * tc * o * (1.0f - o);
    d_cell[idx] = dc * f;
}

// out[r][s] = 1 if tokens[r] = s else 0, [rows][V]: with it, layer 0's ∂L/∂W_ih = ∂L/∂aᵀ·onehot
// is one product.
extern "C" __global__ void one_hot(const unsigned int* tokens, float* out, int rows, int vocab) {
    long long idx = (long long)blockIdx.x * blockDim.x + threadIdx.x;
    if (idx >= (long long)rows * vocab) return;
    int r = (int)(idx / vocab), s = (int)(idx % vocab);
    out[idx] = tokens[r] == (unsigned int)s ? 1.0f : 0.0f;
}
