// Where a lut_mma launch spends its time at small M, without torch: R weight copies run back to back
// on one stream (rotating past L2, as bench_rotating.py does), and in a second pass every block
// stamps its phases (csrc/lut_mma.cu, QUANTDLLM_MMA_TRACE). Prints the plan, the time per launch
// from events, and per launch (medians over launches): the span from the first block's entry to the
// last block's exit, the gap before the next launch's first block, the spread of block entries, and
// the median block's phases -- prologue, first stage's wait, main loop, epilogue -- in µs at the SM
// clock the stamps themselves measure. Code and scale values are arbitrary: the timing does not
// depend on them. QUANTDLLM_PHASES_TS=rows|one: an 8-bucket timestep bias table (fp16), per-row t or
// one t; QUANTDLLM_PHASES_FLUSH=1: each timed launch alone after an L2 flush (t, the boundaries and
// the table cold, as in the benchmark), median of 40, and the slowest block's phases beside the median's.
// Last, how many blocks each SM ran (the K split as a cluster, QUANTDLLM_MMA_CLUSTER=1, places them by GPC).
//
//   nvcc -std=c++20 -O3 -Icsrc -DQUANTDLLM_MMA_TRACE --expt-relaxed-constexpr -arch=sm_90a \
//        benchmarks/debug/mma_phases.cu csrc/lut_mma.cu csrc/lut_common.cu -o /tmp/mma_phases
//   /tmp/mma_phases [K=4096] [N=12288] [M=1] [bits=4]
#include <algorithm>
#include <cstdio>
#include <cstdlib>
#include <string>
#include <vector>

#include "lut_kernels.h"
#include "trace_util.h"

using namespace quantdllm;

int main(int argc, char** argv) {
    const int K = argc > 1 ? std::atoi(argv[1]) : 4096, N = argc > 2 ? std::atoi(argv[2]) : 12288;
    const int M = argc > 3 ? std::atoi(argv[3]) : 1, bits = argc > 4 ? std::atoi(argv[4]) : 4;
    const int sk = mma_super_k(bits);
    const int Np = (N + 31) / 32 * 32, Kp = (K + sk - 1) / sk * sk, tiles = Np / 16, U = Kp / sk;
    const int words = bits * (sk / 64), groups = K >> 7;
    const size_t code_n = static_cast<size_t>(tiles) * U * 32 * words, sz_n = static_cast<size_t>(tiles) * groups * 32;
    const size_t bytes = code_n * 4 + sz_n * 2;
    const int R = std::max<int>(8, static_cast<int>((160ull << 20) / bytes + 1));  // >= 160 MB: past L2
    int sms = 0;
    CK(cudaDeviceGetAttribute(&sms, cudaDevAttrMultiProcessorCount, 0));
    const MmaPlan p = mma_plan(M, N, K, bits, sms, DType::F16, false);
    const size_t blocks = static_cast<size_t>(p.grid_x) * p.grid_y * p.ksplit;
    std::printf("K %d N %d M %d bits %d: %zu MB per copy, %d copies; plan nt %d wn %d ksplit %d, %zu blocks on %d SMs\n",
                K, N, M, bits, bytes >> 20, R, p.nt, p.wn, p.ksplit, blocks, sms);

    std::vector<int32_t*> codes(R);
    std::vector<void*> sz(R);
    for (int r = 0; r < R; ++r) {
        CK(cudaMalloc(&codes[r], code_n * 4));
        CK(cudaMalloc(&sz[r], sz_n * 2));
        CK(cudaMemset(codes[r], 0x5A, code_n * 4));
        CK(cudaMemset(sz[r], 0x3C, sz_n * 2));  // 0x3C3C: fp16 1.06
    }
    void *x, *y;
    float* ws;
    int* sem;
    unsigned long long* trace;
    CK(cudaMalloc(&x, static_cast<size_t>(M) * K * 2));
    CK(cudaMemset(x, 0x3C, static_cast<size_t>(M) * K * 2));
    CK(cudaMalloc(&y, static_cast<size_t>(M) * N * 2));
    CK(cudaMalloc(&ws, static_cast<size_t>(p.ksplit) * M * N * 4));
    CK(cudaMalloc(&sem, static_cast<size_t>(p.grid_x) * p.grid_y * 4));
    CK(cudaMemset(sem, 0, static_cast<size_t>(p.grid_x) * p.grid_y * 4));
    CK(cudaMalloc(&trace, R * blocks * kTraceSlots * sizeof(unsigned long long)));
    CK(cudaMemset(trace, 0, R * blocks * kTraceSlots * sizeof(unsigned long long)));

    MmaArgs a;
    a.N = N; a.K = K; a.bits = bits; a.group_shift = 7; a.groups = groups;
    a.x = x; a.x_dtype = DType::F16; a.M = M; a.y = y; a.workspace = ws; a.semaphores = sem;
    set_ts_table("QUANTDLLM_PHASES_TS", M, N, 500, a);  // rows / one: a timestep bias table (trace_util.h)
    const bool flush_mode = std::getenv("QUANTDLLM_PHASES_FLUSH") != nullptr;
    void* flush = nullptr;
    const size_t flush_n = 256ull << 20;
    if (flush_mode) CK(cudaMalloc(&flush, flush_n));
    auto launch = [&](int r, bool traced) {
        a.codes = codes[r];
        a.sz = sz[r];
        a.trace = traced ? trace + r * blocks * kTraceSlots : nullptr;
        CK(launch_lut_mma(a, p, 0));
    };
    for (int r = 0; r < R; ++r) launch(r, false);
    CK(cudaDeviceSynchronize());

    cudaEvent_t e0, e1;
    CK(cudaEventCreate(&e0));
    CK(cudaEventCreate(&e1));
    std::vector<double> per;
    if (flush_mode) {
        for (int rep = 0; rep < 41; ++rep) {
            CK(cudaMemsetAsync(flush, rep, flush_n));
            CK(cudaEventRecord(e0));
            launch(rep % R, false);
            CK(cudaEventRecord(e1));
            CK(cudaEventSynchronize(e1));
            float ms = 0.f;
            CK(cudaEventElapsedTime(&ms, e0, e1));
            if (rep) per.push_back(1e3 * ms);
        }
        std::printf("untraced, L2 flushed: %.2f us per launch (median of 40)\n", median(per));
        per.clear();
    }
    for (int rep = 0; rep < 20; ++rep) {
        CK(cudaEventRecord(e0));
        for (int r = 0; r < R; ++r) launch(r, false);
        CK(cudaEventRecord(e1));
        CK(cudaEventSynchronize(e1));
        float ms = 0.f;
        CK(cudaEventElapsedTime(&ms, e0, e1));
        per.push_back(1e3 * ms / R);
    }
    std::printf("untraced, back to back (eager launches): %.2f us per launch (median of 20 x %d)\n", median(per), R);

    for (int r = 0; r < R; ++r) {
        if (flush_mode) CK(cudaMemsetAsync(flush, r, flush_n));  // each traced launch cold, as timed
        launch(r, true);
    }
    CK(cudaDeviceSynchronize());
    std::vector<unsigned long long> h(R * blocks * kTraceSlots);
    CK(cudaMemcpy(h.data(), trace, h.size() * sizeof(unsigned long long), cudaMemcpyDeviceToHost));

    std::vector<double> span, gap, spread, pro, first, loop, epi, ghz, slow_pro, slow_first, slow_loop, slow_epi;
    std::vector<unsigned long long> start(R, ~0ull), end(R, 0);
    for (int r = 0; r < R; ++r) {
        std::vector<double> b_pro, b_first, b_loop, b_epi;
        size_t slowest = 0;  // the block that exits last
        for (size_t b = 0; b < blocks; ++b) {
            const unsigned long long* s = &h[(r * blocks + b) * kTraceSlots];
            if (!s[0]) continue;
            if (s[6] > h[(r * blocks + slowest) * kTraceSlots + 6]) slowest = b;
            start[r] = std::min(start[r], s[0]);
            end[r] = std::max(end[r], s[6]);
            if (s[6] > s[0] && s[5] > s[1]) ghz.push_back(static_cast<double>(s[5] - s[1]) / (s[6] - s[0]));
            b_pro.push_back(static_cast<double>(s[2] - s[1]));
            if (s[3]) {
                b_first.push_back(static_cast<double>(s[3] - s[2]));
                b_loop.push_back(static_cast<double>(s[4] - s[3]));
            }
            b_epi.push_back(static_cast<double>(s[5] - s[4]));
        }
        const unsigned long long* sl = &h[(r * blocks + slowest) * kTraceSlots];
        slow_pro.push_back(static_cast<double>(sl[2] - sl[1]));
        slow_first.push_back(sl[3] ? static_cast<double>(sl[3] - sl[2]) : 0.0);
        slow_loop.push_back(sl[3] ? static_cast<double>(sl[4] - sl[3]) : 0.0);
        slow_epi.push_back(static_cast<double>(sl[5] - sl[4]));
        pro.push_back(median(b_pro));
        first.push_back(median(b_first));
        loop.push_back(median(b_loop));
        epi.push_back(median(b_epi));
        double last_entry = 0;
        for (size_t b = 0; b < blocks; ++b) {
            const unsigned long long* s = &h[(r * blocks + b) * kTraceSlots];
            if (s[0]) last_entry = std::max(last_entry, static_cast<double>(s[0] - start[r]));
        }
        spread.push_back(last_entry * 1e-3);
        span.push_back((end[r] - start[r]) * 1e-3);
        if (r > 0) gap.push_back((static_cast<double>(start[r]) - static_cast<double>(end[r - 1])) * 1e-3);
    }
    const double f = median(ghz);  // cycles per ns = GHz
    const double us = 1e-3 / (f > 0 ? f : 1.0);
    std::printf("traced: SM clock %.2f GHz from the stamps\n", f);
    std::printf("per launch (median over %d): span %.2f us, gap before the next %.2f us, block entries spread %.2f us\n",
                R, median(span), median(gap), median(spread));
    std::printf("median block: prologue %.2f us, first stage wait %.2f us, main loop %.2f us, epilogue %.2f us\n",
                median(pro) * us, median(first) * us, median(loop) * us, median(epi) * us);
    std::printf("slowest block: prologue %.2f us, first stage wait %.2f us, main loop %.2f us, epilogue %.2f us\n",
                median(slow_pro) * us, median(slow_first) * us, median(slow_loop) * us, median(slow_epi) * us);
    // Where the blocks ran (stamp 7, the SM id), launch 0: a memory-bound grid is as slow as its most
    // loaded SM, and cluster launches (QUANTDLLM_MMA_CLUSTER=1) place blocks by GPC
    std::vector<int> on(sms, 0);
    for (size_t b = 0; b < blocks; ++b) {
        const unsigned long long* s = &h[b * kTraceSlots];
        if (s[0] && s[7] < static_cast<unsigned long long>(sms)) ++on[s[7]];
    }
    std::vector<int> sorted = on;
    std::sort(sorted.begin(), sorted.end());
    std::printf("blocks per SM (launch 0): min %d, median %d, max %d; SMs without a block %d of %d\n", sorted.front(),
                sorted[sorted.size() / 2], sorted.back(), static_cast<int>(std::count(on.begin(), on.end(), 0)), sms);
    return 0;
}
