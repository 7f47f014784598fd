"""The Analyzer: text -> intent distribution, frustration probability and surface cues.

One onnxruntime session runs one encoder pass for both heads. Inputs are the token ids from the
``tokenizers`` library (no torch, no transformers) and the cue vector from :mod:`nlu.cues`.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np
import onnxruntime as ort
from tokenizers import Tokenizer

from nlu.bundle import (
    DEFAULT_BUNDLE_DIR,
    TOKENIZER_FILE,
    BundleConfig,
    load_bundle_config,
)
from nlu.cues import MAX_SCAN_CHARS, extract_cues
from nlu.labels import OUT_OF_SCOPE
from nlu.text import MAX_MODEL_CHARS, clean_text, is_blank

log = logging.getLogger(__name__)


@dataclass
class AnalysisResult:
    """What the Analyzer says about one text. ``intents`` holds every label's probability."""

    intent: str
    intent_confidence: float
    intents: dict[str, float]
    frustration: float
    frustrated: bool
    cues: list[str]
    truncated: bool = False
    empty: bool = False
    warnings: list[str] = field(default_factory=list)
    #: L2-normalised sentence embedding from the same encoder pass (for FAQ similarity).
    embedding: np.ndarray | None = field(default=None, repr=False, compare=False)
    #: ``Analyzer.name`` of the model that produced it: a policy may only read the outputs of
    #: the bundle it was fitted on (the turn engine checks when it routes by language).
    model: str = field(default="", repr=False, compare=False)

    def to_dict(self) -> dict:
        """Plain-JSON form (what the CLI prints and the API returns); no embedding."""
        out = asdict(self)
        out.pop("embedding")
        out.pop("model")
        return out


def softmax(logits: np.ndarray, temperature: float = 1.0) -> np.ndarray:
    """Row-wise softmax of ``logits / temperature`` (numerically stable)."""
    z = logits / temperature
    z = z - z.max(axis=-1, keepdims=True)
    e = np.exp(z)
    return e / e.sum(axis=-1, keepdims=True)


def sigmoid(x: np.ndarray) -> np.ndarray:
    """Logistic function that does not overflow for large negative inputs."""
    return 0.5 * (1.0 + np.tanh(0.5 * x))


#: Padding tokens of the supported vocabularies: BERT WordPiece (MiniLM), XLM-R SentencePiece (e5).
PAD_TOKENS = ("[PAD]", "<pad>")


def make_tokenizer(path: Path, max_length: int) -> Tokenizer:
    """Load ``tokenizer.json`` with explicit truncation and pad-to-longest-in-batch.

    Padding and truncation settings live inside tokenizer.json, so they are set here rather
    than trusted from the file. The pad token is whichever of ``PAD_TOKENS`` the vocabulary
    has (padding positions are masked, but the id must be a real row of the embedding).
    """
    tok = Tokenizer.from_file(str(path))
    tok.no_padding()
    tok.enable_truncation(max_length=max_length)
    pad_token = next((t for t in PAD_TOKENS if tok.token_to_id(t) is not None), PAD_TOKENS[0])
    pad_id = tok.token_to_id(pad_token)
    tok.enable_padding(pad_id=0 if pad_id is None else pad_id, pad_token=pad_token)
    return tok


def make_session(model_path: Path, threads: int = 1) -> ort.InferenceSession:
    """An onnxruntime CPU session; one intra-op thread is the latency sweet spot under load."""
    opts = ort.SessionOptions()
    opts.intra_op_num_threads = threads
    opts.inter_op_num_threads = 1
    opts.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
    opts.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    return ort.InferenceSession(str(model_path), opts, providers=["CPUExecutionProvider"])


class Analyzer:
    """Runs the exported intent + frustration model on batches of texts."""

    def __init__(self, config: BundleConfig, tokenizer: Tokenizer, session: ort.InferenceSession,
                 batch_size: int = 64, name: str | None = None) -> None:
        #: Which model this is, stamped on its results (the bundle folder when loaded from one).
        self.name = name or f"analyzer-{id(self):x}"
        self.config = config
        self.tokenizer = tokenizer
        self.session = session
        self.batch_size = batch_size
        self.labels = list(config.intent_labels)
        self._input_names = {i.name for i in session.get_inputs()}
        self._outputs = ["intent_logits", "frustration_logit"]
        if "sentence_embedding" in {o.name for o in session.get_outputs()}:
            self._outputs.append("sentence_embedding")

    @classmethod
    def load(cls, path: str | Path | None = None, *, model_file: str | None = None,
             threads: int = 1, batch_size: int = 64) -> Analyzer:
        """Load a bundle folder (default: the shipped ``models/nlu``).

        ``model_file`` picks another ONNX file of the bundle (e.g. the fp32 one for comparison).
        """
        bundle = Path(path) if path is not None else DEFAULT_BUNDLE_DIR
        config = load_bundle_config(bundle)
        tokenizer = make_tokenizer(bundle / TOKENIZER_FILE, config.max_length)
        session = make_session(bundle / (model_file or config.model_file), threads=threads)
        log.info("loaded NLU bundle %s (%s)", bundle, model_file or config.model_file)
        return cls(config, tokenizer, session, batch_size=batch_size,
                   name=f"{bundle.resolve()}:{model_file or config.model_file}")

    def analyze(self, texts: Sequence[str]) -> list[AnalysisResult]:
        """Analyse each text; one result per text, in order.

        Texts are scored in batches padded to their longest member (sorted by length so a long
        text does not pad many short ones). Blank texts get an ``empty`` result without a model
        call; over-long texts are cut to the model window and flagged ``truncated``.
        """
        if isinstance(texts, str):
            raise TypeError("analyze() takes a list of texts, not a single string")
        raw = list(texts)
        for i, t in enumerate(raw):
            if not isinstance(t, str):
                raise TypeError(f"text {i} must be str, got {type(t).__name__}")
        cleaned = [clean_text(t[:MAX_SCAN_CHARS]) for t in raw]
        results: list[AnalysisResult | None] = [None] * len(raw)
        todo = [i for i, t in enumerate(cleaned) if not is_blank(t)]
        for i in set(range(len(raw))) - set(todo):
            results[i] = self._empty_result()
        todo.sort(key=lambda i: len(cleaned[i]))
        for start in range(0, len(todo), self.batch_size):
            idx = todo[start : start + self.batch_size]
            batch = self._run_batch([cleaned[i] for i in idx], [len(raw[i]) for i in idx])
            for i, result in zip(idx, batch):
                results[i] = result
        return [r for r in results if r is not None]

    def _empty_result(self) -> AnalysisResult:
        intents = {label: 0.0 for label in self.labels}
        intents[OUT_OF_SCOPE] = 1.0
        return AnalysisResult(intent=OUT_OF_SCOPE, intent_confidence=1.0, intents=intents,
                              frustration=0.0, frustrated=False, cues=[], empty=True,
                              warnings=["empty text: nothing to classify"], model=self.name)

    def raw_logits(self, texts: Sequence[str]) -> tuple[np.ndarray, np.ndarray]:
        """Uncalibrated ``(intent_logits [n, k], frustration_logit [n])`` for ``texts``.

        What calibration is fitted on, so it is fitted on exactly the model that ships.
        """
        if not texts:
            return np.zeros((0, len(self.labels)), np.float32), np.zeros((0,), np.float32)
        intent_logits, frustration_logit, _ = self._forward_all(texts)
        return intent_logits, frustration_logit

    def embed(self, texts: Sequence[str]) -> np.ndarray:
        """L2-normalised sentence embeddings ``[n, hidden]`` (the encoder's mean pooling)."""
        if not texts:
            return np.zeros((0, 0), np.float32)
        embeddings = self._forward_all(texts)[2]
        if embeddings is None:
            raise RuntimeError("this model bundle has no sentence_embedding output")
        return embeddings

    def _forward_all(self, texts: Sequence[str]
                     ) -> tuple[np.ndarray, np.ndarray, np.ndarray | None]:
        """Every output for ``texts``, in input order, scored in length-sorted batches
        (similar lengths per batch means less padding)."""
        cleaned = [clean_text(t[:MAX_SCAN_CHARS]) for t in texts]
        order = np.argsort([len(t) for t in cleaned], kind="stable")
        parts = [self._forward([cleaned[i] for i in order[start : start + self.batch_size]])
                 for start in range(0, len(cleaned), self.batch_size)]
        inverse = np.argsort(order)
        intent_logits = np.concatenate([p[0] for p in parts])[inverse]
        frustration_logit = np.concatenate([p[1].reshape(-1) for p in parts])[inverse]
        embeddings = None if parts[0][2] is None else np.concatenate([p[2] for p in parts])[inverse]
        return intent_logits, frustration_logit, embeddings

    def _forward(self, texts: list[str]
                 ) -> tuple[np.ndarray, np.ndarray, np.ndarray | None, list, list]:
        """One model call on cleaned ``texts``: logits, embeddings, token encodings and cues."""
        encodings = self.tokenizer.encode_batch([t[:MAX_MODEL_CHARS] for t in texts])
        cues = [extract_cues(t) for t in texts]
        feeds = {
            "input_ids": np.array([e.ids for e in encodings], dtype=np.int64),
            "attention_mask": np.array([e.attention_mask for e in encodings], dtype=np.int64),
            "cues": np.stack([c.values for c in cues]),
        }
        outputs = self.session.run(
            self._outputs, {k: v for k, v in feeds.items() if k in self._input_names})
        embedding = None
        if len(outputs) == 3:
            embedding = outputs[2] / np.clip(np.linalg.norm(outputs[2], axis=1, keepdims=True),
                                             1e-9, None)
        return outputs[0], outputs[1], embedding, encodings, cues

    def _run_batch(self, texts: list[str], raw_lengths: list[int]) -> list[AnalysisResult]:
        intent_logits, frustration_logit, embedding, encodings, cues = self._forward(texts)
        probs = softmax(intent_logits, self.config.intent_temperature)
        cal = self.config.frustration_calibration
        frustration = sigmoid(cal.scale * frustration_logit.reshape(-1) + cal.shift)
        out = []
        for n, (row, p_frus, enc, cue, raw_len, text) in enumerate(zip(
            probs, frustration, encodings, cues, raw_lengths, texts
        )):
            best = int(row.argmax())
            truncated = bool(enc.overflowing) or raw_len > MAX_SCAN_CHARS or len(text) > MAX_MODEL_CHARS
            warnings = []
            if truncated:
                warnings.append(
                    f"text truncated to the model window of {self.config.max_length} tokens"
                )
            out.append(AnalysisResult(
                intent=self.labels[best],
                intent_confidence=float(row[best]),
                intents={label: float(p) for label, p in zip(self.labels, row)},
                frustration=float(p_frus),
                frustrated=bool(p_frus >= self.config.frustration_threshold),
                cues=list(cue.fired),
                truncated=truncated,
                model=self.name,
                warnings=warnings,
                embedding=None if embedding is None else embedding[n],
            ))
        return out
