// torch.ops.quantdllm.{lut_gemv, lut_dequant}: the only file that knows about torch.
// Arguments are checked again here (the Python backend checks first and names them for users);
// launches go on the current stream, with no host synchronisation, so they are graph-capturable.
// Fake (meta) implementations live in quantdllm_kernels/backends/cuda_backend.py.
#include <algorithm>
#include <cstdio>
#include <cstdlib>

#include <ATen/ATen.h>
#include <c10/cuda/CUDAGuard.h>
#include <c10/cuda/CUDAStream.h>
#include <torch/library.h>

#include "lut_kernels.h"

namespace quantdllm {
namespace {

// Integers in error messages go through snprintf. On the GPU machine's toolchain (g++ 13 headers,
// -Bsymbolic-functions), streaming an int64_t into c10::str from this extension crashed inside
// ostream::_M_insert<long> -- a segfault instead of the error; character arrays stream safely.
struct Dec {
    char s[24];
    explicit Dec(int64_t v) { std::snprintf(s, sizeof s, "%lld", static_cast<long long>(v)); }
};

DType dtype_of(const at::Tensor& t, const char* name) {
    switch (t.scalar_type()) {
        case at::kHalf: return DType::F16;
        case at::kBFloat16: return DType::BF16;
        case at::kFloat: return DType::F32;
        default: TORCH_CHECK(false, name, " must be float16, bfloat16 or float32, got ", t.scalar_type());
    }
}

void check_on(const at::Tensor& t, const at::Tensor& ref, const char* name) {
    TORCH_CHECK(t.device() == ref.device(), name, " is on ", t.device(), " but codes are on ", ref.device());
    TORCH_CHECK(t.is_contiguous(), name, " must be contiguous");
}

// t (1 or more fp32 timesteps) and the bucket boundaries, checked together; both or neither.
void check_timesteps(const std::optional<at::Tensor>& t, const std::optional<at::Tensor>& boundaries,
                     const at::Tensor& codes) {
    TORCH_CHECK(t.has_value() == boundaries.has_value(), "t and boundaries go together");
    if (!t) return;
    check_on(*t, codes, "t");
    check_on(*boundaries, codes, "boundaries");
    TORCH_CHECK(t->scalar_type() == at::kFloat && boundaries->scalar_type() == at::kFloat,
                "t and boundaries must be float32");
    TORCH_CHECK(boundaries->dim() == 1 && boundaries->numel() < 64, "boundaries must be 1-D with at most 63 values");
}

LutWeight make_weight(const at::Tensor& codes, const at::Tensor& f0, const std::optional<at::Tensor>& f1,
                      const std::optional<at::Tensor>& f2, at::IntArrayRef bucket_strides,
                      const std::optional<at::Tensor>& lut_bucket, const std::optional<at::Tensor>& in_scale,
                      const std::optional<at::Tensor>& t, const std::optional<at::Tensor>& boundaries,
                      int64_t bits, int64_t kind, int64_t group_size, bool cb_per_row) {
    TORCH_CHECK(codes.is_cuda(), "codes must be a CUDA tensor");
    TORCH_CHECK(codes.scalar_type() == at::kInt && codes.dim() == 2 && codes.is_contiguous(),
                "codes must be contiguous int32 (N, K/32*bits)");
    TORCH_CHECK(kind >= 0 && kind <= 2, "kind must be 0 (table), 1 (scaled) or 2 (binary)");
    TORCH_CHECK(bucket_strides.size() == 3, "bucket_strides must have 3 entries");
    LutWeight w;
    TORCH_CHECK(reinterpret_cast<uintptr_t>(codes.data_ptr()) % 16 == 0,
                "codes must be 16-byte aligned (clone() a tensor that views into a larger buffer)");
    w.codes = codes.data_ptr<int32_t>();
    w.N = static_cast<int>(codes.size(0));
    w.bits = static_cast<int>(bits);
    TORCH_CHECK(bits >= 1 && bits <= 4, "bits must be 1..4");
    w.K = static_cast<int>(codes.size(1) / bits * 32);
    TORCH_CHECK(codes.size(1) % bits == 0, "codes has ", Dec(codes.size(1)).s, " words per row, not a multiple of bits");
    w.group_size = static_cast<int>(group_size);
    w.kind = static_cast<LutKind>(kind);
    w.cb_per_row = cb_per_row;
    const std::optional<at::Tensor> fields[3] = {f0, f1, f2};
    for (int i = 0; i < 3; ++i) {
        if (!fields[i]) continue;
        check_on(*fields[i], codes, "a LUT field");
        TORCH_CHECK(fields[i]->scalar_type() == f0.scalar_type(), "LUT fields must share one dtype");
        w.f[i] = fields[i]->data_ptr();
        w.bucket_stride[i] = bucket_strides[i];
    }
    w.lut_dtype = dtype_of(f0, "LUT fields");
    if (lut_bucket) {
        check_on(*lut_bucket, codes, "lut_bucket");
        TORCH_CHECK(lut_bucket->scalar_type() == at::kInt && lut_bucket->numel() == 1, "lut_bucket must be one int32");
        w.lut_bucket = lut_bucket->data_ptr<int32_t>();
    }
    check_timesteps(t, boundaries, codes);
    if (t) {
        w.t = t->data_ptr<float>();
        w.t_numel = static_cast<int>(t->numel());
        w.bounds = boundaries->data_ptr<float>();
        w.nbounds = static_cast<int>(boundaries->numel());
    }
    const bool per_bucket = bucket_strides[0] || bucket_strides[1] || bucket_strides[2];
    TORCH_CHECK(!per_bucket || lut_bucket || (t && t->numel() == 1),
                "per-bucket LUT fields need lut_bucket or one timestep t");
    if (in_scale) {
        check_on(*in_scale, codes, "in_scale");
        TORCH_CHECK(in_scale->numel() == w.K, "in_scale must have K elements");
        w.in_scale = in_scale->data_ptr();
        w.in_scale_dtype = dtype_of(*in_scale, "in_scale");
    }
    const char* why = check_weight(w);
    TORCH_CHECK(why == nullptr, why ? why : "");
    return w;
}

at::Tensor lut_gemv(const at::Tensor& x, const at::Tensor& codes, const at::Tensor& f0,
                    const std::optional<at::Tensor>& f1, const std::optional<at::Tensor>& f2,
                    at::IntArrayRef bucket_strides, const std::optional<at::Tensor>& lut_bucket,
                    const std::optional<at::Tensor>& in_scale, const std::optional<at::Tensor>& bias,
                    const std::optional<at::Tensor>& t, const std::optional<at::Tensor>& boundaries,
                    const std::optional<at::Tensor>& ts_bias, int64_t bits, int64_t kind, int64_t group_size,
                    bool cb_per_row) {
    const c10::cuda::CUDAGuard guard(codes.device());
    GemvArgs a;
    a.w = make_weight(codes, f0, f1, f2, bucket_strides, lut_bucket, in_scale, t, boundaries, bits, kind, group_size,
                      cb_per_row);
    check_on(x, codes, "x");
    TORCH_CHECK(x.dim() == 2 && x.size(1) == a.w.K, "x must be (M, ", a.w.K, ")");
    TORCH_CHECK(x.scalar_type() == at::kHalf || x.scalar_type() == at::kBFloat16, "x must be float16 or bfloat16");
    TORCH_CHECK(reinterpret_cast<uintptr_t>(x.data_ptr()) % 16 == 0, "x must be 16-byte aligned");
    a.x = x.data_ptr();
    a.x_dtype = dtype_of(x, "x");
    a.M = static_cast<int>(x.size(0));
    if (bias) {
        check_on(*bias, codes, "bias");
        TORCH_CHECK(bias->numel() == a.w.N, "bias must have N elements");
        a.bias = bias->data_ptr();
        a.bias_dtype = dtype_of(*bias, "bias");
    }
    if (ts_bias) {
        check_on(*ts_bias, codes, "ts_bias");
        TORCH_CHECK(t.has_value(), "ts_bias needs the timesteps t");
        TORCH_CHECK(ts_bias->dim() == 2 && ts_bias->size(1) == a.w.N && ts_bias->size(0) == a.w.nbounds + 1,
                    "ts_bias must be (len(boundaries) + 1, N)");
        TORCH_CHECK(a.w.t_numel == 1 || a.w.t_numel == a.M, "t must have 1 or M values");
        a.ts_bias = ts_bias->data_ptr();
        a.ts_bias_dtype = dtype_of(*ts_bias, "ts_bias");
    }
    if (a.M == 0) return at::empty({0, a.w.N}, x.options());
    int sms = 0;
    TORCH_CHECK(cudaDeviceGetAttribute(&sms, cudaDevAttrMultiProcessorCount, codes.get_device()) == cudaSuccess,
                "cudaDeviceGetAttribute failed");
    a.ksplit = gemv_ksplit(a, sms);
    at::Tensor y = a.ksplit == 1 ? at::empty({a.M, a.w.N}, x.options())
                                 : at::zeros({a.M, a.w.N}, x.options().dtype(at::kFloat));
    a.y = y.data_ptr();
    const cudaError_t err = launch_lut_gemv(a, c10::cuda::getCurrentCUDAStream().stream());
    TORCH_CHECK(err == cudaSuccess, "lut_gemv launch failed: ", cudaGetErrorString(err));
    return a.ksplit == 1 ? y : y.to(x.scalar_type());
}

at::Tensor lut_dequant(const at::Tensor& codes, const at::Tensor& f0, const std::optional<at::Tensor>& f1,
                       const std::optional<at::Tensor>& f2, at::IntArrayRef bucket_strides,
                       const std::optional<at::Tensor>& lut_bucket, const std::optional<at::Tensor>& in_scale,
                       const std::optional<at::Tensor>& t, const std::optional<at::Tensor>& boundaries,
                       int64_t bits, int64_t kind, int64_t group_size, bool cb_per_row, at::ScalarType dtype) {
    const c10::cuda::CUDAGuard guard(codes.device());
    DequantArgs a;
    a.w = make_weight(codes, f0, f1, f2, bucket_strides, lut_bucket, in_scale, t, boundaries, bits, kind, group_size,
                      cb_per_row);
    TORCH_CHECK(dtype == at::kHalf || dtype == at::kBFloat16, "dtype must be float16 or bfloat16");
    at::Tensor out = at::empty({a.w.N, a.w.K}, codes.options().dtype(dtype));
    a.out = out.data_ptr();
    a.out_dtype = dtype == at::kHalf ? DType::F16 : DType::BF16;
    const cudaError_t err = launch_lut_dequant(a, c10::cuda::getCurrentCUDAStream().stream());
    TORCH_CHECK(err == cudaSuccess, "lut_dequant launch failed: ", cudaGetErrorString(err));
    return out;
}

void ts_bias_add_(const at::Tensor& y, const at::Tensor& t, const at::Tensor& boundaries, const at::Tensor& ts_bias) {
    const c10::cuda::CUDAGuard guard(y.device());
    TORCH_CHECK(y.is_cuda() && y.dim() == 2 && y.is_contiguous(), "y must be a contiguous CUDA (M, N) tensor");
    TORCH_CHECK(y.scalar_type() == at::kHalf || y.scalar_type() == at::kBFloat16, "y must be float16 or bfloat16");
    check_on(t, y, "t");
    check_on(boundaries, y, "boundaries");
    check_on(ts_bias, y, "ts_bias");
    TORCH_CHECK(t.scalar_type() == at::kFloat && boundaries.scalar_type() == at::kFloat, "t, boundaries: float32");
    TORCH_CHECK(t.numel() == 1 || t.numel() == y.size(0), "t must have 1 or M values");
    TORCH_CHECK(ts_bias.dim() == 2 && ts_bias.size(0) == boundaries.numel() + 1 && ts_bias.size(1) == y.size(1),
                "ts_bias must be (len(boundaries) + 1, N)");
    TsBiasArgs a;
    a.y = y.data_ptr();
    a.y_dtype = dtype_of(y, "y");
    a.M = static_cast<int>(y.size(0));
    a.N = static_cast<int>(y.size(1));
    a.t = t.data_ptr<float>();
    a.t_numel = static_cast<int>(t.numel());
    a.bounds = boundaries.data_ptr<float>();
    a.nbounds = static_cast<int>(boundaries.numel());
    a.ts_bias = ts_bias.data_ptr();
    a.ts_bias_dtype = dtype_of(ts_bias, "ts_bias");
    if (a.M == 0) return;
    const cudaError_t err = launch_ts_bias_add(a, c10::cuda::getCurrentCUDAStream().stream());
    TORCH_CHECK(err == cudaSuccess, "ts_bias_add launch failed: ", cudaGetErrorString(err));
}


// The tensor-core paths' arguments, checked: weights in the fragment-order layout of
// backends/cuda_layout.py (shared by lut_mma and lut_wgmma).
MmaArgs mma_args(const at::Tensor& x, const at::Tensor& codes, const at::Tensor& sz, int64_t N, int64_t K,
                 int64_t bits, int64_t group_shift, const std::optional<at::Tensor>& in_scale,
                 const std::optional<at::Tensor>& bias, const std::optional<at::Tensor>& t,
                 const std::optional<at::Tensor>& boundaries, const std::optional<at::Tensor>& ts_bias) {
    TORCH_CHECK(bits >= 2 && bits <= 4, "bits must be 2, 3 or 4");
    TORCH_CHECK(K > 0 && K % 64 == 0 && N > 0, "K must be a positive multiple of 64 and N positive");
    TORCH_CHECK(group_shift >= 6 && group_shift <= 31, "group_shift must be in [6, 31] (groups of >= 64 codes)");
    const int64_t super_k = mma_super_k(static_cast<int>(bits));
    const int64_t tiles = (N + 31) / 32 * 2, U = (K + super_k - 1) / super_k;
    TORCH_CHECK(codes.is_cuda() && codes.scalar_type() == at::kInt && codes.is_contiguous() &&
                    codes.sizes() == at::IntArrayRef({tiles, U, super_k / 64 * bits / 4, 32, 4}),
                "codes must be contiguous int32 (", Dec(tiles).s, ", ", Dec(U).s, ", ", Dec(super_k / 64 * bits / 4).s, ", 32, 4)");
    TORCH_CHECK(reinterpret_cast<uintptr_t>(codes.data_ptr()) % 16 == 0, "codes must be 16-byte aligned");
    check_on(x, codes, "x");
    TORCH_CHECK(x.dim() == 2 && x.size(1) == K, "x must be (M, ", Dec(K).s, ")");
    TORCH_CHECK(x.scalar_type() == at::kHalf || x.scalar_type() == at::kBFloat16, "x must be float16 or bfloat16");
    TORCH_CHECK(reinterpret_cast<uintptr_t>(x.data_ptr()) % 16 == 0, "x must be 16-byte aligned");
    check_on(sz, codes, "sz");
    const int64_t groups = group_shift >= 31 ? 1 : (K >> group_shift);
    TORCH_CHECK(sz.scalar_type() == x.scalar_type() && sz.dim() == 4 && sz.size(0) == tiles &&
                    sz.size(1) == groups && sz.size(2) == 8 && sz.size(3) == 4,
                "sz must be (", Dec(tiles).s, ", ", Dec(groups).s, ", 8, 4) in x's dtype");
    TORCH_CHECK(N * K < (1LL << 31) && x.size(0) * std::max(N, K) < (1LL << 31), "tensors must have < 2**31 elements");
    MmaArgs a;
    a.codes = codes.data_ptr<int32_t>();
    a.sz = sz.data_ptr();
    a.N = static_cast<int>(N);
    a.K = static_cast<int>(K);
    a.bits = static_cast<int>(bits);
    a.group_shift = static_cast<int>(group_shift);
    a.groups = static_cast<int>(groups);
    a.x = x.data_ptr();
    a.x_dtype = dtype_of(x, "x");
    a.M = static_cast<int>(x.size(0));
    if (in_scale) {
        check_on(*in_scale, codes, "in_scale");
        TORCH_CHECK(in_scale->numel() == K && in_scale->scalar_type() == x.scalar_type(),
                    "in_scale must have K elements in x's dtype");
        a.in_scale = in_scale->data_ptr();
    }
    if (bias) {
        check_on(*bias, codes, "bias");
        TORCH_CHECK(bias->numel() == N, "bias must have N elements");
        a.bias = bias->data_ptr();
        a.bias_dtype = dtype_of(*bias, "bias");
    }
    check_timesteps(t, boundaries, codes);
    TORCH_CHECK(!ts_bias || t, "ts_bias needs the timesteps t");
    if (t) {
        TORCH_CHECK(t->numel() == 1 || t->numel() == x.size(0), "t must have 1 or M values");
        a.t = t->data_ptr<float>();
        a.t_numel = static_cast<int>(t->numel());
        a.bounds = boundaries->data_ptr<float>();
        a.nbounds = static_cast<int>(boundaries->numel());
    }
    if (ts_bias) {
        check_on(*ts_bias, codes, "ts_bias");
        TORCH_CHECK(ts_bias->dim() == 2 && ts_bias->size(1) == N && ts_bias->size(0) == a.nbounds + 1,
                    "ts_bias must be (len(boundaries) + 1, N)");
        a.ts_bias = ts_bias->data_ptr();
        a.ts_bias_dtype = dtype_of(*ts_bias, "ts_bias");
    }
    return a;
}

int sm_count(const at::Tensor& on) {
    int sms = 0;
    TORCH_CHECK(cudaDeviceGetAttribute(&sms, cudaDevAttrMultiProcessorCount, on.get_device()) == cudaSuccess,
                "cudaDeviceGetAttribute failed");
    return sms;
}

// The tensor-core path for M up to a few hundred (mma.sync, any sm_80+).
at::Tensor lut_mma(const at::Tensor& x, const at::Tensor& codes, const at::Tensor& sz, int64_t N, int64_t K,
                   int64_t bits, int64_t group_shift, const std::optional<at::Tensor>& in_scale,
                   const std::optional<at::Tensor>& bias, const std::optional<at::Tensor>& t,
                   const std::optional<at::Tensor>& boundaries, const std::optional<at::Tensor>& ts_bias,
                   const at::Tensor& semaphores) {
    const c10::cuda::CUDAGuard guard(codes.device());
    MmaArgs a = mma_args(x, codes, sz, N, K, bits, group_shift, in_scale, bias, t, boundaries, ts_bias);
    at::Tensor y = at::empty({x.size(0), N}, x.options());
    if (a.M == 0) return y;
    a.y = y.data_ptr();
    const MmaPlan plan = mma_plan(a.M, a.N, a.K, a.bits, sm_count(codes), a.x_dtype, a.in_scale != nullptr);
    at::Tensor ws;
    if (plan.ksplit > 1) {
        check_on(semaphores, codes, "semaphores");
        TORCH_CHECK(semaphores.scalar_type() == at::kInt &&
                        semaphores.numel() >= static_cast<int64_t>(plan.grid_x) * plan.grid_y,
                    "semaphores must be zeroed int32 with at least ", static_cast<int64_t>(plan.grid_x) * plan.grid_y,
                    " elements");
        ws = at::empty({plan.ksplit, a.M, N}, x.options().dtype(at::kFloat));
        a.workspace = ws.data_ptr<float>();
        a.semaphores = semaphores.data_ptr<int32_t>();
    }
    const cudaError_t err = launch_lut_mma(a, plan, c10::cuda::getCurrentCUDAStream().stream());
    TORCH_CHECK(err == cudaSuccess, "lut_mma launch failed: ", cudaGetErrorString(err));
    return y;
}

bool wgmma_supported(int64_t device) {
    int major = 0, minor = 0;
    if (!wgmma_built() || cudaDeviceGetAttribute(&major, cudaDevAttrComputeCapabilityMajor, static_cast<int>(device)) != cudaSuccess ||
        cudaDeviceGetAttribute(&minor, cudaDevAttrComputeCapabilityMinor, static_cast<int>(device)) != cudaSuccess)
        return false;
    return major == 9 && minor == 0;  // sm_90a code runs on compute capability 9.0 only
}

// The large-M tensor-core path (wgmma, sm_90a): x permuted into the layout's k order first.
at::Tensor lut_wgmma(const at::Tensor& x, const at::Tensor& codes, const at::Tensor& sz, int64_t N, int64_t K,
                     int64_t bits, int64_t group_shift, const std::optional<at::Tensor>& in_scale,
                     const std::optional<at::Tensor>& bias, const std::optional<at::Tensor>& t,
                     const std::optional<at::Tensor>& boundaries, const std::optional<at::Tensor>& ts_bias) {
    const c10::cuda::CUDAGuard guard(codes.device());
    TORCH_CHECK(wgmma_supported(codes.get_device()),
                "lut_wgmma needs a compute capability 9.0 GPU and an extension built with 9.0a in TORCH_CUDA_ARCH_LIST");
    MmaArgs a = mma_args(x, codes, sz, N, K, bits, group_shift, in_scale, bias, t, boundaries, ts_bias);
    TORCH_CHECK(x.is_contiguous(), "x must be contiguous");
    at::Tensor y = at::empty({x.size(0), N}, x.options());
    if (a.M == 0) return y;
    a.y = y.data_ptr();
    const cudaStream_t stream = c10::cuda::getCurrentCUDAStream().stream();
    // Codes without in_scale at M >= 256: x as stored (the kernel reorders the codes in registers,
    // or gathers them through shared memory at 3 bits; 2/3-bit since the twenty-first session);
    // otherwise the pre-pass. Measured for 4-bit (H200, sixteenth
    // session, x_as_stored_ab_s16_call4.txt):
    // x as stored is 0.8-1.8 µs faster at M = 256 on three shapes and 0.6-2.7 µs slower at M = 32-128
    // (there the reorder's instructions show beside shorter wgmmas, and x is small). The knob
    // QUANTDLLM_WGMMA_PREPASS (read per call, as wgmma_plan's): 1 forces the pre-pass, 0 x as stored
    // wherever it can run (tests, benchmarks).
    const char* prepass_knob = std::getenv("QUANTDLLM_WGMMA_PREPASS");
    // 3-bit: the shared-memory gather (twenty-third session) won on every shape at M = 256-1024, N =
    // 12288 included (H200, call 3, op level, x as stored / pre-pass µs: (4096, 12288) 48.3 / 50.1,
    // 79.0 / 81.3, 150.2 / 152.1; (4096, 4096) 22.2 / 24.8, 31.4 / 34.0, 51.8 / 56.2); the older
    // exchange had lost by up to 3% on N = 12288, so 3-bit took it only where N <= 6144.
    const bool can_natural = !a.in_scale;
    const bool by_default = a.M >= 256;
    a.x_natural = can_natural && (prepass_knob ? std::atoi(prepass_knob) == 0 : by_default);
    at::Tensor xp;
    if (!a.x_natural) {
        xp = at::empty_like(x);
        const cudaError_t e = launch_permute_x(a.x, a.in_scale, xp.data_ptr(), a.x_dtype, a.M, a.K, stream);
        TORCH_CHECK(e == cudaSuccess, "permute_x launch failed: ", cudaGetErrorString(e));
        a.x = xp.data_ptr();
        a.in_scale = nullptr;  // folded into xp
    }
    const cudaError_t err = launch_lut_wgmma(a, wgmma_plan(a.M, a.N, a.K, sm_count(codes)), stream);
    TORCH_CHECK(err == cudaSuccess, "lut_wgmma launch failed: ", cudaGetErrorString(err));
    return y;
}

}  // namespace
}  // namespace quantdllm

TORCH_LIBRARY_FRAGMENT(quantdllm, m) {
    m.def("lut_gemv(Tensor x, Tensor codes, Tensor f0, Tensor? f1, Tensor? f2, int[] bucket_strides, "
          "Tensor? lut_bucket, Tensor? in_scale, Tensor? bias, Tensor? t, Tensor? boundaries, Tensor? ts_bias, "
          "int bits, int kind, int group_size, bool cb_per_row) -> Tensor");
    m.def("lut_dequant(Tensor codes, Tensor f0, Tensor? f1, Tensor? f2, int[] bucket_strides, Tensor? lut_bucket, "
          "Tensor? in_scale, Tensor? t, Tensor? boundaries, int bits, int kind, int group_size, bool cb_per_row, "
          "ScalarType dtype) -> Tensor");
    m.def("ts_bias_add_(Tensor(a!) y, Tensor t, Tensor boundaries, Tensor ts_bias) -> ()");
    // semaphores: zeroed int32, left zeroed by the kernel (not a visible mutation)
    m.def("lut_mma(Tensor x, Tensor codes, Tensor sz, int N, int K, int bits, int group_shift, Tensor? in_scale, "
          "Tensor? bias, Tensor? t, Tensor? boundaries, Tensor? ts_bias, Tensor semaphores) -> Tensor");
    m.def("lut_wgmma(Tensor x, Tensor codes, Tensor sz, int N, int K, int bits, int group_shift, Tensor? in_scale, "
          "Tensor? bias, Tensor? t, Tensor? boundaries, Tensor? ts_bias) -> Tensor");
    m.def("wgmma_supported(int device) -> bool", &quantdllm::wgmma_supported);
}

TORCH_LIBRARY_IMPL(quantdllm, CUDA, m) {
    m.impl("lut_gemv", &quantdllm::lut_gemv);
    m.impl("lut_dequant", &quantdllm::lut_dequant);
    m.impl("ts_bias_add_", &quantdllm::ts_bias_add_);
    m.impl("lut_mma", &quantdllm::lut_mma);
    m.impl("lut_wgmma", &quantdllm::lut_wgmma);
}

// An importable module so `import quantdllm_kernels._C` loads the registrations above.
#include <Python.h>
static struct PyModuleDef quantdllm_C_module = {PyModuleDef_HEAD_INIT, "_C", nullptr, -1, nullptr};
PyMODINIT_FUNC PyInit__C(void) { return PyModule_Create(&quantdllm_C_module); }
