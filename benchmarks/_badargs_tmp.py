import torch, faulthandler, sys
faulthandler.enable()
from quantdllm_kernels.quantizers import quantize_weight
from quantdllm_kernels.backends import cuda_backend as cb
qw = quantize_weight(torch.randn(64, 256), bits=4, group_size=128, method="rtn").to("cuda")
mw = cb.mma_pack(qw, torch.float16)
x = torch.randn(2, 256).half().cuda()
sem = cb._semaphores(x.device)
print("good call", torch.ops.quantdllm.lut_mma(x, mw.codes, mw.sz, 64, 256, 4, 7, None, None, None, None, None, sem).shape, flush=True)
for name, args in [("badK", (x[:, :128].contiguous(), mw.codes, mw.sz, 64, 256, 4, 7)), ("sz", (x, mw.codes, mw.sz.float(), 64, 256, 4, 7)),
                   ("bits", (x, mw.codes, mw.sz, 64, 256, 2, 7)), ("dtype", (x.float(), mw.codes, mw.sz, 64, 256, 4, 7))]:
    print("calling", name, flush=True)
    try:
        torch.ops.quantdllm.lut_mma(*args, None, None, None, None, None, sem)
        print(name, "no error!", flush=True)
    except RuntimeError as e:
        print(name, "->", str(e).splitlines()[0], flush=True)
