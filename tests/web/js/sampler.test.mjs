// The JavaScript sampler against the Python pipeline, step by step.
//
//   python -m tests.web.js_reference /tmp/ref && IMAGEN_JS_REFERENCE=/tmp/ref/reference.json node --test tests/web/js
//
// (tests/web/test_sampler_js.py does both.) Without IMAGEN_JS_REFERENCE only the self-contained tests run.

import assert from "node:assert/strict";
import { readFileSync } from "node:fs";
import { dirname, join } from "node:path";
import { test } from "node:test";

import * as S from "../../../imagen/web/static/sampler.js";

const REFERENCE = process.env.IMAGEN_JS_REFERENCE;
// float32 in Python, float64 rounded to float32 in JavaScript: what differs is rounding. Measured max
// differences are reported by each case (t.diagnostic); this bound is what a real error would exceed.
const ATOL = 1e-4;

function load(path) {
  const reference = JSON.parse(readFileSync(path, "utf8"));
  const bytes = readFileSync(join(dirname(path), reference.binary));
  const floats = new Float32Array(bytes.buffer, bytes.byteOffset, bytes.byteLength / 4);
  const array = ({ offset, length }) => floats.subarray(offset, offset + length);
  return { reference, array };
}

function maxAbsDiff(a, b) {
  assert.equal(a.length, b.length);
  let m = 0;
  for (let k = 0; k < a.length; k++) {
    const d = Math.abs(a[k] - b[k]);
    if (!(d <= m)) m = d; // NaN propagates as a failure
  }
  return m;
}

/** tests/web/js_reference.py's StandInUNet, written again. */
function standIn(stage, textMean, uncondMean) {
  return async ({ x_t, t, batch, guided, x0_prev, low_res, aug_level }) => {
    const per = x_t.length / batch, plane = per / 3, out = new Float32Array(x_t.length);
    for (let b = 0; b < batch; b++) {
      // a guided call holds the caption-free half first
      const text = guided ? (b < batch / 2 ? uncondMean[b] : textMean[b - batch / 2]) : textMean[b];
      for (let j = 0; j < per; j++) {
        const k = b * per + j, c = Math.floor(j / plane);
        let v = 0.5 * x_t[k] + 0.1 * text + 0.2 * (t / 1000) + 0.05 * (c - 1);
        if (stage === "sr") v += 0.25 * low_res[k] + 0.1 * (aug_level / 1000);
        else if (x0_prev) v += 0.3 * x0_prev[k];
        out[k] = v;
      }
    }
    return out;
  };
}

/** randn(n, b) that hands out image b's recorded draws in order, checking each draw's size. */
function recordedNoise(streams) {
  const used = streams.map(() => 0);
  const randn = (n, b) => {
    assert.ok(used[b] + n <= streams[b].length, `image ${b} drew more noise than the pipeline did`);
    used[b] += n;
    return streams[b].subarray(used[b] - n, used[b]);
  };
  return { randn, allUsed: () => used.every((u, b) => u === streams[b].length) };
}

test("trailing timesteps match diffusers' for every sampler and many step counts", { skip: !REFERENCE }, () => {
  const { reference } = load(REFERENCE);
  assert.ok(reference.timesteps.length > 60);
  for (const row of reference.timesteps) {
    for (const name of S.SAMPLERS) {
      assert.deepEqual(S.makeScheduler(name, new Float64Array(row.num_timesteps).fill(0.5), row.steps).timesteps,
        row[name], `${name}, ${row.steps} of ${row.num_timesteps} steps`);
    }
  }
});

if (REFERENCE) {
  const { reference, array } = load(REFERENCE);
  for (const ref of reference.cases) {
    test(`the cascade matches the Python pipeline step by step: ${ref.name}`, async (t) => {
      const noise = recordedNoise(ref.noise.map(array));
      const steps = [];
      for await (const step of S.cascade({
        batch: ref.batch, settings: ref.settings, base: ref.base, sr: ref.sr, randn: noise.randn,
        baseModel: standIn("base", ref.text_mean, ref.uncond_mean),
        srModel: standIn("sr", ref.text_mean, ref.uncond_mean), selfConditioned: ref.self_conditioned,
      })) steps.push(step);
      assert.equal(steps.length, ref.steps.length);
      assert.ok(noise.allUsed(), "every recorded draw was used");
      const worst = { x0_pred: 0, x_prev: 0 };
      ref.steps.forEach((want, i) => {
        const got = steps[i], where = `${want.stage} step ${want.index}`;
        for (const key of ["stage", "index", "total", "timestep"]) assert.equal(got[key], want[key], `${where}: ${key}`);
        assert.ok(Math.abs(got.noise_level - want.noise_level) < 1e-6, `${where}: noise level`);
        if (want.x_t) assert.equal(maxAbsDiff(got.x_t, array(want.x_t)), 0, `${where}: x_T is the recorded noise`);
        for (const key of ["x0_pred", "x_prev"]) {
          const d = maxAbsDiff(got[key], array(want[key]));
          assert.ok(d <= ATOL, `${where}: ${key} differs by ${d}`);
          worst[key] = Math.max(worst[key], d);
        }
      });
      t.diagnostic(`${ref.name}: max |JS - Python| x0_pred ${worst.x0_pred.toExponential(2)}, `
        + `x_prev ${worst.x_prev.toExponential(2)} over ${steps.length} steps`);
    });
  }
}

// ---------------------------------------------------------------- self-contained checks

test("guidance at w = 1 is the captioned output, and DDPM refuses to run without noise", async () => {
  const u = Float32Array.of(1, 2), c = Float32Array.of(3, 5);
  assert.deepEqual(S.classifierFreeGuidance(u, c, 1), c);
  assert.deepEqual(S.classifierFreeGuidance(u, c, 2), Float32Array.of(5, 8));
  const schedule = { alpha_bar: new Float64Array(10).fill(0.5), alphas_cumprod: new Float64Array(10).fill(0.5),
    prediction_type: "v_prediction" };
  const loop = S.sampleStage({ model: async ({ x_t }) => x_t, x_T: new Float32Array(12), shape: [1, 3, 2, 2],
    sampler: "ddpm", steps: 2, schedule });
  await assert.rejects(loop.next(), /needs randn/);

  const calls = []; // a step at w = 1 skips the caption-free half: half the network's work
  const model = async ({ x_t, batch, guided }) => { calls.push([batch, guided]); return x_t.subarray(0, 12 * batch); };
  for await (const step of S.sampleStage({ model, x_T: new Float32Array(12), shape: [1, 3, 2, 2], sampler: "ddim",
    steps: 2, schedule, guidanceAt: (t) => (t >= 5 ? 3 : 1) })) assert.equal(step.x_prev.length, 12);
  assert.deepEqual(calls, [[2, true], [1, false]]);
});

test("dynamic thresholding clips each image to its own percentile and leaves small images alone", () => {
  const x0 = Float32Array.of(0.5, -0.2, 0.1, 0.3, /* image 2: */ 3, -2, 1, 0.5);
  const out = S.dynamicThreshold(x0, 2, 0.75, 1.5);
  assert.deepEqual(out.subarray(0, 4), x0.subarray(0, 4)); // s = 1: nothing beyond [-1, 1]
  assert.deepEqual(Array.from(out.subarray(4), (v) => +v.toFixed(6)), [1, -1, 0.666667, 0.333333]); // s = 1.5 (capped)
});

test("consistency holds the low band to the 64 px image", () => {
  const shape = [1, 1, 8, 8], y = Float32Array.from({ length: 4 }, (_, k) => k / 4 - 0.3);
  const x0 = Float32Array.from({ length: 64 }, (_, k) => Math.sin(k));
  const projected = S.project(x0, shape, y, 2);
  assert.ok(maxAbsDiff(S.downsample(projected, shape, 4), y) < 0.1);
  assert.ok(maxAbsDiff(S.downsample(x0, shape, 4), y) > 0.3);
});

test("makeRandn gives each image its own stream, whatever the batch", () => {
  const a = S.makeRandn(5), b = S.makeRandn(5);
  a(10, 0);
  assert.deepEqual(a(16, 1), b(16, 1)); // image 1 does not depend on image 0's draws
  const many = S.makeRandn(1)(20000, 0);
  const mean = many.reduce((s, v) => s + v, 0) / many.length;
  const variance = many.reduce((s, v) => s + (v - mean) ** 2, 0) / many.length;
  assert.ok(Math.abs(mean) < 0.03 && Math.abs(variance - 1) < 0.05, `mean ${mean}, variance ${variance}`);
});
