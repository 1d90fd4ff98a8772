// Imagen's sampling loops in the browser: the same steps as imagen/samplers.py and imagen/pipeline.py,
// over Float32Arrays, with no build step and no dependency. The U-Net is passed in as an async
// function, so this module knows nothing of onnxruntime:
//
//   model({x_t, t, batch, guided, x0_prev, low_res, aug_level}) -> Float32Array (batch, 3, H, W)
//
// x_t is (batch, 3, H, W). A guided step asks for 2B images at once, the caption-free half first
// (x_t, x0_prev and low_res repeated); the caller feeds the matching text embeddings. x0_prev is
// set for a self-conditioned base stage, low_res and aug_level for the SR stage.
//
// Schedules come from `python -m imagen.export_web` (schedule_base.json, schedule_sr.json). Images
// are in [-1, 1], laid out (B, C, H, W). Every step yields {stage, index, total, timestep, x_t,
// x0_pred, x_prev, noise_level}, as imagen.samplers.Step does, so a page can draw each one.

export const SAMPLERS = ["dpm++", "ddim", "ddpm"];

const f32 = Math.fround; // diffusers computes its coefficients in float32: so do we

// ---------------------------------------------------------------- timesteps

function roundHalfEven(x) {
  const r = Math.round(x);
  return Math.abs(x % 1) === 0.5 && r % 2 !== 0 ? r - 1 : r; // numpy rounds halves to even
}

/** The timesteps of diffusers' "trailing" spacing: np.round(np.arange(T, 0, -T / n)) - 1, first to last. */
export function trailingTimesteps(numTrainTimesteps, steps) {
  if (!Number.isInteger(steps) || steps < 1 || steps > numTrainTimesteps) {
    throw new RangeError(`steps must be a whole number in [1, ${numTrainTimesteps}], got ${steps}`);
  }
  const start = numTrainTimesteps, step = -numTrainTimesteps / steps;
  const length = Math.ceil((0 - start) / step);
  const delta = (start + step) - start; // numpy's arange fills start + i * (buffer[1] - buffer[0])
  const out = [];
  for (let i = 0; i < length; i++) out.push(roundHalfEven(start + i * delta) - 1);
  return out;
}

// ---------------------------------------------------------------- schedulers (diffusers' step formulas)

/** A scheduler over `alphasCumprod` (the scheduler's own, float32): step(x0, i, x_t, noise) -> x_prev.
 * Every scheduler is handed the thresholded x0 itself (diffusers' prediction_type="sample"). */
export function makeScheduler(name, alphasCumprod, steps) {
  const T = alphasCumprod.length;
  const timesteps = trailingTimesteps(T, steps);
  const n = timesteps.length;
  if (name === "ddpm") return ddpm(alphasCumprod, timesteps);
  if (name === "ddim") return ddim(alphasCumprod, timesteps, Math.floor(T / n));
  if (name === "dpm++") return dpmSolverPP(alphasCumprod, timesteps);
  throw new RangeError(`unknown sampler ${JSON.stringify(name)}; expected one of ${SAMPLERS.join(", ")}`);
}

/** Ancestral sampling (Ho et al. 2020), "fixed_small" variance: fresh noise at every step with t > 0. */
function ddpm(ac, timesteps) {
  return {
    timesteps,
    needsNoise: (i) => timesteps[i] > 0,
    step(x0, i, x_t, noise) {
      const t = timesteps[i], prev = i + 1 < timesteps.length ? timesteps[i + 1] : -1;
      const aT = ac[t], aPrev = prev >= 0 ? ac[prev] : 1;
      const betaProdT = f32(1 - aT), betaProdPrev = f32(1 - aPrev);
      const alphaT = f32(aT / aPrev), betaT = f32(1 - alphaT);
      const cx0 = f32(f32(f32(Math.sqrt(aPrev)) * betaT) / betaProdT);
      const cxt = f32(f32(f32(Math.sqrt(alphaT)) * betaProdPrev) / betaProdT);
      const std = t > 0 ? f32(Math.sqrt(Math.max(f32(f32(betaProdPrev / betaProdT) * betaT), 1e-20))) : 0;
      const out = new Float32Array(x_t.length);
      for (let k = 0; k < out.length; k++) out[k] = cx0 * x0[k] + cxt * x_t[k] + (std ? std * noise[k] : 0);
      return out;
    },
  };
}

/** DDIM (Song et al. 2021), eta = 0. diffusers steps back by T // n whatever the spacing. */
function ddim(ac, timesteps, stride) {
  return {
    timesteps,
    needsNoise: () => false,
    step(x0, i, x_t) {
      const t = timesteps[i], prev = t - stride;
      const aT = ac[t], aPrev = prev >= 0 ? ac[prev] : 1; // set_alpha_to_one
      const sqrtA = f32(Math.sqrt(aT)), sqrtB = f32(Math.sqrt(f32(1 - aT)));
      const sqrtAPrev = f32(Math.sqrt(aPrev)), dir = f32(Math.sqrt(f32(1 - aPrev)));
      const out = new Float32Array(x_t.length);
      for (let k = 0; k < out.length; k++) {
        const eps = (x_t[k] - sqrtA * x0[k]) / sqrtB;
        out[k] = sqrtAPrev * x0[k] + dir * eps;
      }
      return out;
    },
  };
}

/** DPM-Solver++ 2M (Lu et al. 2022), midpoint, first order at the first step and the last (final sigma 0). */
function dpmSolverPP(ac, timesteps) {
  const n = timesteps.length;
  const sigmas = timesteps.map((t) => f32(Math.sqrt(f32(f32(1 - ac[t]) / ac[t]))));
  sigmas.push(0);
  const alphaSigma = (sigma) => {
    const alpha = f32(1 / f32(Math.sqrt(f32(f32(sigma * sigma) + 1))));
    return [alpha, f32(sigma * alpha)];
  };
  const lambda = ([alpha, sigma]) => f32(Math.log(alpha)) - f32(Math.log(sigma));
  let previous = null, lowerOrderNums = 0;
  return {
    timesteps,
    needsNoise: () => false,
    step(x0, i, x_t) {
      const [alphaT, sigmaT] = alphaSigma(sigmas[i + 1]);
      const [alphaS0, sigmaS0] = alphaSigma(sigmas[i]);
      const h = lambda([alphaT, sigmaT]) - lambda([alphaS0, sigmaS0]);
      const lowerOrderFinal = i === n - 1; // final_sigmas_type="zero"
      const ratio = sigmaT / sigmaS0, c = alphaT * (Math.exp(-h) - 1);
      const out = new Float32Array(x_t.length);
      if (lowerOrderNums < 1 || lowerOrderFinal) {
        for (let k = 0; k < out.length; k++) out[k] = ratio * x_t[k] - c * x0[k];
      } else {
        const [alphaS1, sigmaS1] = alphaSigma(sigmas[i - 1]);
        const r0 = (lambda([alphaS0, sigmaS0]) - lambda([alphaS1, sigmaS1])) / h;
        for (let k = 0; k < out.length; k++) {
          const d1 = (1 / r0) * (x0[k] - previous[k]);
          out[k] = ratio * x_t[k] - c * x0[k] - 0.5 * c * d1;
        }
      }
      previous = x0;
      lowerOrderNums = Math.min(lowerOrderNums + 1, 2);
      return out;
    },
  };
}

// ---------------------------------------------------------------- diffusion math (imagen/diffusion.py)

/** The clean image implied by the network's output at a step whose alpha_bar is `alphaBar`. */
export function predictX0(x_t, modelOut, alphaBar, predictionType) {
  const a = f32(Math.sqrt(alphaBar)), s = f32(Math.sqrt(f32(1 - alphaBar)));
  const out = new Float32Array(x_t.length);
  if (predictionType === "epsilon") {
    for (let k = 0; k < out.length; k++) out[k] = (x_t[k] - s * modelOut[k]) / a;
  } else if (predictionType === "v_prediction") {
    for (let k = 0; k < out.length; k++) out[k] = a * x_t[k] - s * modelOut[k];
  } else {
    throw new RangeError(`unknown prediction type ${JSON.stringify(predictionType)}`);
  }
  return out;
}

/** Ho & Salimans 2022: out_uncond + w (out_cond - out_uncond). */
export function classifierFreeGuidance(outUncond, outCond, guidanceScale) {
  const out = new Float32Array(outCond.length);
  for (let k = 0; k < out.length; k++) out[k] = outUncond[k] + guidanceScale * (outCond[k] - outUncond[k]);
  return out;
}

/** Imagen's dynamic thresholding, per image: s = the percentile of |x0| in [1, maxValue]; clip to [-s, s], / s. */
export function dynamicThreshold(x0, batch, percentile = 0.95, maxValue = 1.5) {
  if (!(percentile > 0 && percentile <= 1)) throw new RangeError(`percentile must be in (0, 1], got ${percentile}`);
  const n = x0.length / batch, out = new Float32Array(x0.length);
  const k = Math.min(Math.max(Math.ceil(percentile * n), 1), n); // torch.kthvalue's k, 1-based
  for (let b = 0; b < batch; b++) {
    const image = x0.subarray(b * n, (b + 1) * n);
    const sorted = image.map(Math.abs).sort();
    const s = Math.min(Math.max(sorted[k - 1], 1), maxValue);
    for (let j = 0; j < n; j++) out[b * n + j] = Math.min(Math.max(image[j], -s), s) / s;
  }
  return out;
}

/** Diffuse x0 to the step whose alpha_bar is `alphaBar`: sqrt(a) x0 + sqrt(1 - a) eps. */
export function qSample(x0, alphaBar, eps) {
  const a = f32(Math.sqrt(alphaBar)), s = f32(Math.sqrt(f32(1 - alphaBar)));
  return x0.map((v, k) => a * v + s * eps[k]);
}

// ---------------------------------------------------------------- resampling (torch's, align_corners=False)

function resize(x, [B, C, H, W], size, taps) {
  const out = new Float32Array(B * C * size * size);
  const rows = Array.from({ length: size }, (_, o) => taps(o, H / size, H));
  const cols = Array.from({ length: size }, (_, o) => taps(o, W / size, W));
  for (let p = 0; p < B * C; p++) {
    const src = x.subarray(p * H * W, (p + 1) * H * W), dst = p * size * size;
    for (let oy = 0; oy < size; oy++) {
      const [ys, wy] = rows[oy];
      for (let ox = 0; ox < size; ox++) {
        const [xs, wx] = cols[ox];
        let v = 0;
        for (let i = 0; i < ys.length; i++) {
          let row = 0;
          for (let j = 0; j < xs.length; j++) row += wx[j] * src[ys[i] * W + xs[j]];
          v += wy[i] * row;
        }
        out[dst + oy * size + ox] = v;
      }
    }
  }
  return out;
}

function linearTaps(o, scale, n) {
  const src = Math.max(f32(scale * (o + 0.5) - 0.5), 0);
  const i0 = Math.floor(src), i1 = Math.min(i0 + 1, n - 1), l = src - i0;
  return [[i0, i1], [1 - l, l]];
}

function cubicTaps(o, scale, n) {
  const A = -0.75; // torch's bicubic
  const src = f32(scale * (o + 0.5) - 0.5), i0 = Math.floor(src), t = src - i0;
  const near = (x) => ((A + 2) * x - (A + 3)) * x * x + 1;
  const far = (x) => ((A * x - 5 * A) * x + 8 * A) * x - 4 * A;
  const clampIndex = (i) => Math.min(Math.max(i, 0), n - 1);
  return [[i0 - 1, i0, i0 + 1, i0 + 2].map(clampIndex), [far(t + 1), near(t), near(1 - t), far(2 - t)]];
}

/** F.interpolate(x, size, mode="bilinear", align_corners=False): the SR stage's view of the 64 px image. */
export const upsampleBilinear = (x, shape, size) => resize(x, shape, size, linearTaps);
/** F.interpolate(x, size, mode="bicubic", align_corners=False). */
export const upsampleBicubic = (x, shape, size) => resize(x, shape, size, cubicTaps);

/** The mean of every factor x factor block: (B, C, H, W) -> (B, C, H / factor, W / factor). */
export function downsample(x, [B, C, H, W], factor) {
  const h = H / factor, w = W / factor, out = new Float32Array(B * C * h * w);
  for (let p = 0; p < B * C; p++) {
    for (let y = 0; y < h; y++) {
      for (let xx = 0; xx < w; xx++) {
        let sum = 0;
        for (let dy = 0; dy < factor; dy++) {
          for (let dx = 0; dx < factor; dx++) sum += x[p * H * W + (y * factor + dy) * W + xx * factor + dx];
        }
        out[(p * h + y) * w + xx] = sum / (factor * factor);
      }
    }
  }
  return out;
}

/** Low-frequency consistency (imagen/consistency.py): x0 + bicubic(y - downsample(x0)), so downsample(x0) ~= y. */
export function project(x0, shape, y, ySize) {
  const [B, C, H] = shape, factor = H / ySize;
  const low = downsample(x0, shape, factor);
  const residual = y.map((v, k) => v - low[k]);
  const up = upsampleBicubic(residual, [B, C, ySize, ySize], H);
  return x0.map((v, k) => v + up[k]);
}

// ---------------------------------------------------------------- noise

/** A seeded N(0, 1) source for the page: randn(n, b) draws n values from image b's own stream (seed + b),
 * so an image does not depend on its batch, as in the pipeline. Not torch's generator: the same seed
 * gives other noise than Python does. */
export function makeRandn(seed) {
  const streams = new Map();
  const uniform = (b) => {
    if (!streams.has(b)) streams.set(b, (seed + b) >>> 0 ^ 0x9e3779b9);
    return () => { // mulberry32
      let s = (streams.get(b) + 0x6d2b79f5) >>> 0;
      streams.set(b, s);
      s = Math.imul(s ^ (s >>> 15), s | 1);
      s ^= s + Math.imul(s ^ (s >>> 7), s | 61);
      return (((s ^ (s >>> 14)) >>> 0) + 0.5) / 4294967296;
    };
  };
  return (n, b) => {
    const next = uniform(b), out = new Float32Array(n);
    for (let k = 0; k < n; k += 2) { // Box-Muller: two normals per pair of uniforms
      const r = Math.sqrt(-2 * Math.log(next())), phi = 2 * Math.PI * next();
      out[k] = r * Math.cos(phi);
      if (k + 1 < n) out[k + 1] = r * Math.sin(phi);
    }
    return out;
  };
}

function drawNoise(randn, batch, n) {
  const out = new Float32Array(batch * n);
  for (let b = 0; b < batch; b++) out.set(randn(n, b), b * n);
  return out;
}

function repeat2(x) {
  const out = new Float32Array(2 * x.length);
  out.set(x);
  out.set(x, x.length);
  return out;
}

// ---------------------------------------------------------------- the loops

/** One stage's denoising loop (imagen.samplers.sample_loop with the pipeline's denoiser): yields every step. */
export async function* sampleStage({
  model, x_T, shape, sampler, steps, schedule, threshold = 0.95, guidanceAt = () => 1, randn = null,
  constrain = null, lowRes = null, augLevel = null, selfConditioned = false, stage = "base",
}) {
  const [B] = shape, n = x_T.length;
  const alphaBar = schedule.alpha_bar, maxValue = schedule.thresholding?.max_value ?? 1.5;
  const scheduler = makeScheduler(sampler, schedule.alphas_cumprod, steps);
  const total = scheduler.timesteps.length;
  let x_t = x_T, x0Prev = selfConditioned ? new Float32Array(n) : null; // zeros before the first x0
  for (let i = 0; i < total; i++) {
    const t = scheduler.timesteps[i], w = guidanceAt(t);
    let out;
    if (w === 1) { // the caption-free half is skipped when it would not change the output
      out = await model({ x_t, t, batch: B, guided: false, x0_prev: x0Prev, low_res: lowRes, aug_level: augLevel });
    } else {
      const both = await model({
        x_t: repeat2(x_t), t, batch: 2 * B, guided: true, x0_prev: x0Prev && repeat2(x0Prev),
        low_res: lowRes && repeat2(lowRes), aug_level: augLevel,
      });
      out = classifierFreeGuidance(both.subarray(0, n), both.subarray(n), w);
    }
    let x0 = dynamicThreshold(predictX0(x_t, out, alphaBar[t], schedule.prediction_type), B, threshold, maxValue);
    if (constrain) x0 = constrain(x0);
    if (scheduler.needsNoise(i) && !randn) throw new Error("the ddpm sampler needs randn(n, b)");
    const noise = scheduler.needsNoise(i) ? drawNoise(randn, B, n / B) : null;
    const x_prev = scheduler.step(x0, i, x_t, noise);
    const noiseLevel = Math.sqrt(Math.max(0, f32(1 - alphaBar[t])));
    yield { stage, index: i, total, timestep: t, x_t, x0_pred: x0, x_prev, noise_level: noiseLevel };
    x_t = x_prev;
    if (selfConditioned) x0Prev = x0;
  }
}

/** The cascade (ImagenPipeline.generate after the text encoder): 64 px from noise, then 256 px.
 * `settings` has the pipeline's names (pipeline.json's "defaults"); `base` and `sr` are the exported
 * schedules; randn(n, b) gives image b's next n normals, drawn in the pipeline's order. */
export async function* cascade({ batch, settings, base, sr = null, baseModel, srModel = null, randn,
                                 selfConditioned = false }) {
  const s = settings, size = base.image_size ?? 64;
  // 1. base stage: 64 px from pure noise
  const x_T = drawNoise(randn, batch, 3 * size * size);
  const guidanceAt = (t) => (t >= (s.guidance_min_t ?? 0) ? s.guidance_scale : 1);
  let x64 = null;
  for await (const step of sampleStage({
    model: baseModel, x_T, shape: [batch, 3, size, size], sampler: s.sampler, steps: s.steps, schedule: base,
    threshold: s.threshold, guidanceAt, randn, selfConditioned, stage: "base",
  })) {
    x64 = step.x_prev;
    yield step;
  }
  if (!s.sr) return;
  if (!sr || !srModel) throw new Error("settings.sr is true but no SR stage was given");
  // 2. SR stage: upsample, corrupt to a known noise level (noise conditioning augmentation), denoise
  const big = sr.image_size ?? 256, n = 3 * big * big;
  const clean = x64.map((v) => Math.min(Math.max(v, -1), 1));
  const up = upsampleBilinear(clean, [batch, 3, size, size], big);
  const lowRes = qSample(up, sr.alpha_bar[s.sr_noise_level], drawNoise(randn, batch, n));
  const srT = drawNoise(randn, batch, n);
  // consistency holds x0 to the clean input, not the noise-augmented one
  const constrain = s.sr_consistency ? (x0) => project(x0, [batch, 3, big, big], clean, size) : null;
  yield* sampleStage({
    model: srModel, x_T: srT, shape: [batch, 3, big, big], sampler: s.sampler, steps: s.sr_steps, schedule: sr,
    threshold: s.threshold, guidanceAt: () => s.sr_guidance_scale, randn, constrain, lowRes,
    augLevel: s.sr_noise_level, stage: "sr",
  });
}
