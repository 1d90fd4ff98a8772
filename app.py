"""Watch Imagen draw: type a caption, see a 64 px image form from noise step by step, then a
second diffusion model redraw it at 256 px. The layout only; the logic is in imagen/demo.py.

    python app.py                                   # http://127.0.0.1:7860
    IMAGEN_CHECKPOINT=path/to/ckpt GRADIO_SERVER_PORT=8000 python app.py
"""

import gradio as gr

from imagen import demo as logic
from imagen.samplers import SAMPLERS

QUEUE_SIZE = 32  # requests waiting beyond this are refused rather than piling up in memory
MAX_UPLOAD = "1mb"  # the page takes no files: cap what an anonymous client can push to /upload
EXAMPLES = [
    "red apple, twemoji style",
    "grinning face, openmoji style",
    "cat face",
    "blue heart, twemoji style",
    "rocket, openmoji style",
    "sun with face",
]
# The 64 px image is shown as large as the 256 px one: keep its pixels square rather than blurred.
CSS = """
#image-64 img, #image-256 img { width: 100%; height: 100%; object-fit: contain; }
#image-64 img { image-rendering: pixelated; }
"""

backend = logic.ImagenDemo(logic.checkpoint_path())
DEFAULTS, LIMITS = backend.defaults, backend.limits

# Every streamed frame is a file in Gradio's cache: sweep out those older than an hour, hourly.
with gr.Blocks(title="Imagen, step by step", delete_cache=(3600, 3600)) as demo:
    gr.Markdown(
        "# Imagen, step by step\n"
        "A small [Imagen](https://arxiv.org/abs/2205.11487): a frozen text encoder reads your caption, a "
        "diffusion model turns random noise into a 64 px image that matches it, and a second one redraws "
        "that image at 256 px. Watch each step: the noisy image **x_t** on the left, the clean image the "
        "model predicts from it on the right."
    )
    with gr.Row():
        prompt = gr.Textbox(label="Prompt", placeholder="red apple, twemoji style", scale=5, max_lines=2,
                            elem_id="prompt")
        generate_button = gr.Button("Generate", variant="primary", scale=1, elem_id="generate")
    gr.Examples(EXAMPLES, inputs=prompt, label="Examples: click one, then Generate")
    with gr.Row():
        guidance_scale = gr.Slider(0, LIMITS.max_guidance, value=DEFAULTS.guidance_scale, step=0.5,
                                   label="Guidance (text) scale",
                                   info="How strongly to follow the prompt. 1 = no extra push; 0 ignores it.")
        steps = gr.Slider(1, LIMITS.max_steps, value=DEFAULTS.steps, step=1, precision=0,
                          label="Denoising steps (64 px stage)", info="More steps: slower, often cleaner.")
    with gr.Row():
        seed = gr.Slider(0, logic.MAX_SEED, value=0, step=1, precision=0, label="Seed", elem_id="seed",
                         info="The seed used is shown here after each run: untick Randomize to reproduce it.")
        randomize_seed = gr.Checkbox(value=True, label="Randomize seed")
    with gr.Accordion("Advanced", open=False), gr.Row():
        sr_steps = gr.Slider(1, LIMITS.max_sr_steps, value=DEFAULTS.sr_steps, step=1, precision=0,
                             label="Denoising steps (256 px super-resolution stage)")
        sampler = gr.Dropdown(list(SAMPLERS), value=DEFAULTS.sampler, label="Sampler",
                              info="dpm++ and ddim are deterministic; ddpm adds fresh noise each step.")
        sr = gr.Checkbox(value=DEFAULTS.sr and backend.has_sr, label="Super-resolution stage (64 → 256 px)",
                         interactive=backend.has_sr)

    # A function, so each page load says whether weights are installed now, not at start-up.
    status = gr.Markdown(logic.page_status, label="status", elem_id="status")
    with gr.Row(equal_height=True):
        x_t = gr.Image(label="Noisy image x_t (this step)", height=300, elem_id="x-t", interactive=False)
        x0_pred = gr.Image(label="Predicted clean image x̂₀ (this step)", height=300, elem_id="x0",
                           interactive=False)
    with gr.Row(equal_height=True):
        image_64 = gr.Image(label="Final 64 px (base stage)", format="png", height=300, elem_id="image-64",
                            interactive=False)
        image_256 = gr.Image(label="Final 256 px (super-resolution)", format="png", height=300,
                             elem_id="image-256", interactive=False)
    timeline = gr.Gallery(label="Timeline: x_t and predicted x̂₀ at a few steps of each stage", columns=10,
                          height=280, elem_id="timeline", interactive=False)

    with gr.Accordion("Guidance sweep: what does the text scale do?", open=False):
        gr.Markdown("The same prompt and seed at guidance scales "
                    f"{', '.join(f'{w:g}' for w in logic.SWEEP_SCALES)} (64 px stage only, for speed).")
        sweep_button = gr.Button("Run the sweep", elem_id="sweep")
        sweep_grid = gr.Image(label="Guidance sweep", format="png", elem_id="sweep-grid", interactive=False)

    # One queue slot for both events: a CPU has no room for two generations at once. Inputs arrive
    # raw (preprocess=False): the handlers check each by name, with its range, and say which is wrong.
    gr.on([generate_button.click, prompt.submit], backend.generate,
          inputs=[prompt, guidance_scale, steps, seed, randomize_seed, sr_steps, sampler, sr],
          outputs=[x_t, x0_pred, image_64, image_256, timeline, status, seed],
          api_name="generate", concurrency_id="pipeline", show_progress="minimal", preprocess=False)
    sweep_button.click(backend.sweep, inputs=[prompt, steps, seed, randomize_seed, sampler],
                       outputs=[sweep_grid, status, seed], api_name="sweep", concurrency_id="pipeline",
                       show_progress="minimal", preprocess=False)

demo.queue(default_concurrency_limit=1, max_size=QUEUE_SIZE)

if __name__ == "__main__":
    demo.launch(css=CSS, max_file_size=MAX_UPLOAD)
