"""One bundle's analysis: text -> intent distribution, frustration probability, surface cues.

One onnxruntime session runs one encoder pass for both heads. Inputs are the token ids from the
``tokenizers`` library (no torch, no transformers) and the cue vector from :mod:`tierline.nlu.cues`.
Which bundle analyses which language is :mod:`tierline.nlu.routing`'s job (the public ``tierline.nlu.Analyzer``).
"""

from __future__ import annotations

import hashlib
import logging
import threading
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import TypeVar

import numpy as np
import onnxruntime as ort
from tokenizers import Encoding, Tokenizer

from tierline.nlu.bundle import (
    DEFAULT_BUNDLE_DIR,
    TOKENIZER_FILE,
    BundleConfig,
    load_bundle_config,
)
from tierline.nlu.cues import MAX_SCAN_CHARS, Cues, extract_cues
from tierline.nlu.labels import OUT_OF_SCOPE
from tierline.nlu.text import MAX_MODEL_CHARS, clean_text, is_blank

log = logging.getLogger(__name__)

T = TypeVar("T")


@dataclass(frozen=True)
class ModelId:
    """Which model produced a result: the bundle's name and version.

    The version is the bundle's own (``config.json``) or the first 12 hex digits of the SHA-256
    of its ONNX file: two bundles with the same bytes have the same version, and any retrained
    or re-quantised file gets a new one.
    """

    name: str
    version: str

    def __str__(self) -> str:
        return f"{self.name}@{self.version}"

    def to_dict(self) -> dict[str, str]:
        return {"name": self.name, "version": self.version}


def file_version(path: Path) -> str:
    """``sha256:`` and the first 12 hex digits of the file's SHA-256 (a content version)."""
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return "sha256:" + digest.hexdigest()[:12]


@dataclass
class AnalysisResult:
    """What the analysis says about one text. ``intents`` holds every label's probability."""

    intent: str
    intent_confidence: float
    intents: dict[str, float]
    frustration: float
    frustrated: bool
    cues: list[str]
    truncated: bool = False
    empty: bool = False
    #: The message reports a problem (:attr:`tierline.nlu.cues.Cues.problem`): a VIP's goes to a human.
    problem: bool = False
    #: Thanks, praise, laughter or happy emoji and no problem (:attr:`tierline.nlu.cues.Cues.happy`).
    happy: bool = False
    #: What the text is about, for routing (:attr:`tierline.nlu.cues.Cues.topics`); None: not
    #: known (a result made without its text), so routing does not ask for a topic.
    topics: list[str] | None = None
    #: Asked only to know (:attr:`tierline.nlu.cues.Cues.hypothetical`).
    hypothetical: bool = False
    #: Settled already (:attr:`tierline.nlu.cues.Cues.settled`).
    settled: bool = False
    warnings: list[str] = field(default_factory=list)
    #: The language the text was analysed as (ISO 639-1: given by the caller or detected).
    language: str = ""
    #: The bundle that produced it: a policy may only read the outputs of the bundle it was
    #: fitted on (the turn engine checks when it routes by language).
    model: ModelId | None = field(default=None, compare=False)
    #: L2-normalised sentence embedding from the same encoder pass (for FAQ similarity).
    embedding: np.ndarray | None = field(default=None, repr=False, compare=False)

    @property
    def nothing_to_settle(self) -> bool:
        """Asked only to know, or settled already: a sensitive topic the shop has nothing to
        do about ("chiedo solo per sapere", "ya me llegó el reembolso")."""
        return self.hypothetical or self.settled

    def to_dict(self) -> dict:
        """Plain-JSON form (what the CLI prints and the API returns); no embedding."""
        out = asdict(self)
        out.pop("embedding")
        out["model"] = self.model.to_dict() if self.model else None
        return out


@dataclass
class _Forward:
    """One message's model outputs, with the encoding and cues they came from."""

    intent_logits: np.ndarray
    frustration_logit: float
    embedding: np.ndarray | None
    encoding: Encoding
    cues: Cues


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
#: A happy message (:attr:`tierline.nlu.cues.Cues.happy`) scores at most this share of the bundle's
#: frustration threshold: well under it, whatever the sentiment head says.
HAPPY_FRUSTRATION_SHARE = 0.5


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


class BundleAnalyzer:
    """Runs one bundle's intent + frustration model; every message is scored on its own.

    Why one message per model call: the int8 graph quantises activations dynamically, with one
    scale per tensor. In a padded batch that scale comes from every message in it, padding
    included, so a message's scores moved with its neighbours (``È INUTILE!!!`` had frustration
    0.41 alone and 0.18-0.74 in batches of real messages). Scored alone, a message always sees
    the same scales: its result is bit-for-bit what it gets alone, in any batch, at any position,
    through any API. int8 MiniLM is compute-bound on a small CPU, so padded batches bought
    nothing: ``threads`` messages are scored at once, each on one onnxruntime thread, which is
    as fast as batches were (``tierline bench nlu`` measures both side by side).
    """

    def __init__(self, config: BundleConfig, tokenizer: Tokenizer, session: ort.InferenceSession,
                 model_id: ModelId | None = None, threads: int = 1) -> None:
        #: Which model this is (bundle name and version), stamped on every result.
        self.model_id = model_id or ModelId(f"analyzer-{id(self):x}", "unversioned")
        self.config = config
        self.tokenizer = tokenizer
        self.session = session
        self.threads = threads
        self.labels = list(config.intent_labels)
        self._input_names = {i.name for i in session.get_inputs()}
        self._outputs = ["intent_logits", "frustration_logit"]
        if "sentence_embedding" in {o.name for o in session.get_outputs()}:
            self._outputs.append("sentence_embedding")
        self._pool: ThreadPoolExecutor | None = None
        self._pool_lock = threading.Lock()

    @classmethod
    def load(cls, path: str | Path | None = None, *, model_file: str | None = None,
             threads: int = 1) -> BundleAnalyzer:
        """Load a bundle folder (default: the shipped English ``models/nlu``).

        ``model_file`` picks another ONNX file of the bundle (e.g. the fp32 one for comparison).
        ``threads`` messages of one call are scored at once.
        """
        bundle = Path(path) if path is not None else DEFAULT_BUNDLE_DIR
        config = load_bundle_config(bundle)
        file = bundle / (model_file or config.model_file)
        tokenizer = make_tokenizer(bundle / TOKENIZER_FILE, config.max_length)
        session = make_session(file)
        model_id = ModelId(config.name or bundle.resolve().name,
                           config.version or file_version(file))
        log.info("loaded NLU bundle %s (%s, %s)", bundle, file.name, model_id.version)
        return cls(config, tokenizer, session, model_id=model_id, threads=threads)

    @property
    def languages(self) -> tuple[str, ...]:
        """The languages the bundle was trained and validated for."""
        return tuple(self.config.languages)

    def analyze(self, texts: Sequence[str], language: str = "") -> list[AnalysisResult]:
        """Analyse each text; one result per text, in order, each scored on its own.

        Blank texts get an ``empty`` result without a model call; over-long texts are cut to
        the model window and flagged ``truncated``. ``language`` is stamped on the results; a
        language the bundle was not trained for adds a warning (the scores are not trustworthy).
        """
        if isinstance(texts, str):
            raise TypeError("analyze() takes a list of texts, not a single string")
        raw = list(texts)
        for i, t in enumerate(raw):
            if not isinstance(t, str):
                raise TypeError(f"text {i} must be str, got {type(t).__name__}")
        foreign = bool(language) and language not in self.languages
        return self._map(lambda t: self._result(t, language, foreign), raw)

    def raw_logits(self, texts: Sequence[str]) -> tuple[np.ndarray, np.ndarray]:
        """Uncalibrated ``(intent_logits [n, k], frustration_logit [n])`` for ``texts``.

        What calibration is fitted on, so it is fitted on exactly the model that ships, scored
        the way it serves (one message per call).
        """
        if not texts:
            return np.zeros((0, len(self.labels)), np.float32), np.zeros((0,), np.float32)
        outputs = self._map(lambda t: self._forward(clean_text(t[:MAX_SCAN_CHARS])), list(texts))
        return (np.stack([o.intent_logits for o in outputs]),
                np.array([o.frustration_logit for o in outputs], dtype=np.float32))

    def embed(self, texts: Sequence[str]) -> np.ndarray:
        """L2-normalised sentence embeddings ``[n, hidden]`` (the encoder's mean pooling)."""
        if not texts:
            return np.zeros((0, 0), np.float32)
        if "sentence_embedding" not in self._outputs:
            raise RuntimeError("this model bundle has no sentence_embedding output")
        outputs = self._map(lambda t: self._forward(clean_text(t[:MAX_SCAN_CHARS])), list(texts))
        return np.stack([o.embedding for o in outputs])

    def close(self) -> None:
        """Stop the scoring threads (a later call starts them again)."""
        with self._pool_lock:
            pool, self._pool = self._pool, None
        if pool is not None:
            pool.shutdown(wait=True)

    def _map(self, fn: Callable[[str], T], texts: list[str]) -> list[T]:
        """``fn`` over ``texts`` in order: inline for one text or one thread, else in
        ``threads`` contiguous chunks scored at once (onnxruntime releases the GIL)."""
        if self.threads <= 1 or len(texts) <= 1:
            return [fn(t) for t in texts]
        with self._pool_lock:
            if self._pool is None:
                self._pool = ThreadPoolExecutor(self.threads, thread_name_prefix="tierline-nlu")
            pool = self._pool
        size = -(-len(texts) // self.threads)
        chunks = [texts[i:i + size] for i in range(0, len(texts), size)]
        return [r for part in pool.map(lambda c: [fn(t) for t in c], chunks) for r in part]

    def _forward(self, text: str) -> _Forward:
        """One model call on one cleaned text: logits, embedding, its encoding and cues.

        Happy shouting ("MUCHAS GRACIAS!!!") reaches the model in lower case: the cues decided
        it is not frustration, and a case-sensitive vocabulary (e5's) would read the capitals
        as shouting all the same (the English tokenizer lowercases anyway)."""
        cues = extract_cues(text)
        encoding = self.tokenizer.encode((text.lower() if cues.happy else text)[:MAX_MODEL_CHARS])
        feeds = {
            "input_ids": np.array([encoding.ids], dtype=np.int64),
            "attention_mask": np.array([encoding.attention_mask], dtype=np.int64),
            "cues": cues.values[None, :],
        }
        outputs = self.session.run(
            self._outputs, {k: v for k, v in feeds.items() if k in self._input_names})
        embedding = None
        if len(outputs) == 3:
            vector = outputs[2][0]
            embedding = vector / max(float(np.linalg.norm(vector)), 1e-9)
        return _Forward(outputs[0][0], float(np.asarray(outputs[1]).reshape(-1)[0]), embedding,
                        encoding, cues)

    def _empty_result(self, language: str) -> AnalysisResult:
        intents = {label: 0.0 for label in self.labels}
        intents[OUT_OF_SCOPE] = 1.0
        return AnalysisResult(intent=OUT_OF_SCOPE, intent_confidence=1.0, intents=intents,
                              frustration=0.0, frustrated=False, cues=[], empty=True,
                              warnings=["empty text: nothing to classify"], language=language,
                              model=self.model_id)

    def _result(self, raw: str, language: str, foreign: bool) -> AnalysisResult:
        """The result for one raw text (cleaned, bounded, scored alone)."""
        text = clean_text(raw[:MAX_SCAN_CHARS])
        if is_blank(text):
            return self._empty_result(language)
        out = self._forward(text)
        probs = softmax(out.intent_logits[None, :], self.config.intent_temperature)[0]
        cal = self.config.frustration_calibration
        p_frus = float(sigmoid(np.float64(cal.scale * out.frustration_logit + cal.shift)))
        if out.cues.happy:
            # Laughter, thanks, apologies, happy emoji and no problem word: not frustration,
            # though a sentiment-trained head reads "perdón, me equivoqué de chat" as negative.
            p_frus = min(p_frus, HAPPY_FRUSTRATION_SHARE * self.config.frustration_threshold)
        best = int(probs.argmax())
        truncated = (bool(out.encoding.overflowing) or len(raw) > MAX_SCAN_CHARS
                     or len(text) > MAX_MODEL_CHARS)
        warnings = []
        if truncated:
            warnings.append(f"text truncated to the model window of {self.config.max_length} tokens")
        if foreign:
            warnings.append(f"model {self.model_id.name} was not trained for language "
                            f"{language!r} (its languages: {', '.join(self.languages)})")
        return AnalysisResult(
            intent=self.labels[best],
            intent_confidence=float(probs[best]),
            intents={label: float(p) for label, p in zip(self.labels, probs)},
            frustration=p_frus,
            frustrated=bool(p_frus >= self.config.frustration_threshold),
            cues=list(out.cues.fired),
            problem=out.cues.problem,
            happy=out.cues.happy,
            topics=list(out.cues.topics),
            hypothetical=out.cues.hypothetical,
            settled=out.cues.settled,
            truncated=truncated,
            language=language,
            model=self.model_id,
            warnings=warnings,
            embedding=out.embedding,
        )
