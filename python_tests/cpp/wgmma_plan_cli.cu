// wgmma_plan (csrc/lut_wgmma.cu) as a command, for python_tests/test_wgmma_plan.py: the plan is host
// code, so its rules are checked on any machine with nvcc, no GPU.
//   wgmma_plan_cli M N K SMS     -> "bn ksplit per_split split_from ts_shift"
//   wgmma_plan_cli sweep         -> checks every plan of a grid against the launch's rules; exit 1 on a violation
#include <cstdio>
#include <cstdlib>
#include <cstring>

#include "lut_kernels.h"

using namespace quantdllm;

static int check(int M, int N, int K, int sms) {
    const WgmmaPlan p = wgmma_plan(M, N, K, sms);
    const int chunks = K / 64;
    const long long tiles = static_cast<long long>((N + 127) / 128) * ((M + p.bn - 1) / p.bn);
    const char* bad = nullptr;
    if (p.bn != 64 && p.bn != 128 && p.bn != 256) bad = "tile";
    else if (p.ksplit < 1 || p.ksplit > 8) bad = "ksplit outside 1..8";
    else if (p.ksplit > 1 && p.per_split % 4) bad = "per_split not a multiple of 4";
    else if (static_cast<long long>(p.ksplit - 1) * p.per_split >= chunks || static_cast<long long>(p.ksplit) * p.per_split < chunks)
        bad = "slices do not cover K exactly";
    else if (p.split_from < 0 || p.split_from > tiles) bad = "split_from outside the tiles";
    else if (p.split_from % p.ksplit) bad = "split_from not a multiple of the cluster";
    else if (p.ksplit == 1 && p.split_from != 0) bad = "unsplit plan with split_from";
    else if (p.ts_shift < 0 || p.ts_shift >= p.per_split) bad = "ts_shift leaves slice 0 no chunk";
    else if (p.ksplit == 1 && p.ts_shift != 0) bad = "unsplit plan with ts_shift";
    if (bad) std::printf("M %d N %d K %d sms %d: bn %d ks %d per %d from %d: %s\n", M, N, K, sms, p.bn, p.ksplit,
                         p.per_split, p.split_from, bad);
    return bad ? 1 : 0;
}

int main(int argc, char** argv) {
    if (argc == 2 && !std::strcmp(argv[1], "sweep")) {
        int bad = 0, n = 0;
        for (int sms : {78, 108, 114, 132})
            for (int K : {64, 128, 640, 1280, 4096, 11008, 12288})
                for (int N : {64, 200, 4096, 11008, 12288, 126464})
                    for (int M : {65, 100, 128, 256, 300, 384, 512, 700, 768, 1024, 2048, 4096}) bad += check(M, N, K, sms), ++n;
        std::printf("%d plans, %d bad\n", n, bad);
        return bad ? 1 : 0;
    }
    if (argc != 5) {
        std::fprintf(stderr, "usage: %s M N K SMS | sweep\n", argv[0]);
        return 2;
    }
    const WgmmaPlan p = wgmma_plan(std::atoi(argv[1]), std::atoi(argv[2]), std::atoi(argv[3]), std::atoi(argv[4]));
    std::printf("%d %d %d %d %d\n", p.bn, p.ksplit, p.per_split, p.split_from, p.ts_shift);
    return check(std::atoi(argv[1]), std::atoi(argv[2]), std::atoi(argv[3]), std::atoi(argv[4]));
}
