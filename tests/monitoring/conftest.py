import pytest


@pytest.fixture(autouse=True)
def _one_thread():
    """The detectors' matrices here are tiny: torch's and BLAS's thread pools only add contention
    on the shared 2-core machine (up to 10× slower under load). Restored after each test so
    other suites keep their setting."""
    import torch
    from threadpoolctl import threadpool_limits

    before = torch.get_num_threads()
    torch.set_num_threads(1)
    with threadpool_limits(1):
        yield
    torch.set_num_threads(before)
