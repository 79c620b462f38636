// Just enough CUDA to compile kernels/*.cu as C++ for the host, so that tests on machines without
// a GPU run the very kernels the GPU runs (see kernels_on_host.cpp and src/gpu/device.rs).
// A launch runs its blocks one after another; within a block, a kernel without __syncthreads
// runs its threads one after another, and one with it runs each thread on its own OS thread,
// __syncthreads being a barrier. __shared__ arrays become statics: one block runs at a time.
#pragma once
#include <algorithm>
#include <cmath>
#include <cstdint>

struct dim3 {
    unsigned x = 1, y = 1, z = 1;
};
extern thread_local dim3 threadIdx, blockIdx;
extern dim3 blockDim, gridDim;
void __syncthreads();

#define __global__
#define __device__
#define __forceinline__ inline
#define __launch_bounds__(threads)
#define __shared__ static
using std::max;
using std::min;
