import math

import pytest
import torch

from imagen.diffusion import (
    alpha_bars,
    classifier_free_guidance,
    cosine_betas,
    dynamic_threshold,
    make_betas,
    min_snr_weight,
    noise_augment,
    predict_x0,
    q_sample,
    shifted_timesteps,
    training_loss,
    v_target,
)


@pytest.fixture
def alpha_bar():
    return alpha_bars(make_betas("cosine", 1000))


def test_cosine_schedule_runs_from_clean_to_noise(alpha_bar):
    assert alpha_bar[0] > 0.999 and alpha_bar[-1] < 1e-3
    assert torch.all(alpha_bar[1:] < alpha_bar[:-1])  # strictly more noise at every step
    assert torch.all((cosine_betas(1000) > 0) & (cosine_betas(1000) <= 0.999))


@pytest.mark.parametrize("prediction_type", ["epsilon", "v_prediction"])
def test_q_sample_then_predict_x0_from_true_target_recovers_x0(alpha_bar, prediction_type):
    g = torch.Generator().manual_seed(0)
    x0 = torch.rand(4, 3, 8, 8, generator=g) * 2 - 1
    eps = torch.randn(4, 3, 8, 8, generator=g)
    t = torch.tensor([0, 10, 500, 900])
    x_t = q_sample(x0, t, eps, alpha_bar)
    target = eps if prediction_type == "epsilon" else v_target(x0, t, eps, alpha_bar)
    assert torch.allclose(predict_x0(x_t, t, target, alpha_bar, prediction_type), x0, atol=1e-3)
    assert training_loss(target, x0, t, eps, alpha_bar, prediction_type) < 1e-10
    assert training_loss(torch.zeros_like(target), x0, t, eps, alpha_bar, prediction_type) > 0.1


def test_q_sample_variance_is_preserved(alpha_bar):
    x0 = torch.randn(20000, 1, 1, 1)
    t = torch.full((20000,), 600)
    x_t = q_sample(x0, t, torch.randn_like(x0), alpha_bar)
    assert abs(x_t.std().item() - 1) < 0.03


def test_guidance_scale_one_is_the_conditional_prediction():
    cond, uncond = torch.randn(2, 3, 4, 4), torch.randn(2, 3, 4, 4)
    assert torch.allclose(classifier_free_guidance(uncond, cond, 1.0), cond, atol=1e-6)
    assert torch.allclose(classifier_free_guidance(uncond, cond, 0.0), uncond, atol=1e-6)
    # w > 1 extrapolates away from the unconditional prediction
    assert torch.allclose(classifier_free_guidance(uncond, cond, 3.0) - cond, 2 * (cond - uncond))


def test_dynamic_threshold_keeps_x0_in_range_and_leaves_in_range_images_alone():
    g = torch.Generator().manual_seed(0)
    saturated = torch.randn(3, 3, 16, 16, generator=g) * 4  # what large guidance weights produce
    out = dynamic_threshold(saturated, 0.95)
    assert out.abs().max() <= 1.0
    # s is capped at max_value, so values beyond it are clipped rather than all squeezed
    assert (out.abs() == 1.0).float().mean() > 0.01
    inside = torch.rand(2, 3, 8, 8, generator=g) * 1.8 - 0.9
    assert torch.equal(dynamic_threshold(inside, 0.95), inside)


def test_a_lower_percentile_keeps_a_white_background_white():
    # An emoji's x0: 80% white background (+1), a quarter of which the network overshoots, 20% ink.
    # At the 95th percentile s = 1.3 comes from the background itself, and dividing by it greys
    # the background; at the 70th, s stays 1 and only the overshoot is clipped.
    x0 = torch.full((1, 3, 10, 10), 1.0)
    x0.view(-1)[:60] = -0.4  # ink
    x0.view(-1)[60:120] = 1.3  # background overshoot
    white = x0.view(-1)[120:]
    assert (dynamic_threshold(x0, 0.95).view(-1)[120:] < 0.8).all()
    assert torch.equal(dynamic_threshold(x0, 0.7).view(-1)[120:], white)
    assert torch.equal(dynamic_threshold(x0, 0.7).view(-1)[:60], x0.view(-1)[:60])


def test_dynamic_threshold_rescales_by_the_percentile():
    x0 = torch.linspace(-1.2, 1.2, 1000).view(1, 1, 1, 1000)
    out = dynamic_threshold(x0, percentile=1.0, max_value=2.0)
    assert torch.allclose(out, x0 / 1.2, atol=1e-6)  # s = max |x0| = 1.2: rescaled, not clipped
    with pytest.raises(ValueError, match="percentile"):
        dynamic_threshold(x0, percentile=0)


def test_noise_augmentation_follows_the_level(alpha_bar):
    low_res = torch.zeros(2, 3, 32, 32)
    g = [torch.Generator().manual_seed(i) for i in range(2)]
    out = noise_augment(low_res, torch.tensor([0, 800]), alpha_bar, g)
    assert out[0].std() < 0.05 and out[1].std() > 0.9  # level 0: clean; level 800: mostly noise


def test_unknown_schedule_and_prediction_type_are_errors(alpha_bar):
    with pytest.raises(ValueError, match="schedule"):
        make_betas("quadratic")
    with pytest.raises(ValueError, match="prediction type"):
        predict_x0(torch.zeros(1, 3, 2, 2), torch.tensor([1]), torch.zeros(1, 3, 2, 2), alpha_bar, "x0")


@pytest.mark.parametrize("prediction_type", ["epsilon", "v_prediction"])
def test_min_snr_weight_makes_the_loss_an_x0_loss_weighted_by_min_snr_gamma(alpha_bar, prediction_type):
    t = torch.tensor([0, 100, 400, 700, 999])
    snr_t = alpha_bar[t] / (1 - alpha_bar[t])
    # the eps loss is SNR x the x0 loss, the v loss (SNR + 1) x; the weight turns either into min(SNR, gamma) x
    to_x0 = snr_t if prediction_type == "epsilon" else snr_t + 1
    w = min_snr_weight(t, alpha_bar, prediction_type, gamma=5.0)
    assert torch.allclose(w * to_x0, snr_t.clamp(max=5.0), rtol=1e-4)
    assert w[0] < 0.01 and w[0] < w[-2]  # the nearly clean step no longer dominates


def test_min_snr_loss_is_the_weighted_mean_of_per_sample_errors(alpha_bar):
    x0, eps = torch.rand(4, 3, 8, 8) * 2 - 1, torch.randn(4, 3, 8, 8)
    t = torch.tensor([5, 200, 600, 950])
    out = torch.randn(4, 3, 8, 8)
    target = v_target(x0, t, eps, alpha_bar)
    per_sample = (out - target).square().mean(dim=(1, 2, 3))
    expected = (per_sample * min_snr_weight(t, alpha_bar, "v_prediction", 5.0)).mean()
    got = training_loss(out, x0, t, eps, alpha_bar, "v_prediction", "min_snr", 5.0)
    assert torch.allclose(got, expected)
    plain = training_loss(out, x0, t, eps, alpha_bar, "v_prediction")
    assert torch.allclose(plain, per_sample.mean()) and not torch.allclose(plain, got)
    with pytest.raises(ValueError, match="loss weighting"):
        training_loss(out, x0, t, eps, alpha_bar, "v_prediction", "p2")


def test_shifted_timesteps_lower_the_log_snr_by_twice_the_log_of_the_shift(alpha_bar):
    u = torch.rand(20000, generator=torch.Generator().manual_seed(0), dtype=torch.float64)
    uniform = (u * 1000).long()
    assert torch.equal(shifted_timesteps(u, alpha_bar, 1.0), uniform)  # shift 1 is the uniform draw
    t = shifted_timesteps(u, alpha_bar, 2.0)
    assert torch.all(t >= uniform)  # every draw moves toward noise, none back
    log_snr = (alpha_bar / (1 - alpha_bar)).log()
    inner = (uniform > 50) & (t < 950)  # away from the ends, where the schedule is clamped
    drop = log_snr[uniform[inner]] - log_snr[t[inner]]
    assert drop.median().item() == pytest.approx(2 * math.log(2.0), abs=0.02)
    assert t.float().median() == pytest.approx(704, abs=15) and (t >= 600).float().mean() > 0.55
    with pytest.raises(ValueError, match="positive"):
        shifted_timesteps(u, alpha_bar, 0.0)
