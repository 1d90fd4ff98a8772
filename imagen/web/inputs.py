"""The web demo's input checks: every argument of /generate and /sweep, by name, against the range
the page's own control allows. app.py passes arguments raw (preprocess=False), so a client sending
JSON by hand meets the same checks, and a refusal says which setting is wrong and what it accepts.
It is a `gr.Error` that is not logged with a traceback: the server is fine."""

from __future__ import annotations

import inspect
import secrets
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

import gradio as gr

from ..config import MAX_GUIDANCE, Settings

if TYPE_CHECKING:
    from gradio.blocks import BlockFunction

    from ..pipeline import ImagenPipeline

MAX_SEED = 2**31 - 1
MAX_PROMPT_CHARS = 1000  # far beyond the token limit; keeps a pasted novel from tying up the tokenizer
MAX_UI_STEPS = 100  # the pipeline takes up to 1000; on a CPU 100 already takes a while
MAX_UI_GUIDANCE = MAX_GUIDANCE / 2  # the page's slider ends here; the pipeline takes up to MAX_GUIDANCE


@dataclass(frozen=True)
class Limits:
    """The accepted range of each numeric argument of the page and its API: the sliders' ends."""

    max_guidance: float = MAX_UI_GUIDANCE
    max_steps: int = MAX_UI_STEPS
    max_sr_steps: int = MAX_UI_STEPS

    @classmethod
    def around(cls, defaults: Settings) -> Limits:
        """The usual ends, widened where a checkpoint's defaults lie beyond them, so Generate always
        works at the defaults the page opens with."""
        return cls(max(MAX_UI_GUIDANCE, defaults.guidance_scale), max(MAX_UI_STEPS, defaults.steps),
                   max(MAX_UI_STEPS, defaults.sr_steps))


def user_error(message: str, title: str = "Invalid setting") -> gr.Error:
    """A message for the page (or the API caller). Not logged with a traceback: the server is fine."""
    return gr.Error(message, title=title, print_exception=False)


def _shown(value: object) -> str:
    """A value as an error message quotes it: its repr, cut short (a caller may send anything)."""
    text = repr(value)
    return text if len(text) <= 60 else text[:57] + "..."


def check_prompt(prompt: object) -> tuple[str, bool]:
    """The prompt to use, and whether it was cut to MAX_PROMPT_CHARS. Empty -> gr.Error."""
    if not isinstance(prompt, str):
        raise user_error(f"prompt must be text, got {_shown(prompt)}.")
    if not prompt.strip():
        raise user_error("The prompt is empty: describe the image you want, e.g. 'red apple, twemoji style'.",
                         title="Empty prompt")
    prompt = " ".join(prompt.split())  # newlines and runs of spaces carry no meaning for the encoder
    return prompt[:MAX_PROMPT_CHARS], len(prompt) > MAX_PROMPT_CHARS


def number(name: str, value: object, low: float, high: float) -> float:
    """A finite number in [low, high]; true/false, text and NaN are refused by name."""
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not low <= value <= high:
        raise user_error(f"{name} must be a number from {low:g} to {high:g}, got {_shown(value)}.")
    return float(value)


def whole_number(name: str, value: object, low: int, high: int) -> int:
    """A whole number in [low, high]. Sliders send floats (25.0); 2.5 is refused, not rounded."""
    # The range first: NaN fails it, and a 400-digit integer must not reach float conversion.
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not low <= value <= high or value % 1:
        raise user_error(f"{name} must be a whole number from {low} to {high}, got {_shown(value)}.")
    return int(value)


def flag(name: str, value: object) -> bool:
    """True or False only: the string "false" is truthy, so it must not pass for False."""
    if not isinstance(value, bool):
        raise user_error(f"{name} must be true or false, got {_shown(value)}.")
    return value


def choice(name: str, value: object, options: Sequence[str]) -> str:
    if not isinstance(value, str) or value not in options:
        raise user_error(f"{name} must be one of {', '.join(options)}, got {_shown(value)}.")
    return value


def pick_seed(seed: object, randomize: object) -> int:
    """A fresh seed when asked for one; either way the seed used is returned, to be shown."""
    seed = whole_number("seed", seed, 0, MAX_SEED)  # checked even when unused: a typo should not pass
    return secrets.randbelow(MAX_SEED + 1) if flag("randomize_seed", randomize) else seed


def checked_settings(pipe: ImagenPipeline, **overrides: object) -> Settings:
    """The pipeline's own checks, turned into a message on the page."""
    try:
        return pipe.settings(**overrides)
    except ValueError as e:
        raise user_error(str(e).rstrip(".") + ".") from e


def truncation_notice(pipe: ImagenPipeline, prompt: str, cut: bool) -> str:
    if not (cut or pipe.truncated([prompt])[0]):
        return ""
    limit = pipe.text_encoder.max_length
    return (f"Note: your prompt is longer than the text encoder's limit of {limit} tokens, so it was truncated: "
            "the model only read its beginning. ")


class CheckedBlocks(gr.Blocks):
    """gr.Blocks whose API answers a call with too few arguments as it answers any bad argument: a
    message naming what is missing, and no traceback in the log (Gradio's own check answers
    `{"error": null}` and logs one)."""

    def validate_inputs(self, block_fn: BlockFunction, inputs: list) -> None:
        wanted = len(block_fn.inputs)
        if len(inputs) < wanted:
            names = list(inspect.signature(block_fn.fn).parameters)[:wanted] if block_fn.fn else []
            missing = ", ".join(names[len(inputs):]) or f"{wanted - len(inputs)} argument(s)"
            raise user_error(f"{block_fn.api_name or block_fn.name} takes {wanted} arguments"
                             + (f" ({', '.join(names)})" if names else "")
                             + f", got {len(inputs)}: {missing} missing.", title="Missing arguments")
        super().validate_inputs(block_fn, inputs)
