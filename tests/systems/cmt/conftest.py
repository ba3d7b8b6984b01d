"""cmt tests run torch on one thread: the tensors are small, and on the shared 2-core machine intra-op threading
under load made a 50 ms training step take ~0.7 s."""

import pytest
import torch


@pytest.fixture(autouse=True)
def _one_torch_thread():
    old = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(old)
