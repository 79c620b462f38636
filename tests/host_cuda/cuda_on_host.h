// Just enough CUDA to compile kernels/*.cu as C++ for the host, so that tests on machines without
// a GPU run the very kernels the GPU runs (see kernels_on_host.cpp and src/gpu/device.rs).
// A kernel without __syncthreads runs its threads one after another, block after block. One with
// it runs each thread of a block on its own OS thread, __syncthreads being a barrier, and blocks
// one after another, so static __shared__ arrays can be plain statics. A persistent kernel (grid
// barrier) runs every thread of every block at once, with dynamic shared memory per block.
#pragma once
#include <algorithm>
#include <atomic>
#include <cmath>
#include <cstdint>
#include <thread>

#define MELODY_ON_HOST

struct dim3 {
    unsigned x = 1, y = 1, z = 1;
};
// CUDA's 128-bit vector, as aligned (kernels load it from shared memory).
struct alignas(16) float4 {
    float x, y, z, w;
};
extern thread_local dim3 threadIdx, blockIdx;
extern dim3 blockDim, gridDim;
void __syncthreads();
float* dynamic_shared_memory();

inline void spin_pause() { std::this_thread::yield(); }
inline void __threadfence() { std::atomic_thread_fence(std::memory_order_seq_cst); }
inline float __ldcg(const float* p) { return *p; }
inline unsigned load_volatile(unsigned* p) { return std::atomic_ref<unsigned>(*p).load(); }
inline unsigned atomicAdd(unsigned* p, unsigned v) { return std::atomic_ref<unsigned>(*p).fetch_add(v); }
inline unsigned atomicExch(unsigned* p, unsigned v) { return std::atomic_ref<unsigned>(*p).exchange(v); }

#define __global__
#define __device__
#define __forceinline__ inline
#define __launch_bounds__(threads)
#define __shared__ static
using std::max;
using std::min;
