// kernels/*.cu compiled for the host (with cuda_on_host.h) behind one C entry point,
// host_launch, which takes what cuLaunchKernel takes: the kernel, the grid, the block, and an
// array of pointers to the arguments. The kernels and how each one's threads run come from
// kernels_on_host.inc, which build.rs generates from kernels/*.cu (compile with -I$OUT_DIR).
// Built and loaded by tests/engines (src/gpu/host.rs loads it).
#include <barrier>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <functional>
#include <memory>
#include <mutex>
#include <thread>
#include <utility>
#include <vector>

#include "cuda_on_host.h"

thread_local dim3 threadIdx, blockIdx;
dim3 blockDim, gridDim;
// The barrier and dynamic shared memory of the block the calling thread runs in.
static thread_local std::barrier<>* block_barrier = nullptr;
static thread_local float* block_shared = nullptr;

// The warp the calling thread runs in (see cuda_on_host.h).
struct Warp {
    std::barrier<> barrier;
    std::uint64_t slots[warpSize] = {};
    explicit Warp(std::ptrdiff_t lanes) : barrier(lanes) {}
};
static thread_local Warp* warp = nullptr;

// The warps of a block of `threads` threads; the last may be partial.
static std::vector<std::unique_ptr<Warp>> warps_of(unsigned threads) {
    std::vector<std::unique_ptr<Warp>> warps;
    for (unsigned first = 0; first < threads; first += warpSize)
        warps.push_back(std::make_unique<Warp>(std::min<unsigned>(warpSize, threads - first)));
    return warps;
}

unsigned lane_id() {
    return (threadIdx.x + blockDim.x * (threadIdx.y + blockDim.y * threadIdx.z)) % warpSize;
}

void __syncwarp(unsigned) {
    if (!warp) {
        std::fprintf(stderr, "a warp's barrier in a kernel whose threads build.rs runs one by one\n");
        std::abort();
    }
    warp->barrier.arrive_and_wait();
}

std::uint64_t warp_exchange(std::uint64_t bits, unsigned source) {
    __syncwarp();  // every lane has read the previous exchange's slot
    warp->slots[lane_id()] = bits;
    __syncwarp();
    return warp->slots[source];
}

void __syncthreads() {
    if (!block_barrier) {
        std::fprintf(stderr, "__syncthreads in a kernel build.rs found no barrier in\n");
        std::abort();
    }
    block_barrier->arrive_and_wait();
}
float* dynamic_shared_memory() { return block_shared; }

// Calls f with each argument read from args[i] as the parameter's own type, as the driver copies
// sizeof(parameter) bytes from each pointer.
template <typename... A, std::size_t... I>
static void call_with(void (*f)(A...), void** args, std::index_sequence<I...>) {
    f(*static_cast<A*>(args[I])...);
}

template <typename... A>
static std::function<void(void**)> unpacked(void (*f)(A...)) {
    return [f](void** args) { call_with(f, args, std::index_sequence_for<A...>{}); };
}

// How a kernel's threads must run: one at a time (no __syncthreads), a block's threads at once
// (__syncthreads), or all threads at once (a grid barrier: the persistent kernels).
enum class Threads { OneByOne, BlockAtOnce, GridAtOnce };

struct HostKernel {
    const char* name;
    std::function<void(void**)> run;
    Threads threads;
};

#include "kernels_on_host.inc"

// Returns 0, or -1 for an unknown kernel.
extern "C" int host_launch(const char* name, unsigned gx, unsigned gy, unsigned gz, unsigned bx,
                           unsigned by, unsigned bz, unsigned shared_bytes, void** args) {
    const HostKernel* kernel = nullptr;
    for (const HostKernel& k : HOST_KERNELS)
        if (std::strcmp(k.name, name) == 0) kernel = &k;
    if (!kernel) return -1;
    // gridDim, blockDim and static __shared__ arrays are global: one launch at a time (tests
    // run in threads).
    static std::mutex one_launch;
    std::lock_guard<std::mutex> lock(one_launch);
    gridDim = {gx, gy, gz};
    blockDim = {bx, by, bz};
    unsigned threads = bx * by * bz, blocks = gx * gy * gz;
    auto enter = [&](unsigned block, unsigned thread) {
        blockIdx = {block % gx, block / gx % gy, block / (gx * gy)};
        threadIdx = {thread % bx, thread / bx % by, thread / (bx * by)};
    };
    switch (kernel->threads) {
    case Threads::OneByOne:
        for (unsigned block = 0; block < blocks; ++block)
            for (unsigned t = 0; t < threads; ++t) {
                enter(block, t);
                kernel->run(args);
            }
        return 0;
    case Threads::BlockAtOnce: {
        std::barrier<> barrier(threads);
        std::vector<float> shared(shared_bytes / sizeof(float));
        std::vector<std::unique_ptr<Warp>> warps = warps_of(threads);
        std::vector<std::thread> pool;
        for (unsigned t = 0; t < threads; ++t)
            pool.emplace_back([&, t] {
                block_barrier = &barrier;
                block_shared = shared.data();
                warp = warps[t / warpSize].get();
                for (unsigned block = 0; block < blocks; ++block) {
                    enter(block, t);
                    kernel->run(args);
                    // Every thread leaves the block before any starts the next: the static
                    // __shared__ arrays belong to one block at a time.
                    barrier.arrive_and_wait();
                }
            });
        for (std::thread& t : pool) t.join();
        return 0;
    }
    case Threads::GridAtOnce: {
        std::vector<std::unique_ptr<std::barrier<>>> barriers;
        std::vector<std::vector<std::unique_ptr<Warp>>> warps;
        for (unsigned block = 0; block < blocks; ++block) {
            barriers.push_back(std::make_unique<std::barrier<>>(threads));
            warps.push_back(warps_of(threads));
        }
        std::vector<std::vector<float>> shared(blocks,
                                               std::vector<float>(shared_bytes / sizeof(float)));
        std::vector<std::thread> pool;
        for (unsigned block = 0; block < blocks; ++block)
            for (unsigned t = 0; t < threads; ++t)
                pool.emplace_back([&, block, t] {
                    block_barrier = barriers[block].get();
                    block_shared = shared[block].data();
                    warp = warps[block][t / warpSize].get();
                    enter(block, t);
                    kernel->run(args);
                });
        for (std::thread& t : pool) t.join();
        return 0;
    }
    }
    return -1;
}
