// A kernel that checks the launch path itself, not the model: out[i] = first + i for i < n, so a
// test sees that the kernel table, the argument packing and the grid all reached the kernel
// (src/gpu/probe.rs launches it; tests/kernels.rs checks it on every engine). It also shows what
// adding a kernel takes: a function in a kernels/*.cu file, and its one launcher.

extern "C" __global__ void __launch_bounds__(256)
probe_indices(unsigned int* out, int n, unsigned int first) {
    int i = blockIdx.x * blockDim.x + threadIdx.x;
    if (i < n) out[i] = first + (unsigned int)i;
}
