import os
import random

import torch

# Without a GPU, Triton kernels run (slowly, at small shapes) in Triton's CPU interpreter; the
# variable must be set before triton is first imported.
if not torch.cuda.is_available():
    os.environ.setdefault("TRITON_INTERPRET", "1")

import pytest  # noqa: E402


def pytest_collection_modifyitems(config, items):
    skip = pytest.mark.skip(reason="needs a CUDA GPU")
    if not torch.cuda.is_available():
        for item in items:
            if "gpu" in item.keywords:
                item.add_marker(skip)


@pytest.fixture
def gen(request):
    """A generator with a fresh seed per test (printed on failure, set QUANTDLLM_TEST_SEED to replay)."""
    seed = int(os.environ.get("QUANTDLLM_TEST_SEED", random.SystemRandom().randrange(2**31)))
    request.node.user_properties.append(("seed", seed))
    print(f"seed={seed}")
    torch.manual_seed(seed)
    return torch.Generator().manual_seed(seed)
