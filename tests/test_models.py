"""Every family honours the one interface: incremental steps equal teacher forcing, attention is a distribution."""

import threading

import pytest
import torch

from attend.config import ModelConfig
from attend.models import build_model
from attend.inference import quantize_int8
from attend.models import inference_linear
from attend.models.base import select_rows
from attend.models.inference_linear import PreparedWeight, linear, onednn_available, prepared
from attend.models.transformer import MultiHeadAttention
from attend.models.transformer_inference import fast_path_applies, step_weights

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


def test_every_family_a_config_accepts_is_one_the_models_build():
    from attend import config, models

    assert set(config.FAMILIES) == set(models.FAMILIES)


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
    # causal with a key mask, and the last 2 queries of 5 keys (a cache): both paths mask alike
    fused, _ = mha(x, k, v, mask=mask[:, :, :, :5], causal=True)
    explicit, weights = mha(x, k, v, mask=mask[:, :, :, :5], causal=True, return_weights=True)
    torch.testing.assert_close(fused, explicit, atol=1e-5, rtol=1e-4)
    assert weights[0, :, :, 4:].abs().max() == 0 and weights[1, :, 1, 2:].abs().max() == 0
    fused, _ = mha(x[:, 3:], k, v, causal=True)
    explicit, weights = mha(x[:, 3:], k, v, causal=True, return_weights=True)
    torch.testing.assert_close(fused, explicit, atol=1e-5, rtol=1e-4)
    assert weights[:, :, 0, 4:].abs().max() == 0 and weights[:, :, 1].min() > 0  # query 3 sees keys 0-3


@pytest.mark.parametrize("sizes", [(16, 50), (50, 16)], ids=["widening", "narrowing"])
@pytest.mark.parametrize("onednn_from", [0, 1 << 40], ids=["onednn", "blas"])
def test_prepared_linear_equals_linear_for_any_rows_and_follows_weight_changes(sizes, onednn_from, monkeypatch):
    monkeypatch.setattr(inference_linear, "ONEDNN_MIN_ELEMENTS", onednn_from)  # which library serves several rows
    torch.manual_seed(0)
    layer = torch.nn.Linear(*sizes).eval()
    with torch.no_grad():
        for rows in (1, 3, 70):
            x = torch.randn(rows, sizes[0])
            torch.testing.assert_close(linear(layer, x), layer(x), atol=1e-5, rtol=1e-4)
        if onednn_from == 0 and onednn_available():
            assert prepared(layer)._packed is not None  # oneDNN really served the rows
        layer.weight.mul_(-2.0)  # what an optimizer step or a checkpoint load does: an in-place write
        for rows in (1, 3):
            x = torch.randn(2, rows, sizes[0])
            torch.testing.assert_close(linear(layer, x), layer(x), atol=1e-5, rtol=1e-4)
    linear(layer, x).sum().backward()  # training takes nn.Linear's path, so gradients flow
    assert layer.weight.grad is not None and layer.weight.grad.abs().sum() > 0


@pytest.mark.parametrize("threads", [2, 3])
def test_one_row_in_thread_blocks_equals_linear(threads, monkeypatch):
    monkeypatch.setattr(inference_linear, "BLOCKS_MIN_ELEMENTS", 0)  # every weight in blocks, one per thread
    torch.manual_seed(0)
    before = torch.get_num_threads()
    try:
        for sizes in [(16, 50), (50, 17), (8, 3)]:  # 17 and 3 columns do not split evenly: padded blocks
            layer = torch.nn.Linear(*sizes).eval()
            with torch.no_grad():
                for n in (1, threads):
                    torch.set_num_threads(n)  # blocks are remade for a new thread count
                    x = torch.randn(1, sizes[0])
                    torch.testing.assert_close(linear(layer, x), layer(x), atol=1e-5, rtol=1e-4)
                torch.set_num_threads(threads)
                assert prepared(layer)._blocks[1].size(0) == threads
    finally:
        torch.set_num_threads(before)

@pytest.mark.parametrize("blocks_from, threads", [(0, 2), (1 << 40, 2), (1 << 40, 3), (1 << 40, 1)],
                         ids=["column-blocks", "row-blocks", "row-blocks-padded", "one-thread-copy"])
def test_the_one_row_product_chosen_once_equals_linear(blocks_from, threads, monkeypatch):
    monkeypatch.setattr(inference_linear, "BLOCKS_MIN_ELEMENTS", blocks_from)
    torch.manual_seed(0)
    before = torch.get_num_threads()
    try:
        torch.set_num_threads(threads)
        for sizes, bias in [((16, 50), True), ((50, 17), True), ((16, 50), False)]:  # widening, narrowing
            layer = torch.nn.Linear(*sizes, bias=bias).eval()
            with torch.no_grad():
                weight = PreparedWeight(layer.weight, layer.bias)
                product = weight.for_one_row()
                x = torch.randn(1, sizes[0])
                torch.testing.assert_close(product(x), layer(x), atol=1e-5, rtol=1e-4)
                wide = torch.randn(1, 2 * sizes[0])
                torch.testing.assert_close(weight(wide[:, ::2]), layer(wide[:, ::2]), atol=1e-5, rtol=1e-4)  # strided
                served = {0: weight._blocks, 1 << 40: weight._row_blocks}[blocks_from] if threads > 1 else weight._copied
                assert served is not None  # the form the parameters name really served
    finally:
        torch.set_num_threads(before)


@pytest.mark.parametrize("threads", [2, 3])
def test_a_few_rows_in_row_blocks_equal_linear(threads):
    torch.manual_seed(0)
    before = torch.get_num_threads()
    try:
        torch.set_num_threads(threads)
        for sizes, bias in [((16, 50), True), ((50, 17), True), ((16, 50), False)]:  # 17, 50 rows: padded at 3
            layer = torch.nn.Linear(*sizes, bias=bias).eval()
            weight = PreparedWeight(layer.weight, layer.bias)
            with torch.no_grad():
                for count in (2, 5, inference_linear.ROW_BLOCKS_MAX_ROWS):
                    x = torch.randn(count, 2 * sizes[0])[:, ::2]  # strided rows
                    torch.testing.assert_close(weight(x), layer(x), atol=1e-5, rtol=1e-4)
                assert weight._row_blocks is not None and weight._row_blocks[1].size(0) == threads
                many = torch.randn(inference_linear.ROW_BLOCKS_MAX_ROWS + 1, sizes[0])  # another form's rows
                torch.testing.assert_close(weight(many), layer(many), atol=1e-5, rtol=1e-4)
    finally:
        torch.set_num_threads(before)


@pytest.mark.parametrize("threads", [2, 3, 4])
@pytest.mark.parametrize("extra", [{}, {"norm": "post", "positions": "learned", "tie_embeddings": False}],
                         ids=["pre-norm", "post-norm-learned"])
def test_the_one_row_step_equals_the_module_path(extra, threads):
    model = make("transformer", **extra)  # d_model 32: blocks of 16 rows at 2 and 3 threads, of 8 at 4
    src, _, tgt = batch()
    before = torch.get_num_threads()
    try:
        torch.set_num_threads(threads)
        with torch.no_grad():
            for length in (5, 3):  # two sentences: the second's cross-attention is laid out anew
                memory = model.encode(src[:1, :length], src[:1, :length] != 0)
                assert "cross_keys_folded0" in memory
                fast = bound = module = model.init_state(memory)
                step = model.stepper(memory)  # the one-row step itself, checked once
                for t in range(tgt.size(1)):
                    fast_logits, fast, _ = model.step(tgt[:1, t], fast, memory)
                    bound_logits, bound, _ = step(tgt[:1, t], bound)
                    module_logits, module, _ = model.step(tgt[:1, t], module, memory, return_attention=True)
                    torch.testing.assert_close(fast_logits, module_logits, atol=1e-5, rtol=1e-4)
                    torch.testing.assert_close(bound_logits, module_logits, atol=1e-5, rtol=1e-4)
                    for name in module:
                        torch.testing.assert_close(fast[name], module[name], atol=1e-5, rtol=1e-4)
                        torch.testing.assert_close(bound[name], module[name], atol=1e-5, rtol=1e-4)
            one_row = step_weights(model, tgt[:1, 0]).one_row_step(model.cfg.heads)
            assert one_row is not None and one_row.blocks == {2: 2, 3: 2, 4: 4}[threads]
            assert one_row.cross_attention(memory)[0][0].shape == (4, 3, 32)  # the last sentence's keys, by head
            other = model.encode(src[:1, :5], src[:1, :5] != 0)
            elsewhere = threading.Thread(target=one_row.cross_attention, args=(other,))
            elsewhere.start()
            elsewhere.join()  # another thread's sentence leaves this thread's layout alone
            assert one_row._laid_out.memory is memory["cross_keys_folded0"]
    finally:
        torch.set_num_threads(before)


def test_the_one_row_step_stands_aside_on_one_thread():
    model = make("transformer")
    src, _, tgt = batch()
    before = torch.get_num_threads()
    try:
        torch.set_num_threads(1)
        with torch.no_grad():
            model.encode(src[:1, :5], src[:1, :5] != 0)
            assert step_weights(model, tgt[:1, 0]).one_row_step(model.cfg.heads) is None
    finally:
        torch.set_num_threads(before)


@pytest.mark.parametrize("extra", [{}, {"norm": "post", "positions": "learned", "tie_embeddings": False}],
                         ids=["pre-norm", "post-norm-learned"])
def test_fast_encoder_and_step_equal_the_module_path_through_reordering_and_weight_changes(extra):
    model = make("transformer", **extra)
    src, src_mask, tgt = batch()  # one sentence padded, so the cross-attention mask matters
    with torch.no_grad():
        assert fast_path_applies(model, tgt[:, 0])
        memory = model.encode(src, src_mask)  # the fast encoder pass
        module_memory, _ = model._run_encoder(src, src_mask, False)
        assert memory.keys() == module_memory.keys()
        for name in memory:
            torch.testing.assert_close(memory[name], module_memory[name], atol=1e-5, rtol=1e-4)
        fast = module = model.init_state(memory)
        for t in range(tgt.size(1)):
            fast_logits, fast, _ = model.step(tgt[:, t], fast, memory)
            module_logits, module, _ = model.step(tgt[:, t], module, memory, return_attention=True)  # module path
            torch.testing.assert_close(fast_logits, module_logits, atol=1e-5, rtol=1e-4)
            for name in module:
                torch.testing.assert_close(fast[name], module[name], atol=1e-5, rtol=1e-4)
            if t == 2:  # what beam search does: reorder and repeat rows, then drop one
                rows = torch.tensor([2, 0, 0])
                memory, fast, module = select_rows(memory, rows), select_rows(fast, rows), select_rows(module, rows)
        for p in model.decoder.parameters():
            p.mul_(0.5)  # the gathered weights must follow, from the next encoder pass on
        memory = model.encode(src, src_mask)
        fast_logits, _, _ = model.step(tgt[:, 0], model.init_state(memory), memory)
        module_logits, _, _ = model.step(tgt[:, 0], model.init_state(memory), memory, return_attention=True)
        torch.testing.assert_close(fast_logits, module_logits, atol=1e-5, rtol=1e-4)
    assert not fast_path_applies(model, tgt[:, 0])  # with gradients on, training's path


@pytest.mark.parametrize("sentences", [1, 2])
def test_folded_cross_attention_steps_equal_the_module_path(sentences):
    model = make("transformer")  # d_model 32, 4 heads: folding pays for up to 10 source tokens in all
    src, src_mask, tgt = batch()
    src, src_mask, tgt = src[:sentences, :5], src_mask[:sentences, :5].clone(), tgt[:sentences]
    src_mask[-1, 3:] = False  # the last sentence padded
    with torch.no_grad():
        memory = model.encode(src, src_mask)
        assert "cross_keys_folded0" in memory  # folded
        rows = torch.tensor([0] * 3 + [sentences - 1] * 2)  # beams of both sentences
        memory = select_rows(memory, rows)
        fast = module = model.init_state(memory)
        for t in range(tgt.size(1)):
            fast_logits, fast, _ = model.step(tgt[rows, t], fast, memory)
            module_logits, module, _ = model.step(tgt[rows, t], module, memory, return_attention=True)
            torch.testing.assert_close(fast_logits, module_logits, atol=1e-5, rtol=1e-4)
        long = torch.randint(4, 20, (sentences, 12))
        assert "cross_keys_folded0" not in model.encode(long, long != 0)  # too long to pay: keys and values


def test_steps_after_a_module_path_encoder_pass_take_the_module_path():
    model = make("transformer")
    src, src_mask, tgt = batch()
    with torch.no_grad():
        model.encode(src, src_mask)
        assert step_weights(model, tgt[:, 0]) is not None
    model.encode(src, src_mask)  # with gradients: the module path
    with torch.no_grad():
        assert step_weights(model, tgt[:, 0]) is None


def test_an_int8_model_takes_the_fast_path_with_the_module_paths_numbers():
    model = quantize_int8(make("transformer"))
    src, src_mask, tgt = batch()
    with torch.no_grad():
        assert fast_path_applies(model, tgt[:, 0])
        memory, (module_memory, _) = model.encode(src, src_mask), model._run_encoder(src, src_mask, False)
        for name in memory:
            torch.testing.assert_close(memory[name], module_memory[name], atol=1e-5, rtol=1e-4)
        state = model.init_state(memory)
        fast_logits, _, _ = model.step(tgt[:, 0], state, memory)
        module_logits, _, _ = model.step(tgt[:, 0], state, memory, return_attention=True)  # module path
    torch.testing.assert_close(fast_logits, module_logits, atol=1e-5, rtol=1e-4)


def test_only_fp32_evaluation_without_gradients_takes_the_prepared_paths():
    model = make("transformer")
    src, src_mask, tgt = batch()
    with torch.no_grad():
        assert fast_path_applies(model, tgt[:, 0])
        model.train()
        assert not fast_path_applies(model, tgt[:, 0]) and not inference_linear.applies(model.out, tgt.float())
        model.eval()
        for dtype in (torch.float64, torch.bfloat16):  # the module path serves other dtypes
            other = make("transformer").to(dtype)
            assert not fast_path_applies(other, tgt[:, 0])
            logits = other(src, src_mask, tgt)
            assert logits.dtype == dtype and torch.isfinite(logits).all()


def test_inference_after_a_fused_adam_step_sees_the_new_weights():
    # fused Adam writes weights without bumping their version counters; switching modes must still tell
    model = make("transformer")
    src, src_mask, tgt = batch()
    step = lambda: model.step(tgt[:, 0], model.init_state(model.encode(src, src_mask)), model.encode(src, src_mask))
    with torch.no_grad():
        before = step()[0]  # prepares the inference weights
    model.train()
    optimizer = torch.optim.Adam(model.parameters(), lr=0.1, fused=True)
    model(src, src_mask, tgt).logsumexp(-1).mean().backward()
    optimizer.step()
    model.eval()
    with torch.no_grad():
        after, module = step()[0], model.step(tgt[:, 0], model.init_state(model.encode(src, src_mask)),
                                              model.encode(src, src_mask), return_attention=True)[0]
    assert not torch.allclose(before, after, atol=1e-3)
    torch.testing.assert_close(after, module, atol=1e-5, rtol=1e-4)


def test_attention_adds_few_parameters_so_families_compare_at_equal_size():
    plain, attentive = make("rnn"), make("rnn-attention")
    count = lambda m: sum(p.numel() for p in m.parameters())
    assert 1.0 < count(attentive) / count(plain) < 1.5  # comparable sizes: attention adds little


def test_additive_attention_scores_are_v_tanh_wq_plus_wk():
    """Teacher forcing and stepping share this score, so only the equation itself can check it."""
    from attend.models.attention import AdditiveAttention

    torch.manual_seed(0)
    attention = AdditiveAttention(8, 6, 5)
    query, states = torch.randn(2, 3, 8), torch.randn(2, 4, 6)  # (batch, tgt_len, q), (batch, src_len, k)
    expected = torch.einsum("a,btsa->bts", attention.v.weight[0],
                            torch.tanh(attention.w_q(query)[:, :, None] + attention.w_k(states)[:, None]))
    torch.testing.assert_close(attention.score(query, attention.prepare_keys(states)), expected)


@pytest.mark.parametrize("cell", ["gru", "lstm"])
def test_the_encoders_final_state_is_the_top_layer_where_each_direction_ends(cell):
    torch.manual_seed(0)
    cfg = ModelConfig(family="rnn", hidden_size=16, embed_dim=8, encoder_layers=2, decoder_layers=2, dropout=0.0,
                      cell=cell)
    model = build_model(cfg, 12, 9).eval()
    src = torch.tensor([[5, 6, 7, 3], [8, 9, 3, 0]])
    mask = src != 0
    states, finals = model.encoder(src, mask)  # states: (batch, src_len, hidden), both directions
    for row, length in enumerate(mask.sum(1).tolist()):
        torch.testing.assert_close(finals[0][row, :8], states[row, length - 1, :8])  # forward: at the last token
        torch.testing.assert_close(finals[0][row, 8:], states[row, 0, 8:])  # backward: at the first


def test_bahdanau_attends_with_the_top_decoder_layers_previous_state():
    torch.manual_seed(0)
    cfg = ModelConfig(family="rnn-attention", attention="bahdanau", hidden_size=16, embed_dim=8, encoder_layers=1,
                      decoder_layers=2, dropout=0.0)
    model = build_model(cfg, 12, 9).eval()
    src = torch.tensor([[5, 6, 7, 3]])
    mask = src != 0
    with torch.no_grad():
        memory = model.encode(src, mask)
        state = {"hidden": torch.randn_like(model.init_state(memory)["hidden"])}  # (batch, layers, hidden)
        _, _, weights = model.step(torch.tensor([4]), state, memory, return_attention=True)
        _, expected = model.attention(state["hidden"][:, -1:], memory["keys"], memory["states"], mask)
    torch.testing.assert_close(weights[:, 0, 0], expected[:, 0])


def test_input_feeding_carries_the_attentional_vector_to_the_next_step():
    torch.manual_seed(0)
    cfg = ModelConfig(family="rnn-attention", attention="general", input_feeding=True, hidden_size=16, embed_dim=8,
                      encoder_layers=1, decoder_layers=1, dropout=0.0)
    model = build_model(cfg, 12, 9).eval()
    src = torch.tensor([[5, 6, 7, 3]])
    with torch.no_grad():
        memory = model.encode(src, src != 0)
        first = model.init_state(memory)
        _, after, _ = model.step(torch.tensor([4]), first, memory)
        assert after["feed"].abs().sum() > 0  # the attentional vector of step 1
        fed, _, _ = model.step(torch.tensor([5]), after, memory)
        unfed, _, _ = model.step(torch.tensor([5]), {**after, "feed": torch.zeros_like(after["feed"])}, memory)
    assert not torch.allclose(fed, unfed)  # and step 2 reads it


def test_sinusoidal_positions_are_the_papers_table():
    """PE[pos, 2i] = sin(pos / 10000^(2i/d)), PE[pos, 2i+1] = cos(pos / 10000^(2i/d)), checked at a few points."""
    import math

    from attend.models.transformer import sinusoids

    table = sinusoids(50, 8)  # (positions, d_model)
    for pos, i in ((0, 0), (1, 0), (7, 1), (49, 3)):
        angle = pos / 10000 ** (2 * i / 8)
        assert table[pos, 2 * i].item() == pytest.approx(math.sin(angle), abs=1e-6)
        assert table[pos, 2 * i + 1].item() == pytest.approx(math.cos(angle), abs=1e-6)
