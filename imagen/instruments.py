"""Instruments that look inside the base stage while it samples, opt-in and free when off.

- `AttentionProbe`: where each text token is looked at. The base U-Net's attention blocks (at 16
  and 8 px) attend from every pixel to the caption's tokens and to the other pixels at once
  (diffusers' added-KV attention, as in DeepFloyd IF); the probe keeps the probabilities that go to
  the text tokens, averaged over heads and layers and upsampled to 64 px: (B, L, 64, 64) per step.
  Summed over all L tokens they are the share of attention that goes to the text at all; the rest
  goes to the image itself.
- `GuidanceParts`: the unconditional and the conditional predictions that classifier-free
  guidance mixes, kept as the x0 each implies.

    probe = AttentionProbe(pipe.base_unet)
    with probe:                          # swaps in capturing processors; restores them on exit
        ... run the U-Net ...
        maps = probe.step_maps()         # (B, L, 64, 64), then cleared for the next step
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from diffusers.models.attention_processor import Attention, AttnAddedKVProcessor

from .diffusion import dynamic_threshold, predict_x0
from .text_encoder import TextEncoder

MAP_SIZE = 64


class _CapturingProcessor(AttnAddedKVProcessor):
    """diffusers' own added-KV processor, with its attention probabilities recorded on the way:
    only `get_attention_scores` is wrapped, for the length of one call."""

    def __init__(self, probe: AttentionProbe, name: str):
        self.probe, self.name = probe, name

    def __call__(self, attn: Attention, hidden_states: torch.Tensor, encoder_hidden_states: torch.Tensor | None = None,
                 attention_mask: torch.Tensor | None = None, **kwargs: object) -> torch.Tensor:
        b, _, h, w = hidden_states.shape  # (B, C, H, W)
        n_text = encoder_hidden_states.shape[1] if encoder_hidden_states is not None else 0
        scores = attn.get_attention_scores

        def recording(query: torch.Tensor, key: torch.Tensor, mask: torch.Tensor | None = None) -> torch.Tensor:
            probs = scores(query, key, mask)  # (B * heads, H * W, L + H * W): text keys first
            text = probs[:, :, :n_text].float().reshape(b, -1, h * w, n_text).mean(1)  # (B, HW, L)
            self.probe.record(text.transpose(1, 2).reshape(b, n_text, h, w))
            return probs

        attn.get_attention_scores = recording  # an instance attribute shadows the method...
        try:
            return super().__call__(attn, hidden_states, encoder_hidden_states, attention_mask)
        finally:
            del attn.get_attention_scores  # ...and deleting it brings the method back


class AttentionProbe:
    """Per-token cross-attention maps of one U-Net, captured while it is used as a context manager."""

    def __init__(self, unet: torch.nn.Module):
        self.unet = unet
        self._saved: dict | None = None
        self._maps: list[torch.Tensor] = []

    def __enter__(self) -> AttentionProbe:
        self._saved = dict(self.unet.attn_processors)
        processors = {}
        for name, processor in self._saved.items():
            module = self.unet.get_submodule(name.removesuffix(".processor"))
            is_text_attention = isinstance(module, Attention) and module.added_kv_proj_dim is not None
            processors[name] = _CapturingProcessor(self, name) if is_text_attention else processor
        self.unet.set_attn_processor(processors)
        return self

    def __exit__(self, *exc: object) -> None:
        if self._saved is not None:
            self.unet.set_attn_processor(self._saved)
            self._saved = None
        self._maps.clear()

    def record(self, maps: torch.Tensor) -> None:
        """One attention layer's (B, L, h, w) text-token probabilities, upsampled to 64 px."""
        self._maps.append(F.interpolate(maps, size=(MAP_SIZE, MAP_SIZE), mode="bilinear", align_corners=False))

    def step_maps(self, keep_last: int | None = None) -> torch.Tensor:
        """The mean over the layers recorded since the last call (one network evaluation): (B, L, 64, 64).
        With guidance the batch holds the unconditional half first: `keep_last` keeps the last B."""
        if not self._maps:
            raise RuntimeError("no attention was recorded: is the probe entered, and did the U-Net run?")
        maps = torch.stack(self._maps).mean(0)
        self._maps.clear()
        return maps if keep_last is None else maps[-keep_last:]


def words(encoder: TextEncoder, prompt: str) -> list[tuple[str, list[int]]]:
    """The prompt's words and the token positions each covers: word pieces ('tw', '##em', '##oji')
    joined back into words, special and padding tokens left out."""
    ids = encoder.tokenizer(prompt, padding="max_length", truncation=True, max_length=encoder.max_length)["input_ids"]
    special = set(encoder.tokenizer.all_special_ids)
    pieces = [(i, encoder.tokenizer.convert_ids_to_tokens(t)) for i, t in enumerate(ids) if t not in special]
    sentencepiece = any(p.startswith("▁") for _, p in pieces)  # T5 marks word starts; BERT marks the rest
    out: list[tuple[str, list[int]]] = []
    for position, piece in pieces:
        continues = not piece.startswith("▁") if sentencepiece else piece.startswith("##")
        text = piece.lstrip("▁") if sentencepiece else piece.removeprefix("##")
        if continues and out:
            out[-1] = (out[-1][0] + text, out[-1][1] + [position])
        else:
            out.append((text, [position]))
    # Punctuation carries no object to point at: not a word of its own.
    return [(w, p) for w, p in out if any(c.isalnum() for c in w)]


def word_maps(maps: torch.Tensor, spans: list[tuple[str, list[int]]]) -> dict[str, torch.Tensor]:
    """(L, 64, 64) token maps -> {word: (64, 64)}, each word the sum of its pieces' maps, and "all", the
    sum over the words (the share of attention the caption's words get). A repeated word gets a suffix."""
    out: dict[str, torch.Tensor] = {}
    for word, positions in spans:
        key, n = word, 2
        while key in out:
            key, n = f"{word} ({n})", n + 1
        out[key] = maps[positions].sum(0)
    if out:
        out["all"] = torch.stack(list(out.values())).sum(0)
    return out


class GuidanceParts:
    """The two network outputs classifier-free guidance mixes at each step, recorded by the denoiser,
    turned into the x0 each implies: what the model draws without the caption, and with it."""

    def __init__(self) -> None:
        self.out_uncond: torch.Tensor | None = None
        self.out_cond: torch.Tensor | None = None

    def record(self, out_uncond: torch.Tensor, out_cond: torch.Tensor) -> None:
        self.out_uncond, self.out_cond = out_uncond, out_cond

    def x0(self, x_t: torch.Tensor, t: torch.Tensor, alpha_bar: torch.Tensor, prediction_type: str,
           threshold: float) -> tuple[torch.Tensor, torch.Tensor]:
        """(x0 without the caption, x0 with it), thresholded as the sampler thresholds its own."""
        if self.out_uncond is None or self.out_cond is None:
            raise RuntimeError("no guidance parts recorded yet")
        return tuple(dynamic_threshold(predict_x0(x_t, t, out, alpha_bar, prediction_type), threshold)
                     for out in (self.out_uncond, self.out_cond))
