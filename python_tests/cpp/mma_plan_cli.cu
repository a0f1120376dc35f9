// mma_plan (csrc/lut_mma.cu) as a command, for python_tests/test_mma_plan.py: the plan is host code,
// and with the blocks resident per SM given (mma_plan_with) it makes no CUDA call, so its rules are
// checked on any machine with nvcc, no GPU.
//   mma_plan_cli M N K BITS SMS R1 R2 R4  -> "nt wn ksplit cluster grid_x grid_y"
//                                           (R1 R2 R4: blocks resident per SM at 8 / 16 / 32 tokens)
//   mma_plan_cli sweep                    -> checks every plan of a grid against the launch's rules; exit 1 on a violation
#include <cstdio>
#include <cstdlib>
#include <cstring>

#include "lut_kernels.h"

using namespace quantdllm;

static MmaPlan plan(int M, int N, int K, int bits, int sms, const int (&res)[3]) {
    return mma_plan_with(M, N, K, bits, sms, [&](const MmaPlan& p) { return res[p.nt == 1 ? 0 : p.nt == 2 ? 1 : 2]; });
}

static int check(int M, int N, int K, int bits, int sms, const int (&res)[3]) {
    const MmaPlan p = plan(M, N, K, bits, sms, res);
    const int U = (K + mma_super_k(bits) - 1) / mma_super_k(bits);
    const long long blocks = static_cast<long long>(p.grid_x) * p.grid_y;
    const long long slots = static_cast<long long>(res[p.nt == 1 ? 0 : p.nt == 2 ? 1 : 2]) * sms;
    const int per = (U + p.ksplit - 1) / p.ksplit;  // the launch's per_split
    const char* bad = nullptr;
    if (p.nt != 1 && p.nt != 2 && p.nt != 4) bad = "token tile";
    else if (p.wn * p.wk != 4 || (p.wn != 1 && p.wn != 2 && p.wn != 4)) bad = "warp layout";
    else if (static_cast<long long>(p.grid_y) * p.nt * 8 < M || (p.grid_y - 1) * p.nt * 8 >= M) bad = "token tiles do not cover M exactly";
    else if (static_cast<long long>(p.grid_x) * p.wn * 32 < N || (p.grid_x - 1) * p.wn * 32 >= (N + 31) / 32 * 32) bad = "row blocks do not cover N exactly";
    else if (p.ksplit < 1 || p.ksplit > U) bad = "ksplit outside 1..U";
    else if ((p.ksplit - 1) * per >= U) bad = "an empty K slice";
    else if (p.ksplit > 1 && blocks * p.ksplit > slots) bad = "a K split past one wave";
    else if (p.cluster != (p.ksplit == 2)) bad = "cluster unless 2 slices";
    if (bad) std::printf("M %d N %d K %d bits %d sms %d: nt %d wn %d ks %d cluster %d grid %d x %d: %s\n", M, N, K, bits,
                         sms, p.nt, p.wn, p.ksplit, p.cluster, p.grid_x, p.grid_y, bad);
    return bad ? 1 : 0;
}

int main(int argc, char** argv) {
    if (argc == 2 && !std::strcmp(argv[1], "sweep")) {
        // blocks per SM of the kernels (kMinBlocks, lut_mma.cu) as sm_90 and sm_80 resolve them, and a 1-block GPU
        const int res90[3][3] = {{4, 4, 2}, {4, 3, 2}, {5, 5, 3}}, res80[3][3] = {{3, 3, 1}, {3, 2, 1}, {3, 3, 2}};
        const int one[3] = {1, 1, 1};
        int bad = 0, n = 0;
        for (int bits : {2, 3, 4})
            for (int sms : {46, 108, 132})
                for (int K : {64, 256, 640, 4096, 11008, 12288})
                    for (int N : {8, 77, 4096, 11008, 12288, 126464})
                        for (int M : {1, 2, 4, 5, 8, 9, 16, 17, 24, 32, 33, 48, 64}) {
                            bad += check(M, N, K, bits, sms, res90[bits - 2]) + check(M, N, K, bits, sms, res80[bits - 2]) +
                                   check(M, N, K, bits, sms, one);
                            n += 3;
                        }
        std::printf("%d plans, %d bad\n", n, bad);
        return bad ? 1 : 0;
    }
    if (argc != 9) {
        std::fprintf(stderr, "usage: %s M N K BITS SMS R1 R2 R4 | sweep\n", argv[0]);
        return 2;
    }
    const int a[5] = {std::atoi(argv[1]), std::atoi(argv[2]), std::atoi(argv[3]), std::atoi(argv[4]), std::atoi(argv[5])};
    const int res[3] = {std::atoi(argv[6]), std::atoi(argv[7]), std::atoi(argv[8])};
    const MmaPlan p = plan(a[0], a[1], a[2], a[3], a[4], res);
    std::printf("%d %d %d %d %d %d\n", p.nt, p.wn, p.ksplit, p.cluster ? 1 : 0, p.grid_x, p.grid_y);
    return 0;
}
