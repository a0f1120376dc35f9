// Host helpers shared by the trace tools (mma_phases.cu, wgmma_waves.cu): a CUDA call checker that
// exits with the failing call's text, a median, and a timestep bias table for a launch.
#pragma once
#include <algorithm>
#include <cstdio>
#include <cstdlib>
#include <string>
#include <vector>

#include <cuda_runtime.h>

#include "lut_kernels.h"

#define CK(x)                                                                                       \
    do {                                                                                            \
        cudaError_t e_ = (x);                                                                       \
        if (e_ != cudaSuccess) {                                                                    \
            std::fprintf(stderr, "%s:%d %s: %s\n", __FILE__, __LINE__, #x, cudaGetErrorString(e_)); \
            std::exit(1);                                                                           \
        }                                                                                           \
    } while (0)

static double median(std::vector<double> v) {
    if (v.empty()) return 0.0;
    std::sort(v.begin(), v.end());
    return v[v.size() / 2];
}

// The environment variable `env` = rows / one: an 8-bucket fp16 timestep bias table (~0.001) on `a`,
// per-row t (M values spread over [0, 1), shifted by t_offset / 1000) or one t, as lut_matmul
// passes them; anything else leaves `a` without one. Prints which.
static void set_ts_table(const char* env, int M, int N, int t_offset, quantdllm::MmaArgs& a) {
    const char* form = std::getenv(env);
    const bool rows = form && std::string(form) == "rows", one = form && std::string(form) == "one";
    if (!rows && !one) return;
    const int T = 8, tn = rows ? M : 1;
    std::vector<float> ht(tn), hb(T - 1);
    for (int i = 0; i < tn; ++i) ht[i] = static_cast<float>((i * 7919 + t_offset) % 1000) / 1000.f;
    for (int i = 0; i < T - 1; ++i) hb[i] = static_cast<float>(i + 1) / T;
    std::vector<uint16_t> hts(static_cast<size_t>(T) * N, 0x1400);  // fp16 ~0.001
    float *t, *bounds;
    void* ts_bias;
    CK(cudaMalloc(&t, tn * 4));
    CK(cudaMalloc(&bounds, (T - 1) * 4));
    CK(cudaMalloc(&ts_bias, hts.size() * 2));
    CK(cudaMemcpy(t, ht.data(), tn * 4, cudaMemcpyHostToDevice));
    CK(cudaMemcpy(bounds, hb.data(), (T - 1) * 4, cudaMemcpyHostToDevice));
    CK(cudaMemcpy(ts_bias, hts.data(), hts.size() * 2, cudaMemcpyHostToDevice));
    a.t = t; a.t_numel = tn; a.bounds = bounds; a.nbounds = T - 1; a.ts_bias = ts_bias;
    a.ts_bias_dtype = quantdllm::DType::F16;
    std::printf("timestep bias: 8 buckets, %s\n", tn == 1 ? "one t" : "per-row t");
}
