"""The RNN families: the plain encoder-decoder and the decoder with attention.

The encoder reads the embedded source token by token and carries a hidden
state along. Without attention, its final state is the only thing the decoder
ever sees (the bottleneck of Sutskever et al. 2014 / Cho et al. 2014). With
attention, the decoder also sees every encoder state at every step
(Luong et al. 2015; Bahdanau et al. 2015).
"""

from __future__ import annotations

import torch
from torch import nn
from torch.nn.utils.rnn import pack_padded_sequence, pad_packed_sequence

from attend.config import ModelConfig
from attend.data.vocab import PAD_ID
from attend.models.attention import build_attention
from attend.models.base import Seq2Seq, Tensors
from attend.models.dropout import Dropout
from attend.models.inference_linear import linear

CELLS = {"gru": nn.GRU, "lstm": nn.LSTM}


class RNNEncoder(nn.Module):
    """Embeds the source and runs a (bi)directional GRU/LSTM over it.

    Each direction gets hidden_size/2 units when bidirectional, so the encoder
    states are hidden_size wide either way.
    """

    def __init__(self, vocab_size: int, cfg: ModelConfig):
        super().__init__()
        directions = 2 if cfg.bidirectional else 1
        self.embed = nn.Embedding(vocab_size, cfg.embed_dim, padding_idx=PAD_ID)
        self.dropout = Dropout(cfg.dropout)
        self.rnn = CELLS[cfg.cell](
            cfg.embed_dim, cfg.hidden_size // directions, cfg.encoder_layers, batch_first=True,
            bidirectional=cfg.bidirectional, dropout=cfg.dropout if cfg.encoder_layers > 1 else 0.0,
        )
        self.directions = directions

    def forward(self, src, src_mask):
        """-> states (batch, src_len, hidden), and a list of the top layer's final hidden state (batch, hidden)
        [and an LSTM's final cell state, the same shape], both directions joined when bidirectional."""
        lengths = src_mask.sum(1).cpu()
        packed = pack_padded_sequence(self.dropout(self.embed(src)), lengths, batch_first=True, enforce_sorted=False)
        output, final = self.rnn(packed)
        states, _ = pad_packed_sequence(output, batch_first=True, total_length=src.size(1))
        finals = final if isinstance(final, tuple) else (final,)
        # (layers * directions, batch, hidden/d) -> top layer, directions concatenated: (batch, hidden)
        tops = [f.view(-1, self.directions, f.size(1), f.size(2))[-1].transpose(0, 1).reshape(f.size(1), -1) for f in finals]
        return states, tops


class RNNSeq2Seq(Seq2Seq):
    """Encoder-decoder without attention: the final encoder state is the whole context.

    That state, through a tanh layer, initialises every decoder layer; the
    decoder then sees only its own previous outputs.
    """

    has_attention = False

    def __init__(self, src_vocab: int, tgt_vocab: int, cfg: ModelConfig):
        super().__init__()
        self.cfg = cfg
        self.encoder = RNNEncoder(src_vocab, cfg)
        self.bridge = nn.Linear(cfg.hidden_size, cfg.hidden_size)
        self.embed = nn.Embedding(tgt_vocab, cfg.embed_dim, padding_idx=PAD_ID)
        self.dropout = Dropout(cfg.dropout)
        self.rnn = CELLS[cfg.cell](
            self.rnn_input_size(), cfg.hidden_size, cfg.decoder_layers, batch_first=True,
            dropout=cfg.dropout if cfg.decoder_layers > 1 else 0.0,
        )
        self.out = nn.Linear(self.output_size(), tgt_vocab)

    def rnn_input_size(self) -> int:
        return self.cfg.embed_dim

    def output_size(self) -> int:
        return self.cfg.hidden_size

    def encode(self, src, src_mask) -> Tensors:
        states, finals = self.encoder(src, src_mask)
        memory = {"states": states, "src_mask": src_mask}
        memory["init_hidden"] = torch.tanh(self.bridge(finals[0]))  # (batch, hidden)
        if self.cfg.cell == "lstm":
            memory["init_cell"] = torch.tanh(self.bridge(finals[1]))
        return memory

    def init_state(self, memory: Tensors) -> Tensors:
        layers = self.cfg.decoder_layers
        state = {"hidden": memory["init_hidden"][:, None, :].repeat(1, layers, 1)}  # (batch, layers, hidden)
        if self.cfg.cell == "lstm":
            state["cell"] = memory["init_cell"][:, None, :].repeat(1, layers, 1)
        return state

    def _run_rnn(self, inputs, state: Tensors):
        """inputs (batch, steps, in) -> outputs (batch, steps, hidden), new state."""
        hidden = state["hidden"].transpose(0, 1).contiguous()
        if self.cfg.cell == "lstm":
            outputs, (h, c) = self.rnn(inputs, (hidden, state["cell"].transpose(0, 1).contiguous()))
            return outputs, {"hidden": h.transpose(0, 1), "cell": c.transpose(0, 1)}
        outputs, h = self.rnn(inputs, hidden)
        return outputs, {"hidden": h.transpose(0, 1)}

    def decode(self, tgt_in, memory, return_attention=False):
        outputs, _ = self._run_rnn(self.dropout(self.embed(tgt_in)), self.init_state(memory))
        return linear(self.out, self.dropout(outputs)), None

    def step(self, prev_token, state, memory, return_attention=False):
        outputs, state = self._run_rnn(self.embed(prev_token)[:, None, :], state)
        return linear(self.out, outputs[:, 0]), state, None


class AttentionRNNSeq2Seq(RNNSeq2Seq):
    """Encoder-decoder where every step attends over all encoder states.

    Luong (dot/general/concat): the decoder RNN gives h_t from the previous
    output's embedding and its state; attention scores h_t against the encoder
    states; the context c_t and h_t go through tanh(W_c [h_t; c_t]) to the output
    layer. With input feeding, that attentional vector is also fed to the next
    step's RNN input. Bahdanau (additive): attention is scored with the previous
    state h_{t-1} and c_t enters the RNN input beside the embedding, as in the
    paper; the output layer is Luong's tanh(W_c [h_t; c_t]) rather than the
    paper's maxout over (h_t, y_{t-1}, c_t), and the first state comes from both
    encoder directions as for every family here.
    """

    has_attention = True

    def __init__(self, src_vocab: int, tgt_vocab: int, cfg: ModelConfig):
        self.bahdanau = cfg.attention == "bahdanau"
        super().__init__(src_vocab, tgt_vocab, cfg)
        kind = "concat" if self.bahdanau else cfg.attention
        self.attention = build_attention(kind, cfg.hidden_size, cfg.hidden_size)
        self.combine = nn.Linear(2 * cfg.hidden_size, cfg.hidden_size)

    def rnn_input_size(self) -> int:
        extra = int(self.cfg.input_feeding) + int(self.cfg.attention == "bahdanau")
        return self.cfg.embed_dim + extra * self.cfg.hidden_size

    def encode(self, src, src_mask) -> Tensors:
        memory = super().encode(src, src_mask)
        memory["keys"] = self.attention.prepare_keys(memory["states"])  # (batch, src_len, key)
        return memory

    def init_state(self, memory: Tensors) -> Tensors:
        state = super().init_state(memory)
        if self.cfg.input_feeding:
            state["feed"] = memory["states"].new_zeros(memory["states"].size(0), self.cfg.hidden_size)
        return state

    def _attend(self, query, memory):
        """query (batch, steps, hidden) -> context (batch, steps, hidden), weights (batch, steps, src_len)."""
        return self.attention(query, memory["keys"], memory["states"], memory["src_mask"])

    def _output(self, h, context):
        """tanh(W_c [h_t; c_t]): the attentional vector the output layer reads."""
        return torch.tanh(self.combine(torch.cat([h, context], dim=-1)))

    def decode(self, tgt_in, memory, return_attention=False):
        if self.cfg.input_feeding or self.bahdanau:
            return self._decode_stepwise(tgt_in, memory, return_attention)
        # Luong without input feeding: the RNN runs over the whole target at once, then attention for all steps.
        h, _ = self._run_rnn(self.dropout(self.embed(tgt_in)), self.init_state(memory))
        context, weights = self._attend(h, memory)
        logits = linear(self.out, self.dropout(self._output(h, context)))
        return logits, (weights[:, None, None] if return_attention else None)

    def _decode_stepwise(self, tgt_in, memory, return_attention):
        state, logits, weights = self.init_state(memory), [], []
        embedded = self.dropout(self.embed(tgt_in))  # (batch, tgt_len, embed)
        for t in range(tgt_in.size(1)):
            step_logits, state, step_weights = self._step_embedded(embedded[:, t], state, memory)
            logits.append(step_logits)
            weights.append(step_weights)
        attention = torch.stack(weights, dim=3) if return_attention else None  # (batch, 1, 1, tgt_len, src_len)
        return torch.stack(logits, dim=1), attention

    def _step_embedded(self, embedded, state, memory):
        """embedded (batch, embed) -> logits (batch, vocab), state, weights (batch, 1, 1, src_len)."""
        inputs = [embedded]
        if self.bahdanau:  # score with the previous top-layer state, feed c_t into the RNN
            context, weights = self._attend(state["hidden"][:, -1:, :], memory)
            inputs.append(context[:, 0])
        if self.cfg.input_feeding:
            inputs.append(state["feed"])
        h, new_state = self._run_rnn(torch.cat(inputs, dim=-1)[:, None, :], state)
        if not self.bahdanau:
            context, weights = self._attend(h, memory)
        attentional = self._output(h, context)[:, 0]  # (batch, hidden)
        if self.cfg.input_feeding:
            new_state["feed"] = attentional
        return linear(self.out, self.dropout(attentional)), new_state, weights[:, None]

    def step(self, prev_token, state, memory, return_attention=False):
        logits, state, weights = self._step_embedded(self.embed(prev_token), state, memory)
        return logits, state, (weights if return_attention else None)
