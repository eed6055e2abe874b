import random

import pytest

from attend.data.batching import bucket_batches, collate, encode_pairs
from attend.data.tokenizers import CharTokenizer, SubwordTokenizer, WordTokenizer, tokenizer_from_state
from attend.data.vocab import BOS_ID, EOS_ID, UNK_ID, Vocab
from attend.errors import AttendError


def test_char_and_word_round_trip():
    char = CharTokenizer(lowercase=True)
    assert char.encode("Ab c") == ["a", "b", "\u2581", "c"]
    assert char.decode(char.encode("ab  c")) == "ab c"
    word = WordTokenizer()
    assert word.decode(word.encode(" HH  AH L OW ")) == "HH AH L OW"


def test_subword_trains_and_round_trips_from_saved_state():
    rng = random.Random(0)
    words = "the cat dog sat ran on under mat table quickly slowly house garden".split()
    lines = [" ".join(rng.choice(words) for _ in range(8)) for _ in range(500)]
    tok = SubwordTokenizer.train(lines, vocab_size=40)
    restored = tokenizer_from_state(tok.state(), tok.model_bytes)
    text = "the dog sat on the mat"
    assert restored.encode(text) == tok.encode(text)
    assert restored.decode(restored.encode(text)) == text
    assert len(tok.encode(text)) < len(text.replace(" ", ""))  # pieces are longer than characters


def test_every_tokenizer_reads_composed_and_decomposed_text_alike():
    composed, decomposed = "M\u00e4nner\u00a0gehen", "Ma\u0308nner  gehen"  # NFC with a no-break space; NFD
    lines = ["M\u00e4nner gehen \u2026 \u00bd \ufb01ne"] * 50 + ["Frauen laufen schnell"] * 50
    for tok in CharTokenizer(), WordTokenizer(), SubwordTokenizer.train(lines, vocab_size=30):
        assert tok.encode(decomposed) == tok.encode(composed), tok.kind
        assert tok.decode(tok.encode(decomposed)) == "M\u00e4nner gehen", tok.kind
    subword = tok  # no NFKC rewriting: an ellipsis, a fraction and a ligature come back as they were written
    assert subword.decode(subword.encode("\u2026 \u00bd \ufb01ne")) == "\u2026 \u00bd \ufb01ne"


def test_failed_subword_training_says_which_way_to_move_the_vocabulary_size():
    too_many_characters = ["abcdefghijklmnopqrstuvwxyz0123456789 ABCDEFGHIJKLMNOP"] * 20
    with pytest.raises(AttendError, match="raise data.subword_vocab_size"):
        SubwordTokenizer.train(too_many_characters, vocab_size=20)
    with pytest.raises(AttendError, match="no training line is short enough"):
        SubwordTokenizer.train(["x" * 5000] * 5, vocab_size=50)


def test_vocab_min_freq_specials_and_unknowns():
    vocab = Vocab.build([["a", "b", "a"], ["a", "c"]], min_freq=2)
    assert vocab.itos[:4] == ["<pad>", "<unk>", "<s>", "</s>"] and vocab.itos[4:] == ["a"]
    assert vocab.encode(["a", "zzz"]) == [4, UNK_ID]
    assert vocab.decode([4, EOS_ID, 4]) == ["a"]


def test_text_that_spells_a_special_token_is_unknown():
    vocab = Vocab.build([["a", "b"]])
    a, b = vocab.encode(["a", "b"])
    assert vocab.encode(["a", "</s>", "<pad>", "<s>", "<unk>", "b"]) == [a, UNK_ID, UNK_ID, UNK_ID, UNK_ID, b]


def test_long_pairs_are_skipped_and_batches_respect_token_budget():
    tok = WordTokenizer()
    pairs = [("a " * n, "b " * n) for n in range(1, 30)] + [("a", " "), ("", "b")]
    vocab = Vocab.build([["a"], ["b"]])
    examples, kept, skipped = encode_pairs(pairs, tok, tok, vocab, vocab, max_len=11)
    assert (skipped.too_long, skipped.empty) == (19, 2) and len(examples) == 10 and kept == list(range(10))
    assert str(skipped) == "19 skipped as too long, 2 with an empty side"
    for indices in bucket_batches(examples, batch_tokens=40):
        batch = collate(examples, indices)
        assert batch.src.numel() <= 40 and batch.tgt_in.numel() <= 40
        real = (batch.tgt_out[:, :-1] != 0) & (batch.tgt_out[:, :-1] != EOS_ID)
        assert (batch.tgt_in[:, 0] == BOS_ID).all()
        assert (batch.tgt_out[:, :-1] == batch.tgt_in[:, 1:])[real].all()  # the output is the input shifted by one


def test_the_token_budget_holds_when_targets_are_longer_than_sources():
    tok, vocab = WordTokenizer(), Vocab.build([["a"], ["b"]])
    examples, _, _ = encode_pairs([("a", "b b b")] * 10, tok, tok, vocab, vocab, max_len=20)
    for indices in bucket_batches(examples, batch_tokens=24):
        assert collate(examples, indices).tgt_in.numel() <= 24  # <s> + 3 tokens, so 6 sentences a batch


def test_char_detokenizing_drops_spaces_at_the_edges():
    assert CharTokenizer().decode(["\u2581", "a", "\u2581", "b", "\u2581"]) == "a b"
