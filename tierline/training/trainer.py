"""Fine-tuning of the multi-task model on the intent and frustration data sets.

The two tasks share the encoder. Batches alternate between tasks in a shuffled order, each
batch computing only its own task's loss, so one epoch is one pass over both data sets.
Tokenisation uses the same ``tokenizers`` code path as run time (``tierline.nlu.analyzer``), so the ids
the model was trained on are the ids it will see in production.
"""

from __future__ import annotations

import logging
import math
import random
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from tokenizers import Tokenizer
from tqdm.auto import tqdm

from tierline.nlu.analyzer import make_tokenizer
from tierline.nlu.cues import cue_matrix
from tierline.nlu.text import MAX_MODEL_CHARS, clean_text
from tierline.training.modeling import IntentFrustrationModel

log = logging.getLogger(__name__)


@dataclass
class TrainConfig:
    """Fine-tuning settings (logged with every run)."""

    epochs: float = 1.0
    batch_size: int = 32
    max_length: int = 64
    encoder_lr: float = 5e-5
    head_lr: float = 1e-3
    weight_decay: float = 0.01
    warmup_share: float = 0.06
    seed: int = 13
    threads: int = 2
    max_steps: int | None = None


def encode_batch(tokenizer: Tokenizer, texts: list[str]) -> dict[str, torch.Tensor]:
    """Token ids, attention mask (padded to the longest text) and cue vectors for ``texts``."""
    cleaned = [clean_text(t) for t in texts]
    encodings = tokenizer.encode_batch([t[:MAX_MODEL_CHARS] for t in cleaned])
    return {
        "input_ids": torch.tensor([e.ids for e in encodings], dtype=torch.long),
        "attention_mask": torch.tensor([e.attention_mask for e in encodings], dtype=torch.long),
        "cues": torch.from_numpy(cue_matrix(cleaned)),
    }


def make_batches(n_intent: int, n_frustration: int, batch_size: int, rng: random.Random
                 ) -> list[tuple[str, list[int]]]:
    """Shuffled (task, row indices) batches covering both data sets once."""
    batches: list[tuple[str, list[int]]] = []
    for task, n in (("intent", n_intent), ("frustration", n_frustration)):
        order = list(range(n))
        rng.shuffle(order)
        batches += [(task, order[i : i + batch_size]) for i in range(0, n, batch_size)]
    rng.shuffle(batches)
    return batches


def fine_tune(model: IntentFrustrationModel, tokenizer_path: Path,
              intent_texts: list[str], intent_labels: list[int],
              frustration_texts: list[str], frustration_labels: list[int],
              config: TrainConfig) -> IntentFrustrationModel:
    """Fine-tune ``model`` in place on both tasks; returns it in eval mode."""
    torch.manual_seed(config.seed)
    torch.set_num_threads(config.threads)
    rng = random.Random(config.seed)
    tokenizer = make_tokenizer(tokenizer_path, config.max_length)

    n_epochs = max(1, math.ceil(config.epochs))
    epoch_batches = [make_batches(len(intent_texts), len(frustration_texts),
                                  config.batch_size, rng) for _ in range(n_epochs)]
    schedule = [b for batches in epoch_batches for b in batches]
    total = int(len(epoch_batches[0]) * config.epochs)
    if config.max_steps is not None:
        total = min(total, config.max_steps)
    schedule = schedule[:total]

    head_params = [p for n, p in model.named_parameters() if not n.startswith("encoder.")]
    optimizer = torch.optim.AdamW(
        [{"params": model.encoder.parameters(), "lr": config.encoder_lr},
         {"params": head_params, "lr": config.head_lr}],
        weight_decay=config.weight_decay,
    )
    warmup = max(1, int(total * config.warmup_share))
    scheduler = torch.optim.lr_scheduler.LambdaLR(
        optimizer, lambda step: min((step + 1) / warmup, max(0.0, (total - step) / (total - warmup + 1e-9)))
    )
    ce = torch.nn.CrossEntropyLoss()
    bce = torch.nn.BCEWithLogitsLoss()
    model.train()
    losses = {"intent": [], "frustration": []}
    bar = tqdm(schedule, desc="fine-tune", unit="batch", mininterval=5)
    for step, (task, idx) in enumerate(bar):
        texts = [(intent_texts if task == "intent" else frustration_texts)[i] for i in idx]
        batch = encode_batch(tokenizer, texts)
        intent_logits, frustration_logit, _ = model(**batch)
        if task == "intent":
            y = torch.tensor([intent_labels[i] for i in idx], dtype=torch.long)
            loss = ce(intent_logits, y)
        else:
            y = torch.tensor([frustration_labels[i] for i in idx], dtype=torch.float32)
            loss = bce(frustration_logit, y)
        optimizer.zero_grad()
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        optimizer.step()
        scheduler.step()
        losses[task].append(loss.item())
        if step % 50 == 0:
            bar.set_postfix({k: f"{np.mean(v[-50:]):.3f}" for k, v in losses.items() if v})
    log.info("fine-tune done: %d steps; last-100 loss %s", total,
             {k: round(float(np.mean(v[-100:])), 4) for k, v in losses.items() if v})
    log.info("cue weights: %s", model.cue_weights().detach().numpy().round(3).tolist())
    model.eval()
    return model


@torch.no_grad()
def predict_logits(model: IntentFrustrationModel, tokenizer_path: Path, texts: list[str],
                   max_length: int, batch_size: int = 64) -> tuple[np.ndarray, np.ndarray]:
    """Torch (eager, fp32) logits for ``texts``: the reference the ONNX export is checked against."""
    tokenizer = make_tokenizer(tokenizer_path, max_length)
    model.eval()
    intents, frustration = [], []
    for i in range(0, len(texts), batch_size):
        a, b, _ = model(**encode_batch(tokenizer, texts[i : i + batch_size]))
        intents.append(a.numpy())
        frustration.append(b.numpy())
    return np.concatenate(intents), np.concatenate(frustration)
