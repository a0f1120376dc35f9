// Host-side shape rules shared by every kernel.
#include <cstdlib>
#include <map>
#include <mutex>
#include <set>
#include <utility>

#include "dispatch.cuh"

namespace quantdllm {

const char* check_weight(const LutWeight& w) {
    if (w.bits < 1 || w.bits > 4) return "bits must be 1, 2, 3 or 4";
    if (w.N < 1 || w.K < 1) return "the weight must have at least one row and one column";
    if (w.K % 128) return "in_features must be a multiple of 128 for the CUDA kernels (128-code units, 16-byte loads)";
    const int g = w.group_size;
    if (g < 32 || w.K % g) return "group_size must divide in_features and be at least 32";
    if (g < 128 ? (128 % g) : (g % 128)) return "group_size must be 32, 64 or a multiple of 128";
    if (!w.codes || !w.f[0]) return "codes and the first LUT field are required";
    if (w.kind == LutKind::Binary && !w.f[1]) return "a binary weight needs mu";
    if (w.kind == LutKind::Scaled && !w.f[1]) return "a scaled weight needs scale";
    return nullptr;
}

// Opt in to the device's full dynamic shared memory once per (device, kernel): the attribute is per
// device. cudaFuncSetAttribute is not a stream operation, but it stays out of CUDA-graph capture and
// off the hot path after warm-up.
cudaError_t allow_smem_once(const void* kernel) {
    static std::mutex mu;
    static std::set<std::pair<int, const void*>> done;
    int dev = 0, optin = 0;
    cudaError_t err = cudaGetDevice(&dev);
    if (err != cudaSuccess) return err;
    std::lock_guard<std::mutex> lock(mu);
    if (done.count({dev, kernel})) return cudaSuccess;
    err = cudaDeviceGetAttribute(&optin, cudaDevAttrMaxSharedMemoryPerBlockOptin, dev);
    if (err == cudaSuccess) err = cudaFuncSetAttribute(kernel, cudaFuncAttributeMaxDynamicSharedMemorySize, optin);
    if (err == cudaSuccess) done.insert({dev, kernel});
    return err;
}

bool clusters_for(const void* kernel) {
    static std::mutex mu;
    static std::map<std::pair<int, const void*>, bool> cache;
    int dev = 0;
    if (cudaGetDevice(&dev) != cudaSuccess) return false;
    std::lock_guard<std::mutex> lock(mu);
    const auto it = cache.find({dev, kernel});
    if (it != cache.end()) return it->second;
    int major = 0;
    cudaFuncAttributes fa{};
    const bool on = cudaDeviceGetAttribute(&major, cudaDevAttrComputeCapabilityMajor, dev) == cudaSuccess && major >= 9 &&
                    cudaFuncGetAttributes(&fa, kernel) == cudaSuccess && fa.ptxVersion >= 90;
    cache[{dev, kernel}] = on;
    return on;
}

bool pdl_for(const void* kernel) {
    static const bool off = std::getenv("QUANTDLLM_NO_PDL") != nullptr;
    return !off && clusters_for(kernel);  // the same two conditions: sm_90 device, sm_90 code
}

}  // namespace quantdllm
