import os
import random

import pytest
import torch


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
