// kernels/*.cu compiled for the host (with cuda_on_host.h) behind one C entry point,
// host_launch, which takes what cuLaunchKernel takes: the kernel, the grid, the block, and an
// array of pointers to the arguments. Built and loaded by tests/gpu.rs.
#include <barrier>
#include <cstring>
#include <functional>
#include <mutex>
#include <thread>
#include <utility>
#include <vector>

#include "cuda_on_host.h"

#include "../../kernels/adam.cu"
#include "../../kernels/bias.cu"
#include "../../kernels/gemm.cu"
#include "../../kernels/head.cu"
#include "../../kernels/lstm.cu"

thread_local dim3 threadIdx, blockIdx;
dim3 blockDim, gridDim;
static std::barrier<>* block_barrier = nullptr;

void __syncthreads() { block_barrier->arrive_and_wait(); }

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

struct Kernel {
    const char* name;
    std::function<void(void**)> run;
    bool synchronises;
};

static const std::vector<Kernel>& kernels() {
    static const std::vector<Kernel> all = {
        {"adam_update", unpacked(adam_update), false},
        {"sum_squares", unpacked(sum_squares), true},
        {"broadcast_rows", unpacked(broadcast_rows), false},
        {"column_sums_partial", unpacked(column_sums_partial), false},
        {"column_sums_finish", unpacked(column_sums_finish), false},
        {"gemm", unpacked(gemm), true},
        {"dropout", unpacked(dropout), false},
        {"softmax_cross_entropy", unpacked(softmax_cross_entropy), false},
        {"embed_input", unpacked(embed_input), false},
        {"lstm_cell_forward", unpacked(lstm_cell_forward), false},
        {"lstm_cell_backward", unpacked(lstm_cell_backward), false},
        {"one_hot", unpacked(one_hot), false},
    };
    return all;
}

static void for_each_block(const std::function<void()>& body) {
    for (unsigned z = 0; z < gridDim.z; ++z)
        for (unsigned y = 0; y < gridDim.y; ++y)
            for (unsigned x = 0; x < gridDim.x; ++x) {
                blockIdx = {x, y, z};
                body();
            }
}

// Returns 0, or -1 for an unknown kernel.
extern "C" int host_launch(const char* name, unsigned gx, unsigned gy, unsigned gz, unsigned bx,
                           unsigned by, unsigned bz, void** args) {
    const Kernel* kernel = nullptr;
    for (const Kernel& k : kernels())
        if (std::strcmp(k.name, name) == 0) kernel = &k;
    if (!kernel) return -1;
    // gridDim, blockDim and the barrier are global: one launch at a time (tests run in threads).
    static std::mutex one_launch;
    std::lock_guard<std::mutex> lock(one_launch);
    gridDim = {gx, gy, gz};
    blockDim = {bx, by, bz};
    auto thread = [&](unsigned t) {
        threadIdx = {t % bx, t / bx % by, t / (bx * by)};
    };
    unsigned threads = bx * by * bz;
    if (!kernel->synchronises) {
        for_each_block([&] {
            for (unsigned t = 0; t < threads; ++t) {
                thread(t);
                kernel->run(args);
            }
        });
        return 0;
    }
    std::barrier<> barrier(threads);
    block_barrier = &barrier;
    std::vector<std::thread> pool;
    for (unsigned t = 0; t < threads; ++t)
        pool.emplace_back([&, t] {
            thread(t);
            for (unsigned z = 0; z < gz; ++z)
                for (unsigned y = 0; y < gy; ++y)
                    for (unsigned x = 0; x < gx; ++x) {
                        blockIdx = {x, y, z};
                        kernel->run(args);
                        // Every thread leaves the block before any starts the next: the
                        // static __shared__ arrays belong to one block at a time.
                        barrier.arrive_and_wait();
                    }
        });
    for (std::thread& t : pool) t.join();
    block_barrier = nullptr;
    return 0;
}
