import numpy as np
from PIL import Image

from imagen.figures import TILE, cascade_figure, sr_comparison
from imagen.images import to_pil


def test_cascade_figure_shows_both_stages(tiny_pipeline):
    figure = cascade_figure(tiny_pipeline, "red apple", frames=3)
    # 3 frames of each stage, two rows (x_t, predicted x0), drawn on white
    assert figure.width > 6 * 100 and figure.height > 2 * 100
    assert figure.getpixel((0, 0)) == (255, 255, 255)
    # the base stage's first x_t tile is the pipeline's own pure noise for that seed, enlarged
    first = next(tiny_pipeline.generate("red apple", seed=0))
    noise = np.asarray(to_pil(first.x_t)[0].resize((TILE, TILE), Image.Resampling.NEAREST))
    pad, top = 8, 54
    assert np.array_equal(np.asarray(figure)[top:top + TILE, pad:pad + TILE], noise)


def test_sr_comparison_pairs_bicubic_and_sr(tiny_pipeline):
    figure = sr_comparison(tiny_pipeline, ["red apple", "sun"])
    assert figure.width == 4 * 256
    out = tiny_pipeline(["red apple", "sun"], seed=0)
    sheet = np.asarray(figure)
    # "sun": its bicubic upscale, then the SR stage's own 256 px image, side by side
    bicubic = np.asarray(out.images_64[1].resize((256, 256), Image.Resampling.BICUBIC))
    assert np.array_equal(sheet[:256, 512:768], bicubic)
    assert np.array_equal(sheet[:256, 768:1024], np.asarray(out.images_256[1]))


def test_instrument_figures_have_a_row_per_word_per_half_and_per_sampler(tiny_pipeline):
    from imagen.figures import attention_figure, guidance_figure, samplers_figure
    rows = lambda figure: (figure.height - 34) // (TILE + 6)  # noqa: E731
    assert rows(attention_figure(tiny_pipeline, "red apple", frames=3)) == 1 + 3  # x0, red, apple, all
    assert rows(guidance_figure(tiny_pipeline, "red apple", frames=3)) == 4
    assert rows(samplers_figure(tiny_pipeline, "red apple", frames=3)) == 3


def test_restoration_figure_has_the_real_row_and_one_row_per_start(tiny_pipeline):
    import torch

    from imagen.figures import restoration_figure
    real = torch.rand(2, 3, 64, 64) * 2 - 1
    figure = restoration_figure(tiny_pipeline, real, ["red apple", "sun"], starts=(999, 500))
    assert (figure.height - 34) // (TILE + 6) == 1 + 2


def test_styles_figure_has_the_bare_names_and_a_row_per_style(tiny_pipeline):
    from dataclasses import replace

    from imagen.figures import styles_figure
    tiny_pipeline.config = replace(tiny_pipeline.config, styles=("openmoji style", "twemoji style"))
    names = ["red apple", "sun", "ghost", "banana", "fire"]
    figure = styles_figure(tiny_pipeline, names)
    assert (figure.height - 34) // (TILE + 6) == 1 + 2
    assert figure.width >= 5 * TILE
    # row 2, column 1: "red apple, openmoji style" at seed 0, as the pipeline draws it
    image = tiny_pipeline(["red apple, openmoji style"], seed=0, sr=False).images_64[0]
    tile = np.asarray(image.resize((TILE, TILE), Image.Resampling.NEAREST))
    y = 34 + TILE + 6
    assert np.array_equal(np.asarray(figure)[y:y + TILE, 150:150 + TILE], tile)


def test_colours_figure_has_a_row_per_name_and_style_and_a_column_per_colour(tiny_pipeline):
    from dataclasses import replace

    from imagen.figures import colours_figure
    tiny_pipeline.config = replace(tiny_pipeline.config, styles=("openmoji style",))
    figure = colours_figure(tiny_pipeline, ["banana", "sun"])
    assert (figure.height - 34) // (TILE + 6) == 2 * 2  # (as typed, openmoji) per name
    assert (figure.width - 150) // (TILE + 6) == 1 + 7  # as named, then the seven colours
    # row 1 (banana, openmoji), column 6 ("purple"): the pipeline's own "purple banana, openmoji style"
    image = tiny_pipeline(["purple banana, openmoji style"], seed=0, sr=False).images_64[0]
    tile = np.asarray(image.resize((TILE, TILE), Image.Resampling.NEAREST))
    x, y = 150 + 6 * (TILE + 6), 34 + (TILE + 6)
    assert np.array_equal(np.asarray(figure)[y:y + TILE, x:x + TILE], tile)
