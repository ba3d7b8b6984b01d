"""Loss of `drumlm` ("Language Models are Drummers", arXiv 2301.01162; spec component 8).

Design choice (spec 2.8): the OpenAI fine-tunes objective as recalled, next-token NLL with the prompt tokens
down-weighted: loss = loss_completion + weight_prompt * loss_prompt, each a mean over its own tokens
(completion tokens include SEP and END), weight_prompt = 0.01 (the legacy API's default prompt-loss weight,
unverified recollection; its exact normaliser is unknown). Padding is masked.
"""

from __future__ import annotations

import torch.nn.functional as F
from torch import Tensor

WEIGHT_PROMPT = 0.01


def completion_lm_loss(logits: Tensor, targets: Tensor, is_completion: Tensor, is_real: Tensor,
                       weight_prompt: float = WEIGHT_PROMPT) -> dict[str, Tensor]:
    """Named loss terms of one batch.

    Args:
        logits: (B, T, V) predictions of token t + 1 at position t.
        targets: (B, T) the next tokens.
        is_completion: (B, T) bool, the target token belongs to the completion.
        is_real: (B, T) bool, the target token is not padding.
    Returns:
        {"loss", "loss_completion", "loss_prompt", "nll_completion_sum", "num_completion_tokens"}; a term with no
        token is 0.
    """
    nll = F.cross_entropy(logits.reshape(-1, logits.shape[-1]).float(), targets.reshape(-1),
                          reduction="none").view_as(targets)  # (B, T)
    comp = (is_completion & is_real).float()
    prompt = (~is_completion & is_real).float()
    n_comp, n_prompt = comp.sum(), prompt.sum()
    total_comp = (nll * comp).sum()
    loss_completion = total_comp / n_comp.clamp(min=1)
    loss_prompt = (nll * prompt).sum() / n_prompt.clamp(min=1)
    return {"loss": loss_completion + weight_prompt * loss_prompt, "loss_completion": loss_completion,
            "loss_prompt": loss_prompt, "nll_completion_sum": total_comp.detach(),
            "num_completion_tokens": n_comp.detach()}


def nll_per_line(total_nats: float, num_drum_lines: int) -> float:
    """Dev NLL per drum line = total completion NLL / number of drum lines: comparable across tokenisers."""
    return float(total_nats) / num_drum_lines if num_drum_lines else float("nan")

