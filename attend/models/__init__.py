"""Model families behind one interface (see `attend.models.base`)."""

from attend.config import ModelConfig
from attend.models.base import Seq2Seq, select_rows
from attend.models.rnn import AttentionRNNSeq2Seq, RNNSeq2Seq
from attend.models.transformer import Transformer

FAMILIES = {"rnn": RNNSeq2Seq, "rnn-attention": AttentionRNNSeq2Seq, "transformer": Transformer}


def build_model(cfg: ModelConfig, src_vocab_size: int, tgt_vocab_size: int) -> Seq2Seq:
    """A freshly initialised model of the configured family."""
    return FAMILIES[cfg.family](src_vocab_size, tgt_vocab_size, cfg)


def count_parameters(model: Seq2Seq) -> int:
    return sum(p.numel() for p in model.parameters() if p.requires_grad)


__all__ = ["Seq2Seq", "build_model", "count_parameters", "select_rows"]
