"""The fused kernels' output pool (bidl.functional.kernels.buffers): a buffer is handed out again only once
nothing but the pool refers to it."""

import pytest
import torch

from bidl.functional import lif_multi_step_reference
from bidl.functional.kernels import lif_multi_step_fused
from bidl.functional.kernels.buffers import OUTPUT_POOL, BufferPool, default_pool_bytes

MB = 1 << 20


def pool(max_mb: float = 64) -> BufferPool:
    return BufferPool(max_bytes=int(max_mb * MB), min_bytes=MB)


def test_a_free_buffer_is_handed_out_again_and_a_new_tensor_is_not_a_view():
    p = pool()
    a = p.empty([4, MB // 4], torch.float32)
    assert a.shape == (4, MB // 4) and a.is_contiguous() and a._base is None
    ptr = a.data_ptr()
    del a
    b = p.empty([4, MB // 4], torch.float32)
    assert b.data_ptr() == ptr and (p.hits, p.misses) == (1, 1)
    b.add_(1.0)  # an ordinary tensor: in-place operations allowed


@pytest.mark.parametrize(
    "holder",
    [
        lambda t: t,
        lambda t: t[1:],  # a view
        lambda t: t.numpy(),
        lambda t: t.view(-1).reshape(2, -1),
        lambda t: (torch.ones(()).requires_grad_() * t).grad_fn,  # an autograd record that saved it
        lambda t: t.untyped_storage(),
    ],
    ids=["tensor", "view", "numpy", "reshaped view", "autograd", "storage"],
)
def test_a_buffer_something_still_refers_to_is_never_handed_out(holder):
    p = pool()
    a = p.empty([MB], torch.float32)
    ptr = a.data_ptr()
    kept = holder(a)
    del a
    b = p.empty([MB], torch.float32)
    assert b.data_ptr() != ptr and p.hits == 0
    del kept  # now nothing refers to it: handed out again
    c = p.empty([MB], torch.float32)
    assert c.data_ptr() == ptr and p.hits == 1


def test_a_tensor_moved_to_shared_memory_lets_go_of_its_buffer():
    p = pool()
    a = p.empty([MB], torch.float32)
    ptr = a.data_ptr()
    a.fill_(3.0).share_memory_()  # copied into shared memory: the pool's buffer is no longer a's
    assert a.data_ptr() != ptr
    b = p.empty([MB], torch.float32)
    assert b.data_ptr() == ptr and p.hits == 1
    b.fill_(0.0)
    assert torch.equal(a, torch.full((MB,), 3.0))


def test_a_buffer_is_reused_for_the_same_size_in_bytes_in_any_dtype_and_never_for_another_size():
    p = pool()
    a = p.empty([MB], torch.float32)
    ptr = a.data_ptr()
    del a
    b = p.empty([MB + 1], torch.float32)
    assert b.data_ptr() != ptr and p.hits == 0
    c = p.empty([2, MB // 4], torch.float64)  # same 4 MB
    assert c.data_ptr() == ptr and c.dtype == torch.float64 and c.shape == (2, MB // 4) and p.hits == 1


def test_the_pool_holds_at_most_max_bytes_and_gives_back_least_recently_used_free_buffers():
    p = pool(max_mb=10)
    a = p.empty([MB], torch.float32)  # 4 MB
    b = p.empty([MB], torch.float32)  # 8 MB held
    c = p.empty([MB], torch.float32)  # would be 12: a and b in use, so c is not pooled
    assert p.held_bytes == 8 * MB
    del a, c
    d = p.empty([MB // 2], torch.float32)  # 2 MB: fits beside a's free buffer and b
    assert p.held_bytes == 10 * MB
    e = p.empty([3 * MB // 4], torch.float32)  # 3 MB: a's free buffer (least recently used) goes
    assert p.held_bytes == 9 * MB
    del b, d, e
    assert p.release() == 9 * MB and p.held_bytes == 0


def test_small_and_oversized_requests_are_plain_allocations():
    p = pool(max_mb=2)
    small = p.empty([16], torch.float32)
    big = p.empty([MB], torch.float32)  # 4 MB > max_bytes
    assert p.held_bytes == 0 and (p.hits, p.misses) == (0, 0)
    del small, big


def test_release_keeps_buffers_in_use():
    p = pool()
    a = p.empty([MB], torch.float32)
    b = p.empty([MB], torch.float32)
    del b
    assert p.release() == 4 * MB and p.held_bytes == 4 * MB
    a.fill_(1.0)


def test_the_pool_size_comes_from_the_environment(monkeypatch):
    monkeypatch.setenv("BIDL_KERNEL_POOL_MB", "16")
    assert default_pool_bytes() == 16 * MB and BufferPool().max_bytes == 16 * MB
    monkeypatch.setenv("BIDL_KERNEL_POOL_MB", "0")
    off = BufferPool()
    off.empty([MB], torch.float32)
    assert off.held_bytes == 0
    for bad in ("lots", "-1", "1.5"):
        monkeypatch.setenv("BIDL_KERNEL_POOL_MB", bad)
        with pytest.raises(ValueError, match="BIDL_KERNEL_POOL_MB"):
            default_pool_bytes()


def test_fused_outputs_stay_correct_while_earlier_outputs_are_alive_and_after_they_are_freed():
    pytest.importorskip("numba")
    torch.manual_seed(0)
    shape = (6, 4, 64, 256)  # outputs and input gradients of 1.5 MB: pooled
    xs = [torch.randn(shape) for _ in range(3)]
    grads = [torch.rand(shape) for _ in range(3)]
    refs = []
    for x, g in zip(xs, grads, strict=True):
        leaf = x.clone().requires_grad_()
        y, _ = lif_multi_step_reference(leaf, alpha=0.5)
        y.backward(g)
        refs.append((y.detach(), leaf.grad))
    hits = OUTPUT_POOL.hits
    for _round in range(2):  # the second round reuses the first round's freed buffers
        alive = []
        for x, g in zip(xs, grads, strict=True):
            leaf = x.clone().requires_grad_()
            y, _ = lif_multi_step_fused(leaf, alpha=0.5)
            y.backward(g)
            alive.append((y, leaf.grad))
        for (y, grad), (y_ref, grad_ref) in zip(alive, refs, strict=True):
            assert torch.equal(y, y_ref)
            torch.testing.assert_close(grad, grad_ref, rtol=1e-5, atol=1e-5)
        assert len({y.data_ptr() for y, _ in alive} | {g.data_ptr() for _, g in alive}) == 6
    assert OUTPUT_POOL.hits > hits
