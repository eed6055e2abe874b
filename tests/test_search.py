"""Search finds what it claims: exhaustive checks on a small model, greedy = beam 1, batching changes nothing."""

import itertools

import pytest
import torch

from attend.config import ModelConfig
from attend.data.vocab import BOS_ID, EOS_ID, PAD_ID, UNK_ID
from attend.models import build_model, select_rows
from attend.search import beam_search, greedy, length_penalty, sample

VOCAB = 7  # 4 specials + 3 real tokens; <unk> may be generated, <pad> and <s> may not
OUTPUT_TOKENS = [UNK_ID, 4, 5, 6]


def random_model(family="transformer", seed=0, sharpen=4.0):
    torch.manual_seed(seed)
    cfg = ModelConfig(family=family, hidden_size=32, embed_dim=16, ff_size=64, encoder_layers=1, decoder_layers=1,
                      heads=2, dropout=0.0)
    model = build_model(cfg, 12, VOCAB).eval()
    with torch.no_grad():  # sharpen the output distribution so sequences differ clearly in probability
        model.out.weight.mul_(sharpen)
    return model


def sources():
    src = torch.tensor([[5, 6, 7, 3], [8, 9, 3, 0], [10, 3, 0, 0]])
    return src, src != 0


@torch.no_grad()
def sequence_scores(model, src, src_mask, sequences):
    """log P(tokens + </s> | src) for each sequence, by teacher forcing: what search maximises."""
    width = max(len(s) for s in sequences) + 1
    tgt_in = torch.tensor([[BOS_ID] + s + [0] * (width - 1 - len(s)) for s in sequences])
    tgt_out = torch.tensor([s + [EOS_ID] + [0] * (width - 1 - len(s)) for s in sequences])
    memory = select_rows(model.encode(src, src_mask), torch.zeros(len(sequences), dtype=torch.long))
    logits, _ = model.decode(tgt_in, memory)
    logp = torch.log_softmax(logits.float(), -1).gather(2, tgt_out[:, :, None])[:, :, 0]
    return (logp * (tgt_out != 0)).sum(1).tolist()


def sequence_score(model, src, src_mask, tokens):
    return sequence_scores(model, src, src_mask, [tokens])[0]


def exhaustive(model, src, src_mask, max_len):
    """Every output of at most max_len - 1 tokens (the last step must be </s>), best first."""
    candidates = [list(seq) for n in range(max_len) for seq in itertools.product(OUTPUT_TOKENS, repeat=n)]
    return sorted(zip(sequence_scores(model, src, src_mask, candidates), candidates), key=lambda sc: -sc[0])


@pytest.mark.parametrize("family", ["transformer", "rnn-attention", "rnn"])
def test_wide_beam_finds_the_exhaustive_best_and_nbest(family):
    model = random_model(family)
    src, src_mask = sources()
    max_len = 4
    wide = sum(len(OUTPUT_TOKENS) ** n for n in range(max_len))  # 85: every hypothesis fits in the beam
    results = beam_search(model, src, src_mask, max_len, beam_size=wide, nbest=5)
    for row in range(src.size(0)):
        truth = exhaustive(model, src[row: row + 1], src_mask[row: row + 1], max_len)[:5]
        assert [h.tokens for h in results[row]] == [seq for _, seq in truth]
        for hyp, (best, _) in zip(results[row], truth):
            assert hyp.score == pytest.approx(best, abs=1e-4)


def test_small_beam_scores_are_the_models_own_scores():
    model = random_model()
    src, src_mask = sources()
    for row, hyps in enumerate(beam_search(model, src, src_mask, 6, beam_size=3, nbest=3)):
        assert len(hyps) == 3 and hyps[0].score >= hyps[1].score >= hyps[2].score
        for h in hyps:
            assert h.score == pytest.approx(sequence_score(model, src[row: row + 1], src_mask[row: row + 1], h.tokens), abs=1e-4)


def test_length_penalty_divides_the_score_and_favours_longer_outputs():
    model = random_model()
    src, src_mask = sources()
    plain = beam_search(model, src, src_mask, 6, beam_size=4, alpha=0.0)
    rewarded = beam_search(model, src, src_mask, 6, beam_size=4, alpha=2.0)
    for row, hyps in enumerate(rewarded):
        h = hyps[0]
        raw = h.score * length_penalty(len(h.tokens) + 1, 2.0)
        assert raw == pytest.approx(sequence_score(model, src[row: row + 1], src_mask[row: row + 1], h.tokens), abs=1e-4)
    assert sum(len(h[0].tokens) for h in rewarded) >= sum(len(h[0].tokens) for h in plain)


@pytest.mark.parametrize("family", ["transformer", "rnn-attention", "rnn"])
def test_beam_of_one_equals_greedy(family):
    model = random_model(family, seed=3)
    src, src_mask = sources()
    for b, g in zip(beam_search(model, src, src_mask, 8, beam_size=1), greedy(model, src, src_mask, 8)):
        assert b[0].tokens == g[0].tokens
        assert b[0].score == pytest.approx(g[0].score, abs=1e-4)


@pytest.mark.parametrize("family", ["transformer", "rnn-attention"])
def test_batched_beam_equals_one_by_one(family):
    model = random_model(family, seed=5)
    src, src_mask = sources()
    together = beam_search(model, src, src_mask, 8, beam_size=4, nbest=2)
    for row in range(src.size(0)):
        length = int(src_mask[row].sum())
        alone = beam_search(model, src[row: row + 1, :length], src_mask[row: row + 1, :length], 8, beam_size=4, nbest=2)[0]
        assert [h.tokens for h in alone] == [h.tokens for h in together[row]]
        assert [h.score for h in alone] == pytest.approx([h.score for h in together[row]], abs=1e-4)  # row order too


@pytest.mark.parametrize("family", ["transformer", "rnn-attention", "rnn"])
@pytest.mark.parametrize("favoured", [None, BOS_ID], ids=["plain", "bos-favoured"])
def test_greedy_of_one_sentence_equals_its_row_of_a_batch(family, favoured):
    """One sentence takes its own greedy loop (log-probabilities at the end); a batch the general one."""
    model = random_model(family, seed=3)
    if favoured is not None:
        with torch.no_grad():
            model.out.bias[favoured] = 1e4  # the largest logit at every step, yet never generated
    src, src_mask = sources()
    together = greedy(model, src, src_mask, 8)
    for row in range(src.size(0)):
        length = int(src_mask[row].sum())
        alone = greedy(model, src[row: row + 1, :length], src_mask[row: row + 1, :length], 8)[0][0]
        assert alone.tokens == together[row][0].tokens and BOS_ID not in alone.tokens
        assert alone.score == pytest.approx(together[row][0].score, rel=1e-6, abs=1e-4)  # sums of -1e4s when favoured
        if favoured is None:
            assert alone.score == pytest.approx(sequence_score(model, src[row: row + 1, :length],
                                                               src_mask[row: row + 1, :length], alone.tokens), abs=1e-4)
    assert greedy(model, src[:1], src_mask[:1], 0)[0][0].tokens == []  # no step allowed


def test_greedy_matches_stepwise_argmax_and_sampling_with_top_k_one_is_greedy():
    model = random_model(seed=7)
    src, src_mask = sources()
    g = greedy(model, src, src_mask, 8)
    s = sample(model, src, src_mask, 8, top_k=1, generators=seeded(src.size(0), 0))
    assert [h[0].tokens for h in g] == [h[0].tokens for h in s]
    nucleus = sample(model, src, src_mask, 8, top_p=1e-6, generators=seeded(src.size(0), 0))
    assert [h[0].tokens for h in g] == [h[0].tokens for h in nucleus]
    assert [h[0].tokens for h in g] == [h[0].tokens for h in sample(model, src, src_mask, 8, top_k=1)]


def seeded(n, seed):
    return [torch.Generator().manual_seed(seed * 100 + i) for i in range(n)]


def test_sampling_is_seeded_and_varies():
    model = random_model(seed=7, sharpen=1.0)
    src, src_mask = sources()
    run = lambda seed: [h[0].tokens for h in sample(model, src.repeat(8, 1), src_mask.repeat(8, 1), 8, temperature=2.0,
                                                  generators=seeded(8 * src.size(0), seed))]
    assert run(1) == run(1)
    assert len({tuple(t) for t in run(1)}) > 1


def test_a_seeded_sample_does_not_depend_on_its_neighbours():
    model = random_model(seed=7, sharpen=1.0)
    src, src_mask = sources()
    together = sample(model, src, src_mask, 8, temperature=2.0, generators=seeded(src.size(0), 3))
    for row in range(src.size(0)):
        length = int(src_mask[row].sum())
        alone = sample(model, src[row: row + 1, :length], src_mask[row: row + 1, :length], 8, temperature=2.0,
                       generators=[seeded(src.size(0), 3)[row]])
        assert alone[0][0].tokens == together[row][0].tokens
        assert alone[0][0].score == pytest.approx(together[row][0].score, abs=1e-4)


def test_sampling_draws_in_proportion_to_the_probabilities():
    """Gumbel-max over log-probabilities is a draw from the softmax: check the frequencies of the first token."""
    model = random_model(seed=7, sharpen=1.0)
    src, src_mask = sources()
    src, src_mask = src[:1].repeat(4000, 1), src_mask[:1].repeat(4000, 1)
    first = torch.tensor([h[0].tokens[0] if h[0].tokens else EOS_ID
                          for h in sample(model, src, src_mask, 2, temperature=3.0, generators=seeded(4000, 5))])
    with torch.no_grad():
        memory = model.encode(src[:1], src_mask[:1])
        logits = model.step(torch.tensor([BOS_ID]), model.init_state(memory), memory)[0][0].float()
    logits[[PAD_ID, BOS_ID]] = float("-inf")  # never generated
    expected = torch.softmax(logits / 3.0, -1)  # tempered: no token dominates
    observed = torch.bincount(first, minlength=expected.numel()).float() / 4000
    assert (observed - expected).abs().max() < 0.03


def test_greedy_returns_attention_per_step():
    model = random_model(seed=7)
    src, src_mask = sources()
    for row, hyps in enumerate(greedy(model, src, src_mask, 8, return_attention=True)):
        att = hyps[0].attention
        assert att.shape == (len(hyps[0].tokens) + 1, 1, 2, src.size(1))
        torch.testing.assert_close(att.sum(-1), torch.ones(att.shape[:-1]))
        length = int(src_mask[row].sum())
        alone = greedy(model, src[row: row + 1, :length], src_mask[row: row + 1, :length], 8, return_attention=True)
        steps = min(len(alone[0][0].attention), len(att))  # the row's own map, whatever rows share its batch
        torch.testing.assert_close(att[:steps, ..., :length], alone[0][0].attention[:steps], atol=1e-5, rtol=1e-4)


def test_a_limit_below_one_still_ends_and_nbest_above_the_beam_is_kept():
    model = random_model(seed=3)
    src, src_mask = sources()
    limits = torch.tensor([0, 3, 3])
    for search in (greedy(model, src, src_mask, limits), beam_search(model, src, src_mask, limits, 2)):
        assert [len(hyps[0].tokens) <= limit for hyps, limit in zip(search, (0, 2, 2))] == [True] * 3  # 0: only </s>
    assert all(len(hyps) == 4 for hyps in beam_search(model, src, src_mask, 6, beam_size=2, nbest=4))


@pytest.mark.parametrize("search", ["greedy", "beam"])
def test_an_output_does_not_depend_on_its_batch_companions(search):
    """Length limits are per sentence: a short input decodes the same alone or beside a long one."""
    from attend.data.batching import pad
    from attend.search import output_limits

    model = random_model("transformer")
    with torch.no_grad():
        model.out.bias[EOS_ID] = -1e4  # never ends by choice: every output runs to its length limit
    short, long = [5, 6, 7], [5, 6, 7, 8, 9, 4, 5, 6, 7, 8, 9, 4]
    decode = (lambda s, m, n: greedy(model, s, m, n)) if search == "greedy" else (
        lambda s, m, n: beam_search(model, s, m, n, beam_size=3))
    alone = pad([short])
    together = pad([short, long])
    first = decode(alone, alone != 0, output_limits(alone != 0))[0][0].tokens
    assert first == decode(together, together != 0, output_limits(together != 0))[0][0].tokens
    assert len(first) == 2 * (len(short)) + 10 - 1  # it did run to its own limit, </s> forced at the last step


def test_length_penalty_is_gnmts_formula():
    """((5 + length) / 6) ** alpha, pinned to numbers: the other tests rank with the function itself."""
    assert length_penalty(1, 1.0) == 1.0 and length_penalty(7, 0.5) == pytest.approx(2 ** 0.5)
    assert length_penalty(13, 0.0) == 1.0


def test_nbest_is_the_exhaustive_top_even_when_the_best_ends_at_once():
    """The search may stop only when no open beam can still enter the n-best, not when the best has ended."""
    model = random_model(sharpen=1.0)
    with torch.no_grad():
        model.out.bias[EOS_ID] += 3.0  # the empty output is the best; the runners-up are longer
    src, src_mask = sources()
    found = beam_search(model, src, src_mask, 4, beam_size=85, nbest=5)
    for row in range(3):
        best = exhaustive(model, src[row:row + 1], src_mask[row:row + 1], 4)[:5]
        assert [h.tokens for h in found[row]] == [tokens for _, tokens in best]


def test_a_wide_beam_with_a_length_penalty_finds_the_exhaustive_penalised_ranking():
    model = random_model()
    src, src_mask = sources()
    found = beam_search(model, src, src_mask, 4, beam_size=85, nbest=5, alpha=1.0)
    for row in range(3):
        every = exhaustive(model, src[row:row + 1], src_mask[row:row + 1], 4)
        ranked = sorted(every, key=lambda st: -st[0] / length_penalty(len(st[1]) + 1, 1.0))[:5]  # + </s>
        assert [h.tokens for h in found[row]] == [tokens for _, tokens in ranked]


def test_nucleus_sampling_draws_only_from_the_smallest_set_holding_top_p():
    model = random_model(seed=7, sharpen=1.0)
    src, src_mask = sources()
    draws = 3000
    src, src_mask = src[:1].repeat(draws, 1), src_mask[:1].repeat(draws, 1)
    generators = [torch.Generator().manual_seed(i) for i in range(draws)]
    found = sample(model, src, src_mask, 2, top_p=0.5, generators=generators)
    first = {h[0].tokens[0] if h[0].tokens else EOS_ID for h in found}
    with torch.no_grad():
        memory = model.encode(src[:1], src_mask[:1])
        logits = model.step(torch.tensor([BOS_ID]), model.init_state(memory), memory)[0][0].float()
    logits[[PAD_ID, BOS_ID]] = float("-inf")
    probs = torch.softmax(logits, -1)
    order = probs.argsort(descending=True)
    mass_before = probs[order].cumsum(0) - probs[order]
    nucleus = set(order[mass_before <= 0.5].tolist())
    assert first <= nucleus and len(nucleus) < VOCAB - 2  # the cut left something out, and nothing past it came
