"""Running an attend Transformer outside attend: CTranslate2 export, and a translator over the export.

`export_ctranslate2` fills CTranslate2's `TransformerSpec` weight by weight
from attend's Transformer (models/transformer.py) and saves it with the
tokenizers, so the folder turns raw text into raw text on its own:

    model.bin, config.json            CTranslate2's model (weights possibly quantized)
    *_vocabulary.json                 token lists: shared_vocabulary.json, or source_/target_vocabulary.json
    config.yaml, vocab.json           attend's config and vocabularies, as in the model folder
    tokenizers.json (+ src.spm/tgt.spm)  how text becomes tokens and back
    export.json                       what was exported, from where, with which quantization
    search.json                       the tuned beam, when the model folder has one (its alpha is attend's
                                      GNMT penalty, which CTranslate2 does not have: the engine leaves it out)

The mapping, attend -> CTranslate2:
- `q` and the fused `kv` Linear ([k; v] rows) -> self-attention `linear_0` = [q; k; v] and `linear_1` = o;
  cross-attention `linear_0` = q, `linear_1` = kv, `linear_2` = o. CT2 scales queries by 1/sqrt(d_k) as we do.
- token embeddings * sqrt(d_model) -> `scale_embeddings`; positions -> `position_encodings.encodings`, always
  the exact table: ours interleave sin and cos (PE[pos, 2i] = sin, PE[pos, 2i+1] = cos), CT2's built-in
  sinusoid puts all sines first, so it would not match; learned positions are the same table kind.
- pre-norm: LayerNorm before each sublayer plus a final encoder/decoder LayerNorm; post-norm: after the
  residual sum, no final norm. Each Residual's norm is the norm of the CT2 sublayer it wraps. eps 1e-5.
- ReLU feed-forward; output projection with bias (tied to the target embedding or not: CT2 aliases equal
  tensors itself).
- vocab ids 0..3 are <pad>, <unk>, <s>, </s>; the source gets </s> appended (`add_source_eos`), the decoder
  starts from <s>.

`CTranslate2Translator` decodes like `attend.inference.Translator` (same output limits, <pad>/<s> never
generated, empty output allowed, per-sentence limits so no greedy or beam output depends on its batch):
greedy outputs are the same tokens as attend's, and so is beam search's best output when alpha is 0 and no
hypothesis reaches the length limit (there attend scores the forced </s>, CTranslate2 stops without it).
With alpha > 0 the two rank differently: attend divides by GNMT's ((5 + length) / 6) ** alpha, CTranslate2
by length ** alpha. A seeded sample follows one seed for the whole call, so unlike attend's it depends on
the batch. It takes an exported folder, not an attend model folder: export once, then load quickly.
"""

from __future__ import annotations

import json
import shutil
from collections.abc import Callable, Iterable, Iterator
from pathlib import Path

import torch

from attend.checkpoint import (
    CONFIG,
    LoadedModel,
    atomic_write,
    load_folder_config,
    load_tokenizers,
    load_vocabs,
    require_new_folder,
    save_static,
    staged_folder,
)
from attend.config import sequence_limit
from attend.data.vocab import BOS, EOS, PAD, UNK
from attend.errors import AttendError
from attend.tuning import SEARCH
from attend.inference import Output, SearchOptions, UnseenInputs, check_length, empty_outputs, translate_in_chunks
from attend.search import output_limits

EXPORT = "export.json"
LAYER_NORM_EPS = 1e-5  # torch.nn.LayerNorm's default; CTranslate2's own default is 1e-6


def _ctranslate2():
    try:
        import ctranslate2
    except ImportError:
        raise AttendError("CTranslate2 is not installed: pip install 'ctranslate2>=4.5' (in attend's source folder, "
                          "pip install -e '.[export]' does the same)") from None
    return ctranslate2


# ----- export -----------------------------------------------------------------------------------------------
def export_ctranslate2(loaded: LoadedModel, out: str | Path, quantization: str | None = None) -> Path:
    """Write `loaded` (a Transformer) as a CTranslate2 model folder at `out`, which must be new or empty.

    `quantization` is one of CTranslate2's weight types ("int8", "int8_float32", "float16", ...) or None to
    keep float32. The folder is built aside and renamed into place, so a failure leaves nothing behind.
    """
    ctranslate2 = _ctranslate2()
    from ctranslate2.specs.model_spec import ACCEPTED_MODEL_TYPES

    where = loaded.path or "model"
    family = loaded.config.model.family
    if family != "transformer":
        raise AttendError(f"{where}: holds a model of family {family}, and CTranslate2 runs Transformers; only "
                          "model.family: transformer can be exported")
    if quantization is not None and quantization not in ACCEPTED_MODEL_TYPES:
        raise AttendError(f"unknown quantization {quantization!r}; choose one of {', '.join(ACCEPTED_MODEL_TYPES)}")
    out = Path(out)
    require_new_folder(out, "choose a new --out or remove it first")

    spec = transformer_spec(loaded.model)
    spec.register_source_vocabulary(loaded.src_vocab.to_list())
    spec.register_target_vocabulary(loaded.tgt_vocab.to_list())
    try:
        spec.validate()
    except ValueError as e:
        raise AttendError(f"{where}: the weights do not fill CTranslate2's Transformer ({str(e).splitlines()[0]})") from None
    spec.optimize(quantization=quantization)

    with staged_folder(out) as staging:
        spec.save(str(staging))
        save_static(staging, loaded.config, loaded.src_tokenizer, loaded.tgt_tokenizer, loaded.src_vocab, loaded.tgt_vocab)
        if loaded.path is not None and (loaded.path / SEARCH).exists():  # the tuned beam travels with the model
            shutil.copyfile(loaded.path / SEARCH, staging / SEARCH)
        atomic_write(staging / EXPORT, json.dumps({
            "format": "ctranslate2", "ctranslate2_version": ctranslate2.__version__,
            "quantization": quantization or "float32", "source": str(loaded.path) if loaded.path else None,
            "step": loaded.meta.get("step"),
        }, indent=1))
    return out


def transformer_spec(model) -> ctranslate2.specs.TransformerSpec:  # noqa: F821
    """CTranslate2's TransformerSpec holding `model`'s weights (float32), with its config set; vocabularies not yet."""
    from ctranslate2.specs import TransformerSpec

    cfg = model.cfg
    spec = TransformerSpec.from_config((cfg.encoder_layers, cfg.decoder_layers), cfg.heads, pre_norm=cfg.norm == "pre")
    encoder, decoder = spec.encoder, spec.decoder

    encoder.embeddings[0].weight = _array(model.src_embed.tokens.weight)
    encoder.position_encodings.encodings = _positions(model.src_embed)
    for layer_spec, layer in zip(encoder.layer, model.encoder):
        _linear(layer_spec.self_attention.linear[0], layer.self_attn.q, layer.self_attn.kv)  # [q; k; v]
        _linear(layer_spec.self_attention.linear[1], layer.self_attn.o)
        _norm(layer_spec.self_attention.layer_norm, layer.res_attn.norm)
        _feed_forward(layer_spec.ffn, layer.ff, layer.res_ff.norm)

    decoder.embeddings.weight = _array(model.tgt_embed.tokens.weight)
    decoder.position_encodings.encodings = _positions(model.tgt_embed)
    for layer_spec, layer in zip(decoder.layer, model.decoder):
        _linear(layer_spec.self_attention.linear[0], layer.self_attn.q, layer.self_attn.kv)
        _linear(layer_spec.self_attention.linear[1], layer.self_attn.o)
        _norm(layer_spec.self_attention.layer_norm, layer.res_self.norm)
        _linear(layer_spec.attention.linear[0], layer.cross_attn.q)
        _linear(layer_spec.attention.linear[1], layer.cross_attn.kv)  # [k; v], CT2's fused memory projection
        _linear(layer_spec.attention.linear[2], layer.cross_attn.o)
        _norm(layer_spec.attention.layer_norm, layer.res_cross.norm)
        _feed_forward(layer_spec.ffn, layer.ff, layer.res_ff.norm)
    _linear(decoder.projection, model.out)

    if cfg.norm == "pre":
        _norm(encoder.layer_norm, model.encoder_norm)
        _norm(decoder.layer_norm, model.decoder_norm)

    config = spec.config
    config.unk_token, config.bos_token, config.eos_token, config.decoder_start_token = UNK, BOS, EOS, BOS
    config.add_source_eos = True  # our encoder input is tokens + </s>
    config.layer_norm_epsilon = LAYER_NORM_EPS
    return spec


def _array(*tensors: torch.Tensor):
    """float32 numpy copy of the tensors, concatenated along the first dimension."""
    return torch.cat([t.detach().float().cpu() for t in tensors]).contiguous().numpy()


def _linear(spec, *layers) -> None:
    """Fill a CT2 LinearSpec from one nn.Linear or several fused by stacking their output rows."""
    spec.weight = _array(*(layer.weight for layer in layers))  # (out, in), as CT2 stores it
    spec.bias = _array(*(layer.bias for layer in layers))


def _norm(spec, norm) -> None:
    spec.gamma, spec.beta = _array(norm.weight), _array(norm.bias)


def _feed_forward(spec, ff, norm) -> None:
    _linear(spec.linear_0, ff[0])  # d_model -> ff_size, then ReLU (CT2's default activation)
    _linear(spec.linear_1, ff[3])  # ff_size -> d_model
    _norm(spec.layer_norm, norm)


def _positions(embeddings):
    """The exact position table (max_positions, d_model) the model adds, sinusoidal or learned."""
    table = embeddings.positions.weight if embeddings.positions is not None else embeddings.sinusoid
    return _array(table)


# ----- translation --------------------------------------------------------------------------------------------
class CTranslate2Translator:
    """Decodes lists of input strings with a folder written by `export_ctranslate2`.

    The surface of `attend.inference.Translator`: `translate` (n-best `Output`s per line, in input order),
    `translate_stream` and `best`. Search settings come as `SearchOptions`; `alpha` is passed on as
    CTranslate2's length penalty, score / length ** alpha, which is not attend's GNMT penalty (both rank by
    plain log-probability at alpha 0, the default). `compute_type` is CTranslate2's ("default" keeps the
    exported weight type, "int8" quantizes on load); `threads` is its intra_threads (0: its default).
    """

    def __init__(self, folder: str | Path, options: SearchOptions | None = None, batch_size: int = 64,
                 device: str | None = None, compute_type: str = "default", threads: int = 0):
        ctranslate2 = _ctranslate2()
        self.folder, self.options, self.batch_size = Path(folder), options or SearchOptions(), batch_size
        self.options.check()
        if batch_size < 1:
            raise AttendError(f"--batch-size must be at least 1, got {batch_size}")
        self._check_folder()
        config = load_folder_config(self.folder)
        self.limit = sequence_limit(config)  # longest input (and output) in tokens, as in attend
        self.src_tokenizer, self.tgt_tokenizer = load_tokenizers(self.folder)
        self.src_vocab = load_vocabs(self.folder)[0]  # CT2 looks tokens up itself; this finds the unseen ones
        self.unseen = UnseenInputs(self.src_tokenizer.kind)
        try:
            self.translator = ctranslate2.Translator(str(self.folder), device=device or "auto",
                                                     compute_type=compute_type, intra_threads=threads)
        except (RuntimeError, ValueError) as e:
            raise AttendError(f"{self.folder}: CTranslate2 cannot load it ({str(e).splitlines()[0]})") from None
        if self.options.sample and self.options.seed is not None:
            ctranslate2.set_random_seed(self.options.seed % 2 ** 32)  # CTranslate2 takes 32-bit seeds

    def _check_folder(self) -> None:
        if not self.folder.is_dir():
            raise AttendError(f"{self.folder}: folder not found; write one with 'attend export --format ctranslate2'")
        if not (self.folder / "model.bin").exists():
            hint = " (an attend model folder)" if (self.folder / "model.safetensors").exists() else ""
            raise AttendError(f"{self.folder}{hint} is not a CTranslate2 export; run 'attend export --model "
                              f"{self.folder} --format ctranslate2 --out DIR' and use DIR")
        if not (self.folder / CONFIG).exists():
            raise AttendError(f"{self.folder}: lacks attend's {CONFIG} and tokenizers; export it with 'attend export'")

    def encode_inputs(self, lines: list[str], source: str, first_line: int = 1) -> list[list[str]]:
        """Source tokens per line (CT2 appends </s>), refusing lines longer than the model's positions; text
        that spells a special token is unknown, as in attend's own Vocab.encode."""
        tokens = []
        for number, line in enumerate(lines, first_line):
            line_tokens = check_length(self.src_tokenizer.encode(line), self.limit, source, number,
                                       self.options.truncate)
            self.unseen.check(self.src_vocab.encode(line_tokens), source, number)
            tokens.append([UNK if t in (PAD, BOS, EOS) else t for t in line_tokens])
        return tokens

    def translate_stream(self, lines: Iterable[str], source: str = "input", chunk_lines: int = 10000,
                         progress: Callable[[int], None] | None = None) -> Iterator[list[Output]]:
        """n-best outputs line by line for an input of any size, decoded a chunk of lines at a time."""
        return translate_in_chunks(self.translate, lines, source, chunk_lines, progress)

    def translate(self, lines: list[str], source: str = "input", progress: bool = False,
                  first_line: int = 1, on_lines: Callable[[int], None] | None = None) -> list[list[Output]]:
        """n-best outputs per input line, in input order; an empty line gets empty outputs. `on_lines(n)`
        hears of each n lines done."""
        tokens = self.encode_inputs(lines, source, first_line)
        results: list[list[Output]] = [empty_outputs(self.options) for _ in lines]
        todo = [i for i in range(len(lines)) if tokens[i]]
        if on_lines is not None and len(todo) < len(lines):
            on_lines(len(lines) - len(todo))  # the empty lines, done already
        if not todo:
            return results
        lengths = torch.tensor([len(tokens[i]) + 1 for i in todo])  # + </s>, as attend's encoder sees them
        src_mask = torch.arange(int(lengths.max()))[None, :] < lengths[:, None]  # (lines, src_len)
        limits = output_limits(src_mask, self.options.max_len_ratio, cap=self.limit).tolist()
        groups: dict[int, list[int]] = {}  # CT2 takes one length limit per call, attend one per sentence
        for i, limit in zip(todo, limits):
            groups.setdefault(limit, []).append(i)
        batches = sorted(groups.items())
        if progress:
            from tqdm import tqdm

            batches = tqdm(batches, desc="translating", unit="group", leave=False)
        for limit, group in batches:
            found = self.translator.translate_batch([tokens[i] for i in group], **self._decoding(limit))
            for i, result in zip(group, found):
                results[i] = [Output(self.tgt_tokenizer.decode(hyp), score, hyp)
                              for hyp, score in zip(result.hypotheses, result.scores)]
            if on_lines is not None:
                on_lines(len(group))
        return results

    def _decoding(self, limit: int) -> dict:
        """translate_batch arguments matching attend's search for sentences whose output limit is `limit`.

        attend allows only </s> at step `limit`; CT2 stops without it after max_decoding_length tokens, so
        limit - 1 gives the same tokens. <pad> and <s> are never generated; an empty output is allowed.
        """
        o = self.options
        common = {"max_batch_size": self.batch_size, "max_input_length": 0, "max_decoding_length": max(1, limit - 1),
                  "min_decoding_length": 0, "return_scores": True, "suppress_sequences": [[PAD], [BOS]]}
        if o.sample:
            return {**common, "beam_size": 1, "num_hypotheses": o.nbest, "length_penalty": 0.0,
                    "sampling_topk": o.top_k, "sampling_topp": o.top_p, "sampling_temperature": o.temperature}
        if o.beam_size == 1:
            return {**common, "beam_size": 1, "length_penalty": 0.0}
        return {**common, "beam_size": o.beam_size, "num_hypotheses": o.nbest, "length_penalty": o.alpha}

    def best(self, lines: list[str], source: str = "input", progress: bool = False) -> list[str]:
        """The top output text per line."""
        return [outs[0].text for outs in self.translate(lines, source, progress)]
