"""files.py: the one weight hasher (atomic writes are tested where they are used)."""

import numpy as np
import torch

from text2token.files import tensor_digest


def test_digest_is_the_same_for_torch_and_numpy_and_sees_every_change():
    a = torch.arange(6, dtype=torch.float32).reshape(2, 3)
    base = tensor_digest([("w", a)])
    assert base == tensor_digest([("w", a.numpy())]), "a tensor and its array hash alike"
    assert base != tensor_digest([("v", a)]), "the name counts"
    assert base != tensor_digest([("w", a.reshape(3, 2))]), "the shape counts"
    assert base != tensor_digest([("w", a.double())]), "the dtype counts"
    b = a.clone()
    b[1, 2] = float(np.nextafter(np.float32(5), np.float32(6)))
    assert base != tensor_digest([("w", b)]), "one ulp counts"
    assert base != tensor_digest([("w", a)], extra={"prompt": "x"})


def test_bfloat16_and_empty_tensors_hash():
    assert len(tensor_digest([("w", torch.ones(3, dtype=torch.bfloat16)), ("e", torch.zeros(0))])) == 64
