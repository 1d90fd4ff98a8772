from imagen.figures import cascade_figure, sr_comparison


def test_cascade_figure_shows_both_stages(tiny_pipeline):
    figure = cascade_figure(tiny_pipeline, "red apple", frames=3)
    # 3 frames of each stage, two rows (x_t, predicted x0), drawn on white
    assert figure.width > 6 * 100 and figure.height > 2 * 100
    assert figure.getpixel((0, 0)) == (255, 255, 255)


def test_sr_comparison_pairs_bicubic_and_sr(tiny_pipeline):
    figure = sr_comparison(tiny_pipeline, ["red apple", "sun"])
    assert figure.width == 4 * 256


def test_instrument_figures_have_a_row_per_word_per_half_and_per_sampler(tiny_pipeline):
    from imagen.figures import TILE, attention_figure, guidance_figure, samplers_figure
    rows = lambda figure: (figure.height - 34) // (TILE + 6)  # noqa: E731
    assert rows(attention_figure(tiny_pipeline, "red apple", frames=3)) == 1 + 3  # x0, red, apple, all
    assert rows(guidance_figure(tiny_pipeline, "red apple", frames=3)) == 4
    assert rows(samplers_figure(tiny_pipeline, "red apple", frames=3)) == 3


def test_restoration_figure_has_the_real_row_and_one_row_per_start(tiny_pipeline):
    import torch

    from imagen.figures import TILE, restoration_figure
    real = torch.rand(2, 3, 64, 64) * 2 - 1
    figure = restoration_figure(tiny_pipeline, real, ["red apple", "sun"], starts=(999, 500))
    assert (figure.height - 34) // (TILE + 6) == 1 + 2


def test_styles_figure_has_the_bare_names_and_a_row_per_style(tiny_pipeline):
    from dataclasses import replace

    from imagen.figures import TILE, styles_figure
    tiny_pipeline.config = replace(tiny_pipeline.config, styles=("openmoji style", "twemoji style"))
    figure = styles_figure(tiny_pipeline, ["red apple", "sun", "ghost", "banana", "fire"])
    assert (figure.height - 34) // (TILE + 6) == 1 + 2
    assert figure.width >= 5 * TILE
