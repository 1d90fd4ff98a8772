"""Drawing styles in the prompt box: added to a prompt that names none, replaced when another is picked."""

import pytest

from imagen.web.styles import AS_TYPED, restyle, with_style


@pytest.mark.parametrize("prompt, style, added, restyled", [
    ("penguin", "openmoji style", "penguin, openmoji style", "penguin, openmoji style"),
    ("rocket, Twemoji style", "openmoji style", "rocket, Twemoji style", "rocket, openmoji style"),
    ("a twemoji cat", "openmoji style", "a twemoji cat", "a twemoji cat"),  # it names a style already
    ("cat face,", "twemoji style", "cat face, twemoji style", "cat face, twemoji style"),
    ("rocket, openmoji style", AS_TYPED, "rocket, openmoji style", "rocket"),
    ("", "openmoji style", "", ""),  # left for the handler to refuse
    (None, "openmoji style", None, None),
])
def test_a_style_is_added_only_to_a_prompt_that_names_none(prompt, style, added, restyled):
    styles = ("openmoji style", "twemoji style")
    assert with_style(prompt, style, styles) == added
    assert restyle(prompt, style, styles) == restyled
    assert with_style("penguin", "openmoji style", ()) == "penguin"  # a checkpoint without styles
