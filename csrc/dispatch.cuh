// Compile-time dispatch over (activation dtype, bits, LUT kind): one template, every instantiation
// reachable from a runtime triple, so kernels are written once.
#pragma once
#include <cuda_bf16.h>
#include <cuda_fp16.h>

#include <utility>

#include "lut_kernels.h"

namespace quantdllm {

template <typename T> struct TypeTag { using type = T; };
template <int V> struct IntTag { static constexpr int value = V; };
template <LutKind V> struct KindTag { static constexpr LutKind value = V; };

template <typename F>
bool dispatch_kind(LutKind kind, F&& f) {
    switch (kind) {
        case LutKind::Table: f(KindTag<LutKind::Table>{}); return true;
        case LutKind::Scaled: f(KindTag<LutKind::Scaled>{}); return true;
        case LutKind::Binary: f(KindTag<LutKind::Binary>{}); return true;
    }
    return false;
}

template <typename F>
bool dispatch_bits(int bits, F&& f) {
    switch (bits) {
        case 1: f(IntTag<1>{}); return true;
        case 2: f(IntTag<2>{}); return true;
        case 3: f(IntTag<3>{}); return true;
        case 4: f(IntTag<4>{}); return true;
    }
    return false;
}

// The tensor-core kernels' bit widths (their fragment layouts exist for 2, 3 and 4 bits).
template <typename F>
bool dispatch_mma_bits(int bits, F&& f) {
    return bits >= 2 && dispatch_bits(bits, [&](auto b) {
        if constexpr (decltype(b)::value >= 2) f(b);
    });
}

template <typename F>
bool dispatch_act(DType dt, F&& f) {
    switch (dt) {
        case DType::F16: f(TypeTag<__half>{}); return true;
        case DType::BF16: f(TypeTag<__nv_bfloat16>{}); return true;
        default: return false;
    }
}

// f(TypeTag<T>, IntTag<BITS>, KindTag<KIND>) for the runtime triple; false if it is not supported.
template <typename F>
bool dispatch_weight(DType act, int bits, LutKind kind, F&& f) {
    bool ok = false;
    dispatch_act(act, [&](auto t) {
        dispatch_bits(bits, [&](auto b) {
            dispatch_kind(kind, [&](auto k) { f(t, b, k); ok = true; });
        });
    });
    return ok;
}

// Lets `kernel` use the device's opt-in maximum of dynamic shared memory; once per kernel.
cudaError_t allow_smem_once(const void* kernel);

// Whether `kernel` is launched as a programmatic dependent launch on the current device (read once
// per device and kernel): the device has it (compute capability >= 9.0), the kernel's code came from
// PTX of 9.0 or later (a build for 8.0 only, JIT-compiled for a 9.0 device, has pdl_wait compiled
// out: it must not start early), and QUANTDLLM_NO_PDL is unset.
bool pdl_for(const void* kernel);
// Whether `kernel` may be launched in thread-block clusters and take its cluster paths on the
// current device: compute capability >= 9.0 and device code from PTX of 9.0 or later (read once).
bool clusters_for(const void* kernel);
// Launches kernel<<<grid, block, smem, stream>>>(args...), programmatic where pdl_for says so: the
// kernel's blocks may start while the launch before it finishes, and must call dev::pdl_wait()
// before touching global memory. Elsewhere a plain launch (pdl_wait is then a no-op).
// With `cluster` other than (1, 1, 1), the grid's blocks are thread-block clusters of that shape
// (sm_90; see clusters_for).
template <typename... KArgs, typename... Args>
cudaError_t launch_pdl_clustered(void (*kernel)(KArgs...), dim3 grid, dim3 cluster, dim3 block, size_t smem,
                                 cudaStream_t stream, Args&&... args) {
    cudaLaunchConfig_t cfg{};
    cfg.gridDim = grid;
    cfg.blockDim = block;
    cfg.dynamicSmemBytes = smem;
    cfg.stream = stream;
    cudaLaunchAttribute attr[2] = {};
    unsigned n = 0;
    if (pdl_for(reinterpret_cast<const void*>(kernel))) {
        attr[n].id = cudaLaunchAttributeProgrammaticStreamSerialization;
        attr[n++].val.programmaticStreamSerializationAllowed = 1;
    }
    if (cluster.x * cluster.y * cluster.z > 1) {
        attr[n].id = cudaLaunchAttributeClusterDimension;
        attr[n].val.clusterDim.x = cluster.x;
        attr[n].val.clusterDim.y = cluster.y;
        attr[n++].val.clusterDim.z = cluster.z;
    }
    cfg.attrs = attr;
    cfg.numAttrs = n;
    return cudaLaunchKernelEx(&cfg, kernel, std::forward<Args>(args)...);
}
template <typename... KArgs, typename... Args>
cudaError_t launch_pdl(void (*kernel)(KArgs...), dim3 grid, dim3 block, size_t smem, cudaStream_t stream,
                       Args&&... args) {
    return launch_pdl_clustered(kernel, grid, dim3(1, 1, 1), block, smem, stream, std::forward<Args>(args)...);
}

}  // namespace quantdllm
