import pytest


@pytest.fixture(autouse=True, scope="session")
def _torch_one_thread():
    """The detectors' matrices here are tiny: torch's thread pool only adds contention on the
    shared 2-core machine (10× slower under load). Restored after the session."""
    import torch

    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)
