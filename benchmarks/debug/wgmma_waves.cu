// How a lut_wgmma launch fills the SMs, without torch: every block stamps its entry, main loop and
// exit (csrc/lut_wgmma_kernel.cuh, QUANTDLLM_MMA_TRACE), and blocks are grouped by their order on their SM
// (wave 1 = each SM's first block, ...). Prints the plan, the event time per launch (L2 flushed,
// median of 40), then per wave: blocks, entry and exit spread, the median block's main loop and
// epilogue's phases, and the SM clock the stamps measure -- for whole-K blocks and K-slice blocks apart.
// The plan is wgmma_plan's, so QUANTDLLM_WGMMA_BN / _KSPLIT / _SPLIT_FROM force a launch. Codes and x
// are random (with constant bytes the tensor cores draw less power and the SM clock runs higher).
// Optional CSV of every block. Environment: QUANTDLLM_WAVES_TS=rows|one (an 8-bucket timestep bias
// table, per-row or one t), QUANTDLLM_WAVES_NOFLUSH=1 (no L2 flush), QUANTDLLM_WAVES_PERMUTE=1 (the
// timed launch is the op's pair: launch_permute_x, then lut_wgmma on its output; the traced launch
// stays lut_wgmma alone), QUANTDLLM_WAVES_XNAT=1 (4-bit: lut_wgmma reads x as stored, no pre-pass:
// the op's default for 4-bit codes without in_scale), QUANTDLLM_WAVES_SUSTAINED=1 (the 41 repetitions queued back to back and
// read after one synchronization, as triton's do_bench does, instead of one at a time: the GPU never
// idles between them, so its clock is the one a sustained load gets).
//
//   bash benchmarks/debug/build_wgmma_tool.sh benchmarks/debug/wgmma_waves.cu csrc /tmp/wgmma_waves
//        (csrc/lut_wgmma*.cu and lut_common.cu traced, sm_90a; .ci/run links it the same way, for sm_80 and sm_90a)
//   /tmp/wgmma_waves [K=4096] [N=12288] [M=512] [bits=4] [blocks.csv]
#include <algorithm>
#include <cstdio>
#include <cstdlib>
#include <map>
#include <string>
#include <vector>

#include "lut_kernels.h"
#include "trace_util.h"

using namespace quantdllm;

int main(int argc, char** argv) {
    const int K = argc > 1 ? std::atoi(argv[1]) : 4096, N = argc > 2 ? std::atoi(argv[2]) : 12288;
    const int M = argc > 3 ? std::atoi(argv[3]) : 512, bits = argc > 4 ? std::atoi(argv[4]) : 4;
    const char* csv = argc > 5 ? argv[5] : nullptr;
    const int sk = 64 * (bits == 4 ? 1 : bits == 2 ? 2 : 4);  // codes per super-chunk (mma_super_k, lut_mma.cu)
    const int Np = (N + 31) / 32 * 32, Kp = (K + sk - 1) / sk * sk, U = Kp / sk, groups = K >> 7;
    const size_t code_n = static_cast<size_t>(Np / 16) * U * 32 * bits * (sk / 64), sz_n = static_cast<size_t>(Np / 16) * groups * 32;
    int sms = 0;
    CK(cudaDeviceGetAttribute(&sms, cudaDevAttrMultiProcessorCount, 0));
    const WgmmaPlan p = wgmma_plan(M, N, K, sms);
    const long long tiles = static_cast<long long>((N + 127) / 128) * ((M + p.bn - 1) / p.bn);
    const long long blocks = p.split_from + (tiles - p.split_from) * p.ksplit;
    std::printf("K %d N %d M %d bits %d: plan bn %d ksplit %d per_split %d split_from %d: %lld tiles, %lld blocks on %d SMs\n",
                K, N, M, bits, p.bn, p.ksplit, p.per_split, p.split_from, tiles, blocks, sms);

    int32_t* codes;
    void *sz, *x, *y, *flush;
    unsigned long long* trace;
    const size_t flush_n = 256ull << 20;
    CK(cudaMalloc(&codes, code_n * 4));
    CK(cudaMalloc(&sz, sz_n * 2));
    CK(cudaMalloc(&x, static_cast<size_t>(M) * K * 2));
    {  // random codes and x (|x| in [0.5, 1), random signs): the tensor cores' power, and so the clock, depends on the data
        std::vector<uint16_t> hc(code_n * 2), hx(static_cast<size_t>(M) * K);
        uint32_t r = 12345u;
        auto next = [&] { return r = r * 1664525u + 1013904223u; };
        for (auto& v : hc) v = static_cast<uint16_t>(next() >> 16);
        for (auto& v : hx) v = static_cast<uint16_t>(((next() >> 16) & 0x83FF) | 0x3800);
        CK(cudaMemcpy(codes, hc.data(), code_n * 4, cudaMemcpyHostToDevice));
        CK(cudaMemcpy(x, hx.data(), hx.size() * 2, cudaMemcpyHostToDevice));
    }
    CK(cudaMemset(sz, 0x2C, sz_n * 2));  // 0x2C2C: fp16 0.068 (scales and zeros)
    CK(cudaMalloc(&y, static_cast<size_t>(M) * N * 2));
    CK(cudaMalloc(&flush, flush_n));
    CK(cudaMalloc(&trace, blocks * kTraceSlots * sizeof(unsigned long long)));
    CK(cudaMemset(trace, 0, blocks * kTraceSlots * sizeof(unsigned long long)));

    MmaArgs a;
    a.codes = codes; a.sz = sz; a.N = N; a.K = K; a.bits = bits; a.group_shift = 7; a.groups = groups;
    a.x = x; a.x_dtype = DType::F16; a.M = M; a.y = y;
    set_ts_table("QUANTDLLM_WAVES_TS", M, N, 0, a);  // rows / one: a timestep bias table (trace_util.h)
    // QUANTDLLM_WAVES_XNAT=1: x as stored, no pre-pass (the op's default without in_scale at M >= 256;
    // 2/3-bit since the twenty-first session)
    a.x_natural = std::getenv("QUANTDLLM_WAVES_XNAT") != nullptr;
    cudaEvent_t e0, e1;
    CK(cudaEventCreate(&e0));
    CK(cudaEventCreate(&e1));
    // QUANTDLLM_WAVES_NOFLUSH=1: no L2 flush before the launches (code, tables and L2 lines clean)
    const bool flush_l2 = !std::getenv("QUANTDLLM_WAVES_NOFLUSH");
    const bool with_permute = std::getenv("QUANTDLLM_WAVES_PERMUTE") != nullptr;
    void* xp = nullptr;
    if (with_permute) CK(cudaMalloc(&xp, static_cast<size_t>(M) * K * 2));
    MmaArgs ap = a;  // the pair's lut_wgmma reads the permuted copy
    if (with_permute) ap.x = xp;
    const bool sustained = std::getenv("QUANTDLLM_WAVES_SUSTAINED") != nullptr;
    constexpr int kReps = 41;
    std::vector<cudaEvent_t> starts(kReps, e0), ends(kReps, e1);
    if (sustained)
        for (int rep = 0; rep < kReps; ++rep) {
            CK(cudaEventCreate(&starts[rep]));
            CK(cudaEventCreate(&ends[rep]));
        }
    std::vector<double> per;
    for (int rep = 0; rep < kReps; ++rep) {
        if (flush_l2) CK(cudaMemsetAsync(flush, rep, flush_n));
        CK(cudaEventRecord(starts[rep]));
        if (with_permute) {
            CK(launch_permute_x(x, nullptr, xp, DType::F16, M, K, 0));
            CK(launch_lut_wgmma(ap, p, 0));
        } else {
            CK(launch_lut_wgmma(a, p, 0));
        }
        CK(cudaEventRecord(ends[rep]));
        if (!sustained) CK(cudaEventSynchronize(ends[rep]));
        if (!sustained && rep) {
            float ms = 0.f;
            CK(cudaEventElapsedTime(&ms, starts[rep], ends[rep]));
            per.push_back(1e3 * ms);
        }
    }
    if (sustained) {
        CK(cudaDeviceSynchronize());
        for (int rep = 1; rep < kReps; ++rep) {
            float ms = 0.f;
            CK(cudaEventElapsedTime(&ms, starts[rep], ends[rep]));
            per.push_back(1e3 * ms);
        }
        for (int rep = 0; rep < kReps; ++rep) {
            CK(cudaEventDestroy(starts[rep]));
            CK(cudaEventDestroy(ends[rep]));
        }
    }
    std::printf("untraced, %s%s: %.2f us per launch%s (median of %zu)\n", flush_l2 ? "L2 flushed" : "no flush",
                sustained ? ", back to back" : "", median(per), with_permute ? " (x permutation + lut_wgmma)" : "",
                per.size());

    a.trace = trace;
    if (flush_l2) CK(cudaMemsetAsync(flush, 7, flush_n));
    CK(launch_lut_wgmma(a, p, 0));
    CK(cudaDeviceSynchronize());
    std::vector<unsigned long long> h(blocks * kTraceSlots);
    CK(cudaMemcpy(h.data(), trace, h.size() * sizeof(unsigned long long), cudaMemcpyDeviceToHost));

    unsigned long long t0 = ~0ull, t1 = 0;
    std::map<unsigned long long, std::vector<long long>> by_sm;  // SM -> its blocks
    for (long long b = 0; b < blocks; ++b) {
        const unsigned long long* s = &h[b * kTraceSlots];
        t0 = std::min(t0, s[0]);
        t1 = std::max(t1, s[6]);
        by_sm[s[7]].push_back(b);
    }
    std::vector<int> wave(blocks, 0);
    int waves = 0;
    for (auto& [sm, bs] : by_sm) {
        std::sort(bs.begin(), bs.end(), [&](long long i, long long j) { return h[i * kTraceSlots] < h[j * kTraceSlots]; });
        for (size_t i = 0; i < bs.size(); ++i) wave[bs[i]] = static_cast<int>(i), waves = std::max(waves, static_cast<int>(i) + 1);
    }
    std::printf("traced: span %.2f us, %zu SMs used, up to %d blocks per SM\n", (t1 - t0) * 1e-3, by_sm.size(), waves);
    // the SM clock: cycles per ns over a block's life (stamps 1 / 9 and 0 / 6), median over blocks
    std::vector<double> fs;
    for (long long b = 0; b < blocks; ++b) {
        const unsigned long long* s = &h[b * kTraceSlots];
        if (s[6] > s[0]) fs.push_back(static_cast<double>(s[9] - s[1]) / (s[6] - s[0]));
    }
    const double f = fs.empty() ? 1.0 : median(fs);
    std::printf("SM clock %.2f GHz; per block, median us: prologue (entry to chunk 0 decoded), main loop, stage (fp32 tile\n"
                "to shared memory), store (y), sum (a K slice: the cluster's barriers and its share of the sum and y),\n"
                "and the sum's parts: skew (the first cluster barrier), loads (the share's sum), ystore, exit (the last wait)\n", f);
    std::printf("%-5s %-6s %6s %22s %22s %8s %8s %8s %8s %8s %8s %8s %8s %8s\n", "wave", "kind", "blocks", "entry min/med/max us",
                "exit min/med/max us", "prolog", "loop", "stage", "store", "sum", "skew", "loads", "ystore", "exit");
    for (int w = 0; w < waves; ++w)
        for (int kind = 0; kind < 2; ++kind) {
            std::vector<double> in, out, pro, loop, stage, store, sum, skew, loads, ystore, exitw;
            for (long long b = 0; b < blocks; ++b) {
                if (wave[b] != w || (b >= p.split_from && p.ksplit > 1) != (kind == 1)) continue;
                const unsigned long long* s = &h[b * kTraceSlots];
                in.push_back((s[0] - t0) * 1e-3);
                out.push_back((s[6] - t0) * 1e-3);
                pro.push_back((s[3] - s[1]) / f * 1e-3);
                loop.push_back((s[4] - s[3]) / f * 1e-3);
                stage.push_back((s[2] - s[4]) / f * 1e-3);
                store.push_back((s[5] - s[2]) / f * 1e-3);
                if (kind == 1) {
                    sum.push_back((s[6] - s[8]) * 1e-3);
                    skew.push_back((s[10] - s[8]) * 1e-3);  // slots 10-12: globaltimer inside the sum (lut_wgmma_kernel.cuh)
                    loads.push_back((s[11] - s[10]) * 1e-3);
                    ystore.push_back((s[12] - s[11]) * 1e-3);
                    exitw.push_back((s[6] - s[12]) * 1e-3);
                }
            }
            if (in.empty()) continue;
            auto mm = [](std::vector<double> v) {
                std::sort(v.begin(), v.end());
                char buf[64];
                std::snprintf(buf, sizeof buf, "%6.1f/%6.1f/%6.1f", v.front(), v[v.size() / 2], v.back());
                return std::string(buf);
            };
            std::printf("%-5d %-6s %6zu %22s %22s %8.2f %8.2f %8.2f %8.2f %8.2f %8.2f %8.2f %8.2f %8.2f\n", w + 1,
                        kind ? "slice" : "whole", in.size(), mm(in).c_str(), mm(out).c_str(), median(pro), median(loop),
                        median(stage), median(store), median(sum), median(skew), median(loads), median(ystore), median(exitw));
        }
    {  // the prologue's parts (slots 13-15): entry to the block barrier after the mbarrier init, then
       // (blocks with a timestep chunk) to the chunk's start, to its inputs landed, to chunk 0 decoded
        std::vector<double> to_bar, rest, to_chunk, landed, after;
        for (long long b = 0; b < blocks; ++b) {
            const unsigned long long* s = &h[b * kTraceSlots];
            if (!s[13]) continue;
            to_bar.push_back((s[13] - s[1]) / f * 1e-3);
            if (!s[14] || !s[15]) {
                rest.push_back((s[3] - s[13]) / f * 1e-3);
                continue;
            }
            to_chunk.push_back((s[14] - s[13]) / f * 1e-3);
            landed.push_back((s[15] - s[14]) / f * 1e-3);
            after.push_back((s[3] - s[15]) / f * 1e-3);
        }
        if (!to_bar.empty())
            std::printf("prologue, median us: entry to the barrier %.2f; %zu blocks without a timestep chunk: to chunk 0 "
                        "decoded %.2f; %zu with: to the chunk %.2f, its inputs landed %.2f, then (fence, barrier, wgmma, "
                        "chunk 0 decoded) %.2f\n", median(to_bar), rest.size(), rest.empty() ? 0.0 : median(rest),
                        to_chunk.size(), to_chunk.empty() ? 0.0 : median(to_chunk), landed.empty() ? 0.0 : median(landed),
                        after.empty() ? 0.0 : median(after));
    }
    if (csv) {
        FILE* f = std::fopen(csv, "w");
        if (!f) return 1;
        std::fprintf(f, "block,sm,wave,entry_ns,exit_ns,clk_entry,clk_first,clk_loop_end,clk_staged,clk_stored\n");
        for (long long b = 0; b < blocks; ++b) {
            const unsigned long long* s = &h[b * kTraceSlots];
            std::fprintf(f, "%lld,%llu,%d,%llu,%llu,%llu,%llu,%llu,%llu,%llu\n", b, s[7], wave[b] + 1, s[0] - t0, s[6] - t0, s[1],
                         s[3], s[4], s[2], s[5]);
        }
        std::fclose(f);
    }
    return 0;
}
