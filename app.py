"""Watch Imagen draw: type a caption, see a 64 px image form from noise step by step, then a
second diffusion model redraw it at 256 px. The layout only; the handlers are in imagen/web/.

    python app.py                                   # http://127.0.0.1:7860: the visitor's browser runs the
                                                    # cascade (/browser) where it can, else the server does
                                                    # http://127.0.0.1:7860/?mode=server: the server's page
    IMAGEN_CHECKPOINT=path/to/ckpt GRADIO_SERVER_PORT=8000 python app.py
"""

import os

import gradio as gr
from starlette.middleware import Middleware

from imagen.samplers import SAMPLERS
from imagen.web.browser_mode import BrowserMode
from imagen.web.handlers import ATTENTION_COST, GUIDANCE_COST, SWEEP_SCALES, ImagenDemo, guidance_info
from imagen.web.inputs import MAX_SEED, CheckedBlocks
from imagen.web.landing import LandingMiddleware
from imagen.web.live_view import CSS as LIVE_CSS
from imagen.web.live_view import live_html
from imagen.web.serving import checkpoint_path, page_status

QUEUE_SIZE = 32  # requests waiting beyond this are refused rather than piling up in memory
MAX_UPLOAD = "1mb"  # the page takes no files: cap what an anonymous client can push to /upload
EXAMPLES = [  # everyday phrasing and colours the data never showed on that object, as well as names
    "a picture of a penguin",
    "blue banana",
    "a green cat face",
    "purple sun",
    "red apple, twemoji style",
    "grinning face",
]
# Laid out for a 1280x720 projector: the controls and the live view share the first screen.
CSS = LIVE_CSS + """
.gradio-container { padding-top: 6px !important; }
#intro p { margin: 0 0 2px 0; font-size: 14px; line-height: 1.35; }
#intro, #intro > * { padding-top: 0 !important; margin-top: 0 !important; }
#intro h1 { margin: 0; font-size: 24px; font-weight: 700; line-height: 1.15; }
#intro a { padding: 0 !important; margin: 0 !important; display: inline !important; }
#title-row { display: flex; align-items: baseline; justify-content: space-between; gap: 16px; flex-wrap: wrap; }
#mode-line { background: #fff7ed; border-left: 4px solid #f97316; padding: 1px 8px; }
#image-64 img, #image-256 img { width: 100%; height: 100%; object-fit: contain; }
#image-64 img { image-rendering: pixelated; }
"""

backend = ImagenDemo(checkpoint_path())
DEFAULTS, LIMITS = backend.defaults, backend.limits

# Only the guidance sweep and the /generate API write images to Gradio's cache (the page's own
# frames are inline): sweep out those older than an hour, hourly.
with CheckedBlocks(title="Imagen, step by step", delete_cache=(3600, 3600)) as demo:
    # One HTML block (the title, the mode it runs in, what it is): Gradio opens Markdown's links in a new
    # tab, and the mode link switches this one; and one block keeps the controls on the first screen.
    gr.HTML(
        '<div id="title-row"><h1>Imagen, step by step</h1><p id="mode-line">Running <b>on the server</b>, one '
        'picture at a time for everyone. A class at once? <a id="to-browser" href="/browser?mode=browser" '
        'target="_self">Run it in your own browser</a></p></div>'
        '<p>A small <a href="https://arxiv.org/abs/2205.11487" target="_blank" rel="noopener">Imagen</a>: a frozen '
        "text encoder reads your caption, a diffusion model turns random noise into a 64 px image that matches it, "
        "and a second one redraws it at 256 px. Watch each step: the noisy image <b>x_t</b>, and the clean image "
        "<b>x̂₀</b> the model predicts from it.</p>",
        elem_id="intro", padding=False)
    with gr.Row(equal_height=False):
        with gr.Column(scale=2, min_width=380):
            prompt = gr.Textbox(label="Prompt", placeholder="red apple, twemoji style", max_lines=2,
                                elem_id="prompt")
            # The emoji model learned each emoji in two styles; the picked one is added to a prompt that names none.
            style_choices, style_value, style_label = backend.style_control()
            style = gr.Radio(style_choices, value=style_value, elem_id="style", label=style_label,
                             visible=bool(backend.styles))
            generate_button = gr.Button("Generate", variant="primary", elem_id="generate")
            guidance_scale = gr.Slider(0, LIMITS.max_guidance, value=DEFAULTS.guidance_scale, step=0.5,
                                       label="Guidance (text) scale", elem_id="guidance",
                                       info=guidance_info(DEFAULTS))
            steps = gr.Slider(1, LIMITS.max_steps, value=DEFAULTS.steps, step=1, precision=0, elem_id="steps",
                              label="Denoising steps (64 px stage)", info="More steps: slower, often cleaner.")
            with gr.Row():
                seed = gr.Slider(0, MAX_SEED, value=0, step=1, precision=0, label="Seed", elem_id="seed",
                                 scale=3, info="Shown after each run: untick Randomize to reproduce it.")
                randomize_seed = gr.Checkbox(value=True, label="Randomize seed", scale=1, min_width=100)
            with gr.Accordion("Advanced", open=False):
                sr_steps = gr.Slider(1, LIMITS.max_sr_steps, value=DEFAULTS.sr_steps, step=1, precision=0,
                                     label="Denoising steps (256 px super-resolution stage)")
                sampler = gr.Dropdown(list(SAMPLERS), value=DEFAULTS.sampler, label="Sampler",
                                      info="dpm++ and ddim are deterministic; ddpm adds fresh noise each step.")
                sr = gr.Checkbox(value=DEFAULTS.sr and backend.has_sr, label="Super-resolution stage (64 → 256 px)",
                                 interactive=backend.has_sr)
                sr_consistency = gr.Checkbox(value=DEFAULTS.sr_consistency, interactive=backend.has_sr,
                                             label="Keep the 64 px image's colours at 256 px (SR consistency)",
                                             elem_id="sr-consistency",
                                             info="Corrects every SR step so each 4×4 block keeps the colour of "
                                                  "its 64 px pixel. Untick it to see the colours drift.")
            with gr.Accordion("Inside the model", open=False, elem_id="instruments"):
                attention = gr.Checkbox(value=False, label="Cross-attention map of each word", elem_id="attention",
                                        info=ATTENTION_COST)
                guidance_parts = gr.Checkbox(value=False, label="Guidance arithmetic: without / with the caption",
                                             elem_id="guidance-parts", info=GUIDANCE_COST)
        with gr.Column(scale=3, min_width=540):
            live = gr.HTML(live_html(None, [], {}), elem_id="live", padding=False)
            # Picking a word only changes which of the frame's maps the page's CSS shows: no round trip.
            word = gr.Radio([], label="Attention on which word?", visible=False, elem_id="words")
            # A function, so each page load says whether weights are installed now, not at start-up.
            status = gr.Markdown(page_status, label="status", elem_id="status")

    replay = gr.Slider(1, 2, value=1, step=1, label="Replay: any step of the last run (no recomputation)",
                       visible=False, elem_id="replay")
    frames = gr.State(None, time_to_live=3600)  # the last run's frames, for the replay slider
    finals = gr.HTML("", elem_id="finals", padding=False)
    gr.Markdown("**Timeline**: x_t over x̂₀ at a few steps of each stage.")
    timeline = gr.HTML("", elem_id="timeline", padding=False)
    gr.Examples(EXAMPLES, inputs=prompt, label="Examples: click one, then Generate")

    with gr.Accordion("Samplers side by side: why does the sampler matter?", open=False):
        gr.Markdown("The same prompt, seed and number of steps with DDPM, DDIM and DPM-Solver++, one column each, "
                    "stepping together (64 px stage only).")
        samplers_button = gr.Button("Run the three samplers", elem_id="samplers")
        samplers_view = gr.HTML("", elem_id="samplers-view", padding=False)

    with gr.Accordion("GAN or diffusion? The same caption drawn both ways", open=False, elem_id="gan-panel",
                      visible=backend.gan_panel.available):
        gr.Markdown("The checkpoint's GAN draws in one forward pass; diffusion removes noise over its steps (64 px "
                    "stage, the same caption and seed). Then walk the GAN's noise from this seed to the next.")
        gan_button = gr.Button("Draw with both", elem_id="gan-compare")
        gan_view = gr.HTML("", elem_id="gan-view", padding=False)
        gan_t = gr.Slider(0, 1, value=0, step=0.05, label="Walk the GAN's noise: seed → seed + 1", elem_id="gan-t")
        gan_walk = gr.HTML("", elem_id="gan-walk", padding=False)

    with gr.Accordion("Guidance sweep: what does the text scale do?", open=False):
        gr.Markdown("The same prompt and seed at guidance scales "
                    f"{', '.join(f'{w:g}' for w in SWEEP_SCALES)} (64 px stage only, for speed).")
        sweep_button = gr.Button("Run the sweep", elem_id="sweep")
        sweep_grid = gr.Image(label="Guidance sweep", format="png", elem_id="sweep-grid", interactive=False)

    # The /generate API answers with images (gradio_client's files); the page never shows these.
    with gr.Group(visible=False):
        api_x_t, api_x0, api_64, api_256 = (gr.Image(format="png") for _ in range(4))
        api_timeline = gr.Gallery()
        api_trigger = gr.Button()

    settings = [prompt, guidance_scale, steps, seed, randomize_seed, sr_steps, sampler, sr, sr_consistency]
    # One queue slot for every generation: a CPU has no room for two at once. Inputs arrive raw
    # (preprocess=False): the handlers check each by name, with its range, and say which is wrong.
    # Each of the page's runs first adds the picked style to the prompt box (no queue: it is instant,
    # and the person sees the caption the model reads); the API endpoints take the prompt as sent.
    add_style = {"fn": backend.add_style, "inputs": [prompt, style], "outputs": prompt, "queue": False,
                 "api_visibility": "private", "show_progress": "hidden", "preprocess": False}
    style.input(backend.restyle, inputs=[prompt, style], outputs=prompt, queue=False, api_visibility="private",
                show_progress="hidden", preprocess=False)
    gr.on([generate_button.click, prompt.submit], **add_style).then(
        backend.generate_live, inputs=settings + [attention, guidance_parts],
        outputs=[live, finals, timeline, status, seed, replay, frames, word], api_name="generate_live",
        api_visibility="undocumented", concurrency_id="pipeline", show_progress="hidden", preprocess=False)
    word.change(None, inputs=word, js="(k) => { document.querySelector('#live').dataset.word = k ?? 'all'; }")
    api_trigger.click(backend.generate, inputs=settings,
                      outputs=[api_x_t, api_x0, api_64, api_256, api_timeline, status, seed],
                      api_name="generate", concurrency_id="pipeline", show_progress="hidden", preprocess=False)
    # Replaying reads the session's frames: no model, so it needs no queue slot.
    replay.input(backend.replay, inputs=[replay, frames], outputs=live, api_visibility="private",
                 concurrency_limit=None, show_progress="hidden", trigger_mode="always_last")
    samplers_button.click(**add_style).then(
        backend.compare_samplers, inputs=[prompt, guidance_scale, steps, seed, randomize_seed],
        outputs=[samplers_view, status, seed], api_name="samplers", concurrency_id="pipeline",
        show_progress="hidden", preprocess=False)
    gan_button.click(**add_style).then(
        backend.gan_panel.compare, inputs=[prompt, guidance_scale, steps, seed, randomize_seed],
        outputs=[gan_view, status, seed], api_name="gan_vs_diffusion", concurrency_id="pipeline",
        show_progress="hidden", preprocess=False)
    gan_t.input(backend.gan_panel.walk, inputs=[prompt, seed, gan_t], outputs=gan_walk, api_name="gan_walk",
                concurrency_id="pipeline", show_progress="hidden", preprocess=False, trigger_mode="always_last")
    sweep_button.click(**add_style).then(backend.sweep, inputs=[prompt, steps, seed, randomize_seed, sampler],
                       outputs=[sweep_grid, status, seed], api_name="sweep", concurrency_id="pipeline",
                       show_progress="minimal", preprocess=False)

demo.queue(default_concurrency_limit=1, max_size=QUEUE_SIZE)

if __name__ == "__main__":
    # /browser: the page whose visitor's browser runs the cascade (docs/browser-cascade.md); / leads
    # there whenever this server can offer it, unless the visitor picked the server (/?mode=server).
    browser_mode = BrowserMode(checkpoint_path(), EXAMPLES)
    if os.environ.get("SPACE_ID"):  # on a Hugging Face Space: export while the Space starts, not on a first visit
        browser_mode.prepare_in_background()
    demo.launch(css=CSS, max_file_size=MAX_UPLOAD,
                app_kwargs={"routes": browser_mode.routes(),
                            "middleware": [Middleware(LandingMiddleware, problems=browser_mode.problems)]})
