// Adam as Keras implements it (src/optim.rs), over the flat parameter buffer; src/gpu/adam.rs
// holds the launchers.
//   m ← m + (g − m)(1 − β1);  v ← v + (g² − v)(1 − β2);  θ ← θ − lr_t·m / (√v + ε)
// with lr_t = lr·√(1 − β2^t)/(1 − β1^t) computed on the host, and g the gradient times
// `grad_scale` (< 1 when the global norm is clipped, else exactly 1): cpu::adam::adam_update on
// the gradient Adam::step has clipped in place.

extern "C" __global__ void __launch_bounds__(256)
adam_update(float* theta, const float* grads, float* m, float* v, int n, float grad_scale,
            float lr_t, float one_minus_beta1, float one_minus_beta2, float epsilon) {
    int i = blockIdx.x * blockDim.x + threadIdx.x;
    if (i >= n) return;
    float g = grads[i] * grad_scale;
    float mi = m[i] + (g - m[i]) * one_minus_beta1;
    float vi = v[i] + (g * g - v[i]) * one_minus_beta2;
    m[i] = mi;
    v[i] = vi;
    theta[i] -= lr_t * mi / (sqrtf(vi) + epsilon);
}

// Σ g² per block (in double, as optim::global_norm sums it), for the global norm when clipping;
// the host adds the blocks' sums in order. 256 threads per block.
extern "C" __global__ void __launch_bounds__(256)
sum_squares(const float* g, int n, double* block_sums) {
    __shared__ double partial[256];
    double sum = 0.0;
    for (int i = blockIdx.x * blockDim.x + threadIdx.x; i < n; i += gridDim.x * blockDim.x)
        sum += (double)g[i] * (double)g[i];
    partial[threadIdx.x] = sum;
    __syncthreads();
    for (unsigned half = blockDim.x / 2; half > 0; half /= 2) {
        if (threadIdx.x < half) partial[threadIdx.x] += partial[threadIdx.x + half];
        __syncthreads();
    }
    if (threadIdx.x == 0) block_sums[blockIdx.x] = partial[0];
}
