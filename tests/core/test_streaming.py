import numpy as np
import pytest

from centerpoint_suite import streaming


@pytest.mark.parametrize(
    ("shape", "dtype"),
    [
        ((80, 128, 128), np.float32),  # a COCO boxes heatmap: the streaming path
        ((80, 128, 128), np.uint8),  # its ignore map (1.3 MB)
        ((streaming.STREAM_MIN_BYTES + 7,), np.uint8),  # a tail after the last whole chunk
        ((streaming.STREAM_MIN_BYTES - 1,), np.uint8),  # just under the threshold: np.zeros
        ((3, 5), np.int64),
        (0, np.float32),
    ],
)
def test_zeros_equals_numpy_zeros(shape, dtype):
    got = streaming.zeros(shape, dtype)
    want = np.zeros(shape, dtype)
    assert got.shape == want.shape and got.dtype == want.dtype and got.flags.c_contiguous
    np.testing.assert_array_equal(got, want)


def test_zeros_overwrites_reused_memory():
    """Freed memory handed out again holds the old values: every byte must be zeroed."""
    for _ in range(3):
        a = streaming.zeros((80, 128, 128), np.float32)
        assert not a.any()
        a.fill(np.nan)
        del a


@pytest.mark.parametrize("offset", [0, 1, 3, 8, 17, 31, 32, 33])
@pytest.mark.parametrize("size", [0, 5, 31, 32, 64, 1000, 100_003])
def test_stream_zero_touches_exactly_its_bytes(offset, size):
    """Any start address and size: the head before the first aligned chunk, the chunks and the
    tail are zeroed, and not one byte beside them."""
    buf = np.full(size + 128, 7, np.uint8)
    view = buf[offset : offset + size]
    streaming._stream_zero(view, view.ctypes.data)
    assert not view.any()
    assert (buf[:offset] == 7).all() and (buf[offset + size :] == 7).all()


def test_plain_path_where_streaming_is_off(monkeypatch):
    monkeypatch.setattr(streaming, "STREAMING", False)
    np.testing.assert_array_equal(streaming.zeros((80, 128, 128)), np.zeros((80, 128, 128), np.float32))
