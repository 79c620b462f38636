// Just enough CUDA to compile kernels/*.cu as C++ for the host, so that tests on machines without
// a GPU run the very kernels the GPU runs (see kernels_on_host.cpp and src/gpu/device.rs).
// A kernel without __syncthreads runs its threads one after another, block after block. One with
// it runs each thread of a block on its own OS thread, __syncthreads being a barrier, and blocks
// one after another, so static __shared__ arrays can be plain statics. A persistent kernel (grid
// barrier) runs every thread of every block at once, with dynamic shared memory per block.
// Warps: in a kernel whose threads run at once (build.rs runs a kernel with shuffles so), each 32
// consecutive threads are a warp, with a barrier of their own (__syncwarp) and one slot per lane:
// a shuffle waits for the warp (so every lane has read the last exchange), writes the lane's
// value to its slot, waits again and reads the source lane's slot. Full warps only, as the
// kernels use them (the mask is not read).
#pragma once
#include <algorithm>
#include <atomic>
#include <bit>
#include <cmath>
#include <cstdint>
#include <cstring>
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

constexpr int warpSize = 32;
void __syncwarp(unsigned mask = 0xffffffffu);
// The value the warp's lane `source` offered, every lane offering `bits`.
std::uint64_t warp_exchange(std::uint64_t bits, unsigned source);
unsigned lane_id();

template <typename T>
T __shfl_sync(unsigned, T value, int source) {
    static_assert(sizeof(T) <= sizeof(std::uint64_t));
    std::uint64_t bits = 0;
    std::memcpy(&bits, &value, sizeof value);
    bits = warp_exchange(bits, unsigned(source) % warpSize);
    std::memcpy(&value, &bits, sizeof value);
    return value;
}
template <typename T>
T __shfl_xor_sync(unsigned mask, T value, int lane_mask) {
    return __shfl_sync(mask, value, int(lane_id() ^ unsigned(lane_mask)));
}
// A source past the warp's end leaves the lane's own value, as on the GPU.
template <typename T>
T __shfl_down_sync(unsigned mask, T value, unsigned delta) {
    unsigned source = lane_id() + delta;
    return __shfl_sync(mask, value, int(source < unsigned(warpSize) ? source : lane_id()));
}

inline unsigned __float_as_uint(float x) { return std::bit_cast<unsigned>(x); }
inline float __uint_as_float(unsigned x) { return std::bit_cast<float>(x); }
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
#define __align__(bytes) __attribute__((aligned(bytes)))

using std::max;
using std::min;
