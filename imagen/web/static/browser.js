// The browser mode's page (browser.html): download the exported models once (kept in the Cache API),
// then run the whole cascade here with onnxruntime-web, drawing each step's x_t and predicted x0.
// The server (imagen/web/browser_mode.py) only serves files; /browser/setup.json says where they are.
//
// window.imagenBrowser is the page's handle for tests and benchmarks: ready (a promise), run(options),
// the last run's timings, and how the runtime runs (threads, cross-origin isolation).

import { SAMPLERS, cascade, makeRandn } from "./sampler.js";
import { noiseLevel, scheduleCurve, scheduleSvg } from "./schedule_plot.js";
import { restyle, styleControl, withStyle } from "./styles.js";
import { WordPieceTokenizer } from "./tokenizer.js";

const $ = (id) => document.getElementById(id);
const CACHE_NAME = "imagen-browser-v1";
const MAX_THREADS = 8;
const MAX_SEED = 2 ** 31 - 1; // as imagen/web/inputs.py's MAX_SEED and the page's seed box
const nextFrame = () => new Promise((resolve) => requestAnimationFrame(() => setTimeout(resolve, 0)));
const mb = (bytes) => `${(bytes / 1e6).toFixed(1)} MB`;
const STAGE_TITLES = { base: "Base stage (64 px)", sr: "Super-resolution stage (256 px)" }; // as imagen/web/status.py

const handle = { ready: null, run: null, timings: null, threads: 1, isolated: false, download: null, problems: [] };
window.imagenBrowser = handle;

function say(text, problem = false) {
  $("status").textContent = text;
  $("status").classList.toggle("problem", problem);
}

/** The page cannot run here: say why, and point to the server's page, which can. */
function unavailable(reasons) {
  handle.problems = reasons;
  const box = $("fallback");
  box.style.display = "block";
  box.innerHTML = "";
  const p = document.createElement("p");
  p.textContent = `The cascade cannot run in this browser now. ${reasons.join(" ")}`;
  const a = document.createElement("a");
  a.href = "/?mode=server";
  a.textContent = "Run it on the server instead";
  box.append(p, a);
  say("Browser mode is unavailable: see above.", true);
}

// ---------------------------------------------------------------- downloads (once, then the Cache API)

/** Fetch `files` ({url, size}) with one progress bar; what the Cache API already holds is not downloaded. */
async function download(files) {
  const cache = "caches" in window ? await caches.open(CACHE_NAME).catch(() => null) : null;
  const total = files.reduce((sum, f) => sum + f.size, 0);
  let done = 0, fetched = 0;
  const progress = () => {
    $("progress").value = total ? done / total : 1;
    say(`Loading the models: ${mb(done)} of ${mb(total)}` + (fetched ? ` (${mb(fetched)} downloaded)` : ""));
  };
  const out = [];
  for (const file of files) {
    const hit = cache && (await cache.match(file.url));
    if (hit) {
      const bytes = new Uint8Array(await hit.arrayBuffer());
      done += bytes.length;
      out.push(bytes);
      progress();
      continue;
    }
    const response = await fetch(file.url);
    if (!response.ok) throw new Error(`${file.url}: HTTP ${response.status}`);
    const reader = response.body.getReader(), parts = [];
    let length = 0;
    for (;;) {
      const { done: end, value } = await reader.read();
      if (end) break;
      parts.push(value);
      length += value.length;
      done += value.length;
      fetched += value.length;
      progress();
    }
    const bytes = new Uint8Array(length);
    let at = 0;
    for (const part of parts) { bytes.set(part, at); at += part.length; }
    // Kept under its URL, which names the export's fingerprint or the runtime's version.
    if (cache) await cache.put(file.url, new Response(bytes)).catch(() => {});
    out.push(bytes);
  }
  if (cache) { // older exports and runtimes are never asked for again
    const keep = new Set(files.map((f) => new URL(f.url, location.href).href));
    for (const request of await cache.keys()) if (!keep.has(request.url)) await cache.delete(request);
  }
  handle.download = { total, fetched, cached: total - fetched };
  return out;
}

// ---------------------------------------------------------------- the models

class Cascade {
  constructor(ort, manifest, sessions, tokenizer, schedules) {
    Object.assign(this, { ort, manifest, sessions, tokenizer, schedules });
    this.maxLength = manifest.text_encoder.max_length;
    this.dim = manifest.text_encoder.dim;
    this.uncond = null;
  }

  async encode(prompts) {
    const { ort, maxLength: L } = this, B = prompts.length;
    const ids = new BigInt64Array(B * L), mask = new BigInt64Array(B * L), textMask = new Uint8Array(B * L);
    prompts.forEach((prompt, b) => {
      const enc = this.tokenizer.encode(prompt, L);
      for (let k = 0; k < L; k++) {
        ids[b * L + k] = BigInt(enc.inputIds[k]);
        mask[b * L + k] = BigInt(enc.attentionMask[k]);
        textMask[b * L + k] = enc.attentionMask[k];
      }
    });
    const out = await this.sessions.text.run({
      input_ids: new ort.Tensor("int64", ids, [B, L]), attention_mask: new ort.Tensor("int64", mask, [B, L]),
    });
    return { embeds: out.text_embeds.data, mask: textMask };
  }

  /** The U-Net of `stage` as sampler.js calls it, fed the caption (and the caption-free half when guided). */
  unet(stage, text, uncond) {
    const { ort, maxLength: L, dim: D } = this;
    const session = this.sessions[stage], names = new Set(session.inputNames);
    const size = this.manifest.stages[stage].image_size;
    const both = { embeds: concat(uncond.embeds, text.embeds), mask: concat(uncond.mask, text.mask) };
    return async ({ x_t, t, batch, guided, x0_prev, low_res, aug_level }) => {
      const { embeds, mask } = guided ? both : text;
      const image = [batch, 3, size, size];
      const feeds = {
        x_t: new ort.Tensor("float32", x_t, image),
        timestep: new ort.Tensor("int64", new BigInt64Array(batch).fill(BigInt(t)), [batch]),
        text_embeds: new ort.Tensor("float32", embeds, [batch, L, D]),
        text_mask: new ort.Tensor("bool", mask, [batch, L]),
      };
      if (x0_prev) feeds.x0_prev = new ort.Tensor("float32", x0_prev, image);
      if (low_res) feeds.low_res = new ort.Tensor("float32", low_res, image);
      if (aug_level !== null && aug_level !== undefined) {
        feeds.aug_level = new ort.Tensor("int64", new BigInt64Array(batch).fill(BigInt(aug_level)), [batch]);
      }
      // The exporter drops inputs a graph never reads (the SR stage's text_mask): feed what it has.
      const out = await session.run(Object.fromEntries(Object.entries(feeds).filter(([k]) => names.has(k))));
      return out.model_out.data;
    };
  }

  /** Run the cascade for one prompt, yielding sampler.js's steps. */
  async* generate(prompt, settings, randn) {
    const text = await this.encode([prompt]);
    this.uncond ??= await this.encode([""]);
    const { base, sr } = this.schedules;
    yield* cascade({
      batch: 1, settings, base, sr, randn, baseModel: this.unet("base", text, this.uncond),
      srModel: settings.sr && this.sessions.sr ? this.unet("sr", text, this.uncond) : null,
      selfConditioned: this.manifest.stages.base.self_conditioned,
    });
  }
}

function concat(a, b) {
  const out = new a.constructor(a.length + b.length);
  out.set(a);
  out.set(b, a.length);
  return out;
}

// ---------------------------------------------------------------- drawing

/** (3, H, W) in [-1, 1] -> RGBA pixels, as imagen.images.to_uint8 rounds them. */
function toImageData(x, size) {
  const data = new ImageData(size, size), n = size * size;
  for (let k = 0; k < n; k++) {
    for (let c = 0; c < 3; c++) data.data[4 * k + c] = Math.round((Math.min(Math.max(x[c * n + k], -1), 1) + 1) * 127.5);
    data.data[4 * k + 3] = 255;
  }
  return data;
}

function paint(canvas, imageData) {
  if (canvas.width !== imageData.width) canvas.width = canvas.height = imageData.width;
  canvas.getContext("2d").putImageData(imageData, 0, 0);
}

// ---------------------------------------------------------------- the page

function settingsFromControls(defaults) {
  return {
    ...defaults,
    guidance_scale: Number($("guidance").value),
    steps: Number($("steps").value),
    sampler: $("sampler").value,
    sr: $("sr").checked && !$("sr").disabled,
    sr_steps: Number($("sr-steps").value),
    sr_consistency: $("consistency").checked,
  };
}

/** The drawing-style radios (as the server's page offers them) and the clickable examples. */
function setUpPrompt(manifest, examples) {
  const styles = manifest.styles ?? [];
  const control = styleControl(styles, manifest.default_style);
  if (styles.length) {
    $("style-label").textContent = control.label;
    for (const choice of control.choices) {
      const label = document.createElement("label"), radio = document.createElement("input");
      Object.assign(radio, { type: "radio", name: "style", value: choice, checked: choice === control.value });
      // Picking a style rewrites the prompt's trailing style at once, so the caption read is on screen.
      radio.addEventListener("change", () => { $("prompt").value = restyle($("prompt").value, choice, styles); });
      label.append(radio, choice.replace(/ style$/, ""));
      $("style").append(label);
    }
    $("style").hidden = false;
  }
  for (const example of examples) {
    const button = document.createElement("button");
    button.textContent = example;
    button.className = "example";
    button.addEventListener("click", () => { $("prompt").value = example; $("prompt").focus(); });
    $("examples").append(button);
  }
  $("examples").hidden = !examples.length;
  /** The prompt box's caption with the picked style added, written back to the box. */
  return () => {
    const picked = document.querySelector("input[name=style]:checked")?.value;
    $("prompt").value = withStyle($("prompt").value, picked, styles);
    return $("prompt").value;
  };
}

function setUpControls(defaults, hasSR) {
  for (const name of SAMPLERS) $("sampler").add(new Option(name, name, false, name === defaults.sampler));
  $("guidance").value = defaults.guidance_scale;
  $("steps").value = defaults.steps;
  $("sr-steps").value = defaults.sr_steps;
  $("consistency").checked = defaults.sr_consistency;
  $("sr").checked = defaults.sr && hasSR;
  $("sr").disabled = !hasSR;
  for (const [id, out] of [["guidance", "guidance-value"], ["steps", "steps-value"], ["sr-steps", "sr-steps-value"]]) {
    const show = () => { $(out).textContent = $(id).value; };
    $(id).addEventListener("input", show);
    show();
  }
}

async function boot() {
  if (typeof WebAssembly !== "object") return unavailable(["This browser has no WebAssembly."]);
  say("Asking the server for the models (the first visit after an update prepares them: a few minutes on two cores)…");
  let setup;
  try {
    setup = await (await fetch("/browser/setup.json")).json();
  } catch (e) {
    return unavailable([`The server did not answer (${e.message}).`]);
  }
  if (!setup.ok) return unavailable(setup.problems);
  const manifest = setup.models.manifest;
  handle.isolated = self.crossOriginIsolated === true;
  // Threads need SharedArrayBuffer, which only a cross-origin isolated page (headers, and https or localhost) has.
  handle.threads = handle.isolated ? Math.max(1, Math.min(navigator.hardwareConcurrency || 1, MAX_THREADS)) : 1;

  let ort;
  try {
    ort = await import(`${setup.runtime.url}ort.wasm.min.mjs`);
  } catch (e) {
    return unavailable([`The WebAssembly runtime did not load (${e.message}).`]);
  }
  const wasmUrl = `${setup.runtime.url}ort-wasm-simd-threaded.wasm`;
  const wasmSize = setup.runtime.files["ort-wasm-simd-threaded.wasm"];
  const models = setup.models.url, files = manifest.files;
  const names = ["text_encoder.onnx", "base_unet.onnx", ...(manifest.stages.sr ? ["sr_unet.onnx"] : []),
                 "tokenizer/tokenizer.json", "schedule_base.json", ...(manifest.stages.sr ? ["schedule_sr.json"] : [])];
  let bytes;
  try {
    bytes = await download([{ url: wasmUrl, size: wasmSize },
                            ...names.map((name) => ({ url: models + name, size: files[name] }))]);
  } catch (e) {
    return unavailable([`A download failed (${e.message}).`]);
  }
  const [wasm, ...rest] = bytes;
  const got = Object.fromEntries(names.map((name, i) => [name, rest[i]]));
  const json = (name) => JSON.parse(new TextDecoder().decode(got[name]));

  say("Starting the runtime…");
  Object.assign(ort.env.wasm, { numThreads: handle.threads, wasmPaths: setup.runtime.url, wasmBinary: wasm });
  const options = { executionProviders: ["wasm"], graphOptimizationLevel: "all" };
  let sessions;
  try {
    sessions = {
      text: await ort.InferenceSession.create(got["text_encoder.onnx"], options),
      base: await ort.InferenceSession.create(got["base_unet.onnx"], options),
      sr: manifest.stages.sr ? await ort.InferenceSession.create(got["sr_unet.onnx"], options) : null,
    };
  } catch (e) {
    return unavailable([`The runtime could not load the models (${e.message ?? e}).`]);
  }
  const model = new Cascade(ort, manifest, sessions, new WordPieceTokenizer(json("tokenizer/tokenizer.json")),
                            { base: json("schedule_base.json"), sr: manifest.stages.sr ? json("schedule_sr.json") : null });
  const defaults = manifest.defaults;
  setUpControls(defaults, Boolean(manifest.stages.sr));
  const captionToRun = setUpPrompt(manifest, setup.examples ?? []);
  const curves = Object.fromEntries(Object.entries(model.schedules).filter(([, v]) => v)
    .map(([stage, v]) => [stage, { alphaBar: v.alpha_bar, curve: scheduleCurve(v.alpha_bar) }]));

  const d = handle.download;
  const where = d.fetched ? `downloaded ${mb(d.fetched)}` + (d.cached ? `, ${mb(d.cached)} from this browser's cache` : "")
    : `all ${mb(d.total)} from this browser's cache`;
  const how = handle.isolated ? `WebAssembly, ${handle.threads} threads`
    : "single-thread WebAssembly: the page is not cross-origin isolated (it needs https or localhost), so it is slower";
  const ready = `Ready: ${where}; running on ${how}.`;
  say(ready);

  let frames = [];
  /** A step's images and the schedule plots: the steps visited so far (all of them when replaying) and this one. */
  const showFrame = (f, visited) => {
    paint($("x-t"), f.x_t);
    paint($("x0"), f.x0);
    $("step").textContent = f.label;
    $("schedules").innerHTML = Object.entries(curves).map(([stage, { curve }]) => scheduleSvg(
      curve, visited.filter((v) => v.stage === stage), f.stage === stage ? f : null, STAGE_TITLES[stage])).join("");
  };
  showFrame({ x_t: new ImageData(64, 64), x0: new ImageData(64, 64), label: "", stage: null }, []);
  $("replay").addEventListener("input", () => frames.length && showFrame(frames[Number($("replay").value)], frames));

  /** One run: options {prompt, seed, settings (overrides), noise: one Float32Array per image, used in order}. */
  handle.run = async (opts = {}) => {
    // The page's own runs add the picked style in the prompt box; a caller's prompt is drawn as sent.
    const prompt = opts.prompt ?? captionToRun();
    if (!prompt.trim()) {
      say("Type a prompt first (or click an example).", true);
      return null;
    }
    $("prompt").value = prompt; // the caption being drawn is the one on screen
    const seed = opts.seed ?? ($("randomize").checked ? Math.floor(Math.random() * 2 ** 31) : Number($("seed").value));
    if (!Number.isInteger(seed) || seed < 0 || seed > MAX_SEED) { // a typed seed the server would refuse too
      say(`The seed must be a whole number from 0 to ${MAX_SEED}, not "${$("seed").value}".`, true);
      return null;
    }
    $("seed").value = seed;
    const settings = { ...settingsFromControls(defaults), ...(opts.settings ?? {}) };
    let randn = makeRandn(seed);
    if (opts.noise) { // a fixture's noise, drawn in the pipeline's order
      const at = opts.noise.map(() => 0);
      randn = (n, b) => { const out = opts.noise[b].subarray(at[b], at[b] + n); at[b] += n; return out; };
    }
    $("generate").disabled = true;
    for (const id of ["final-64", "final-256"]) $(id).getContext("2d").clearRect(0, 0, $(id).width, $(id).height);
    frames = [];
    $("replay").disabled = true;
    const t0 = performance.now(), timings = { steps: [] };
    try {
      let last = null;
      for await (const step of model.generate(prompt, settings, randn)) {
        const size = step.stage === "base" ? 64 : 256;
        if (last && last.stage === "base" && step.stage === "sr") { // the 64 px image is done
          paint($("final-64"), toImageData(last.x_prev, 64));
          await nextFrame();
          timings.image64 = (performance.now() - t0) / 1000;
        }
        const sigma = noiseLevel(curves[step.stage].alphaBar, step.timestep);
        const frame = { x_t: toImageData(step.x_t, size), x0: toImageData(step.x0_pred, size), stage: step.stage,
                        t: step.timestep, sigma, index: step.index,
                        label: `${STAGE_TITLES[step.stage]}: step ${step.index + 1} of ${step.total}, `
                               + `timestep ${step.timestep}, noise level σ = ${sigma.toFixed(2)}` };
        frames.push(frame);
        showFrame(frame, frames);
        await nextFrame(); // let the browser paint this step before computing the next
        timings.steps.push((performance.now() - t0) / 1000);
        last = step;
      }
      const finalCanvas = last.stage === "base" ? "final-64" : "final-256";
      paint($(finalCanvas), toImageData(last.x_prev, last.stage === "base" ? 64 : 256));
      await nextFrame();
      timings[last.stage === "base" ? "image64" : "image256"] = (performance.now() - t0) / 1000;
      handle.timings = timings;
      $("replay").max = frames.length - 1;
      $("replay").value = frames.length - 1;
      $("replay").disabled = false;
      $("timings").textContent = `64 px in ${timings.image64.toFixed(1)} s`
        + (timings.image256 ? `, 256 px in ${timings.image256.toFixed(1)} s` : "") + ` (seed ${seed}).`;
      say(ready);
      return timings;
    } catch (e) {
      say(`The run failed: ${e.message ?? e}`, true);
      throw e;
    } finally {
      $("generate").disabled = false;
    }
  };
  $("generate").addEventListener("click", () => handle.run().catch(() => {}));
  $("prompt").addEventListener("keydown", (e) => { if (e.key === "Enter") $("generate").click(); });
  $("generate").disabled = false;
  return true;
}

handle.ready = boot().catch((e) => unavailable([`${e.message ?? e}`]));
