"""Where a build embeds: --device (tested here only as far as a machine without a GPU allows)."""

import pytest

from kzqa.stores.base import IndexProblem
from kzqa.stores.building import resolve_device


def test_auto_falls_back_to_the_cpu_without_a_gpu():
    torch = pytest.importorskip("torch")
    if torch.cuda.is_available():
        pytest.skip("this machine has a GPU: auto would choose it")
    assert resolve_device("auto") == "cpu"
    assert resolve_device("cpu") == "cpu"


def test_cuda_without_a_gpu_and_unknown_devices_are_refused():
    torch = pytest.importorskip("torch")
    if not torch.cuda.is_available():
        with pytest.raises(IndexProblem, match="torch sees no GPU"):
            resolve_device("cuda")
    with pytest.raises(IndexProblem, match="--device must be cpu, cuda or auto"):
        resolve_device("tpu")
