"""The CPU dropout drops the share asked for, scales the rest, and follows the seed."""

import pytest
import torch

from attend.models.dropout import Dropout, dropout
from attend.models.transformer import MultiHeadAttention


@pytest.mark.parametrize("p", [0.1, 0.3, 0.5])
def test_drops_share_p_and_scales_the_rest_to_keep_the_mean(p):
    torch.manual_seed(0)
    x = torch.rand(1_000_000) + 0.5
    out = dropout(x, p)
    dropped = out == 0
    assert abs(dropped.float().mean().item() - p) < 0.003
    kept_share = 1 - round(p * 65536) / 65536
    torch.testing.assert_close(out[~dropped], x[~dropped] / kept_share)
    assert abs(out.mean().item() / x.mean().item() - 1) < 0.005


def test_gradient_flows_through_the_kept_elements_only():
    torch.manual_seed(1)
    x = torch.randn(64, 33, requires_grad=True)  # an odd size: the last 64-bit draw is used in part
    out = dropout(x, 0.25)
    out.sum().backward()
    expected = torch.where(out != 0, 1 / 0.75, 0.0)
    torch.testing.assert_close(x.grad, expected)


def test_the_mask_follows_the_seed_and_changes_between_draws():
    x = torch.ones(4096)
    torch.manual_seed(7)
    first, second = dropout(x, 0.5), dropout(x, 0.5)
    torch.manual_seed(7)
    assert torch.equal(dropout(x, 0.5), first)
    assert not torch.equal(first, second)


def test_edges_and_dtype():
    x = torch.randn(100, 7, dtype=torch.bfloat16)
    assert dropout(x, 0.5, training=False) is x
    assert dropout(x, 0.0) is x
    assert dropout(x, 0.3).dtype == torch.bfloat16
    assert torch.count_nonzero(dropout(x, 1.0)) == 0
    layer = Dropout(0.2).eval()
    assert layer(x) is x and "p=0.2" in repr(layer)
    with pytest.raises(ValueError, match="between 0 and 1"):
        Dropout(1.5)


def test_attention_weights_are_dropped_in_training_on_cpu():
    torch.manual_seed(0)
    attention = MultiHeadAttention(d_model=16, heads=2, dropout=0.5)
    x = torch.randn(3, 5, 16)
    k, v = attention.keys_values(x)
    attention.eval()
    reference, _ = attention(x, k, v)
    attention.train()
    dropped_once, weights = attention(x, k, v)
    dropped_again, _ = attention(x, k, v)
    assert weights is None  # only returned when asked for
    assert not torch.allclose(dropped_once, reference) and not torch.allclose(dropped_once, dropped_again)
    attention.dropout = 0.0
    torch.testing.assert_close(attention(x, k, v)[0], reference)
