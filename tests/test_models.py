"""Every family honours the one interface: incremental steps equal teacher forcing, attention is a distribution."""

import pytest
import torch

from attend.config import ModelConfig
from attend.models import build_model
from attend.models.output_layer import vocabulary_logits
from attend.models.transformer import MultiHeadAttention

VARIANTS = [
    ("rnn", {}),
    ("rnn", {"cell": "lstm", "bidirectional": False}),
    ("rnn-attention", {"attention": "dot"}),
    ("rnn-attention", {"attention": "general", "cell": "lstm"}),
    ("rnn-attention", {"attention": "concat", "input_feeding": True}),
    ("rnn-attention", {"attention": "bahdanau"}),
    ("transformer", {}),
    ("transformer", {"norm": "post", "positions": "learned", "tie_embeddings": False}),
]


def make(family, **extra):
    torch.manual_seed(0)
    cfg = ModelConfig(family=family, hidden_size=32, embed_dim=16, ff_size=64, encoder_layers=2, decoder_layers=2,
                      heads=4, dropout=0.0, **extra)
    return build_model(cfg, 20, 15).eval()


def batch():
    torch.manual_seed(1)
    src = torch.randint(4, 20, (3, 7))
    src[1, 5:] = 0  # padding
    return src, src != 0, torch.randint(4, 15, (3, 6))


@pytest.mark.parametrize("family,extra", VARIANTS, ids=[f"{f}-{'-'.join(map(str, e.values()))}" for f, e in VARIANTS])
def test_incremental_steps_equal_teacher_forcing(family, extra):
    model = make(family, **extra)
    src, src_mask, tgt = batch()
    memory = model.encode(src, src_mask)
    logits, attention = model.decode(tgt, memory, return_attention=True)
    state, step_logits, step_attention = model.init_state(memory), [], []
    for t in range(tgt.size(1)):
        out, state, weights = model.step(tgt[:, t], state, memory, return_attention=True)
        step_logits.append(out)
        step_attention.append(weights)
    assert logits.shape == (3, 6, 15)
    torch.testing.assert_close(torch.stack(step_logits, 1), logits, atol=1e-5, rtol=1e-4)
    if not model.has_attention:
        assert attention is None
        return
    layers = 2 if family == "transformer" else 1
    heads = 4 if family == "transformer" else 1
    assert attention.shape == (3, layers, heads, 6, 7)
    torch.testing.assert_close(torch.stack(step_attention, 3), attention, atol=1e-5, rtol=1e-4)
    torch.testing.assert_close(attention.sum(-1), torch.ones(3, layers, heads, 6))
    assert attention[1, ..., 5:].abs().max() == 0  # no weight on padding


def test_padding_does_not_change_a_sentence():
    for family, extra in VARIANTS:
        model = make(family, **extra)
        src, src_mask, tgt = batch()
        alone = model(src[1:2, :5], src_mask[1:2, :5], tgt[1:2])
        padded = model(src, src_mask, tgt)[1:2]
        torch.testing.assert_close(alone, padded, atol=1e-5, rtol=1e-4, msg=family)


def test_fused_attention_equals_explicit_softmax():
    torch.manual_seed(0)
    mha = MultiHeadAttention(32, 4, dropout=0.0).eval()
    x, memory = torch.randn(2, 5, 32), torch.randn(2, 7, 32)
    mask = torch.ones(2, 1, 1, 7, dtype=torch.bool)
    mask[0, ..., 4:] = False
    k, v = mha.keys_values(memory)
    fused, _ = mha(x, k, v, mask=mask)
    explicit, weights = mha(x, k, v, mask=mask, return_weights=True)
    torch.testing.assert_close(fused, explicit, atol=1e-5, rtol=1e-4)
    k, v = mha.keys_values(x)
    fused, _ = mha(x, k, v, causal=True)
    explicit, weights = mha(x, k, v, causal=True, return_weights=True)
    torch.testing.assert_close(fused, explicit, atol=1e-5, rtol=1e-4)
    assert weights[:, :, 0, 1:].abs().max() == 0  # the first position sees only itself


def test_output_layer_cpu_layout_equals_linear_and_follows_weight_changes():
    torch.manual_seed(0)
    layer, x = torch.nn.Linear(16, 50), torch.randn(3, 4, 16)
    with torch.no_grad():
        torch.testing.assert_close(vocabulary_logits(layer, x), layer(x), atol=1e-5, rtol=1e-4)
        assert "_transposed_weight" in layer.__dict__  # the CPU layout was used, not the module's own path
        layer.weight.mul_(-2.0)  # what an optimizer step or a checkpoint load does: an in-place write
        torch.testing.assert_close(vocabulary_logits(layer, x), layer(x), atol=1e-5, rtol=1e-4)
    vocabulary_logits(layer, x).sum().backward()  # training takes nn.Linear's path, so gradients flow
    assert layer.weight.grad is not None and layer.weight.grad.abs().sum() > 0


def test_attention_adds_few_parameters_so_families_compare_at_equal_size():
    plain, attentive = make("rnn"), make("rnn-attention")
    count = lambda m: sum(p.numel() for p in m.parameters())
    assert 1.0 < count(attentive) / count(plain) < 1.5  # comparable sizes: attention adds little
