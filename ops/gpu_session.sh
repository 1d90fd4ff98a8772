#!/usr/bin/env bash
# One lent-GPU session, run from the repository root after `python -m ops.gpu_pack`: three
# warm starts from the shipped weights trained side by side on one GPU until TOTAL seconds from
# now are nearly up, then their EMA weights in fp16 to $OUT (one .safetensors per run, at most
# 16 MB each, the rest in meta.tar.gz: 4 files, as the lent machine's transfer limits allow).
#   bash .gpu-pack/session.sh TOTAL          # SMOKE=1: batches of 2, for a check on a CPU
#   RUNS=base BASE_LR=2e-4 bash .gpu-pack/session.sh TOTAL   # one run alone, another peak rate
#   RUNS="base gan" ...   # also the GAN beside diffusion, from scratch (gan.safetensors + its config in meta)
#   INIT_FROM=/tmp/gpu-session/exp/plain GPU_SESSION_TMP=/tmp/gpu-session2 RUNS=base bash ...
#       # a second call on a still-warm machine goes on from the first call's export
# Back home, each file goes in place of a copy of checkpoints/emoji's base/ or sr/ weights; the
# configs are in meta.tar.gz under gpu-meta/exports/.
set -uo pipefail
total=${1:-540}
t0=$(date +%s); deadline=$((t0 + total))
out=${OUT:-/tmp/gpu-out}; mkdir -p "$out"
work=${GPU_SESSION_TMP:-/tmp/gpu-session}; rm -rf "$work"
meta=$work/gpu-meta; exp=$work/exp; mkdir -p "$meta"
. "$(dirname "$0")/env.sh" || exit 1
export IMAGEN_CACHE=${IMAGEN_CACHE:-/tmp/imagen-cache}
nvidia-smi --query-gpu=name,memory.total --format=csv 2>/dev/null
python3 -c "import torch, transformers, diffusers, accelerate; print('torch', torch.__version__, 'cuda', torch.cuda.is_available(), 'transformers', transformers.__version__, 'diffusers', diffusers.__version__, 'accelerate', accelerate.__version__)"

# The images and the caption embeddings once, before the three runs read them.
python3 -c "
from imagen.data import load_dataset, default_cache_dir
from imagen.data.text_cache import cached_text_embeddings
from imagen.text_encoder import TextEncoder
ds = load_dataset('emoji', default_cache_dir()); cached_text_embeddings(ds, TextEncoder())
print(len(ds), 'images ready')" || exit 1
root=$(python3 -c "import imagen, pathlib; print(pathlib.Path(imagen.__file__).resolve().parents[1])")
echo "data ready after $(( $(date +%s) - t0 )) s"

if [ "${SMOKE:-0}" = 1 ]; then
  big=(--preset cpu --batch-size 2 --threads 1); srbig=(--batch-size 2 --threads 1)
else
  big=(--batch-size 256 --threads 4); srbig=(--batch-size 256 --threads 6)
fi
left=$((deadline - $(date +%s) - ${RESERVE:-50}))   # kept for the exports and the packing
common=(--steps 1000000 --time-budget-s "$left" --warmup-steps 100 --ema-decay 0.999 --save-every 500
        --sample-every 1000000 --log-every 25 --init-from "${INIT_FROM:-$root/checkpoints/emoji}")
mkdir -p "$work/runs"
launch() {  # NAME FLAGS...: a run that gets SIGTERM (and saves) if it overruns
  local name=$1; shift
  timeout --signal=TERM --kill-after=30 $((left + 25)) python3 -m imagen.train --run "$work/runs/gpu-$name" \
    "$@" > "$meta/$name.log" 2>&1 &
  pids+=($!)
}
pids=()
runs=${RUNS:-base base-pd sr}
want() { [[ " $runs " == *" $1 "* ]]; }
lr=${BASE_LR:-3e-4}
base_run() {  # NAME FLAGS...: the caption-variety base recipe, with FLAGS added, if RUNS asks for NAME
  want "$1" || return 0  # not asked for: not a failure
  launch "$1" --config "$root"/configs/emoji-base-variety.json "${common[@]}" "${big[@]}" --lr "$lr" "${@:2}"
}
base_run base
# base-core: fine-tune 17's 24 training phrasings instead of 75 (which kept less shape under a new colour
# on the CPU: docs/history/emoji-training-log.md, fine-tune 19)
base_run base-core --phrasings core
# base-pd: pooled-text dropout 0.5 (the shipped base reads its caption almost only through the pooled path,
# which is what loses an unseen phrasing; 900 CPU steps of it made cross-attention alone read held-out
# phrasings as well as names, at a low level: docs/history/emoji-training-log.md, fine-tune 21)
base_run base-pd --pooled-text-dropout 0.5
base_run base-sc --self-condition
want sr && launch sr --config "$root"/configs/emoji-sr.json "${common[@]}" "${srbig[@]}" --lr 2e-4
# The GAN starts from random weights (no --init-from); SMOKE runs it at its tiny preset.
if [ "${SMOKE:-0}" = 1 ]; then ganbig=(--preset tiny --batch-size 2 --threads 1); else ganbig=(--batch-size 128 --threads 4); fi
want gan && launch gan --stage gan --data emoji --caption-variety --steps 1000000 --time-budget-s "$left" \
  --warmup-steps 100 --lr "${GAN_LR:-2e-4}" --ema-decay 0.999 --save-every 500 --sample-every 1000000 --log-every 25 \
  "${ganbig[@]}"
sleep 45; nvidia-smi --query-gpu=utilization.gpu,memory.used --format=csv 2>/dev/null
wait "${pids[@]}"
echo "training done after $(( $(date +%s) - t0 )) s"
for name in $runs; do
  tr '\r' '\n' < "$meta/$name.log" | grep -a "time-budget\|rror\|stopped\|resumed\|init-from" | cut -c1-300 | tail -n 6
  tail -n 2 "$work/runs/gpu-$name/log.jsonl" 2>/dev/null
  mkdir -p "$meta/$name"; cp -r $work/runs/gpu-$name/{config.json,unet_config.json,log.jsonl,samples} "$meta/$name/" 2>/dev/null
done
# Each run's EMA weights: base + SR as one pipeline (an SR run alone beside the shipped base), base-core, base-pd and base-sc alone.
ran() { [ -f "$work/runs/gpu-$1/config.json" ]; }
plain=(); back=()
if ran base; then plain+=(--run "$work/runs/gpu-base"); back+=(plain/base); fi
if ran sr; then
  plain+=(--run "$work/runs/gpu-sr"); back+=(plain/sr)
  ran base || plain+=(--base-from "$root/checkpoints/emoji")
fi
[ ${#plain[@]} = 0 ] || python3 -m imagen.export "${plain[@]}" --out "$exp/plain"
for alone in core pd sc; do  # base-core, base-pd, base-sc: each exported alone, brought back as <alone>-base
  if ran "base-$alone"; then python3 -m imagen.export --run "$work/runs/gpu-base-$alone" --out "$exp/$alone"; back+=("$alone/base"); fi
done
if ran gan; then  # the GAN joins a checkpoint with the same text encoder: a copy of the shipped one's config
  mkdir -p "$exp/gan-ck" && cp "$root/checkpoints/emoji/pipeline.json" "$exp/gan-ck/"
  python3 -m imagen.export --run "$work/runs/gpu-gan" --out "$exp/gan-ck" && cp "$exp/gan-ck/gan/model.safetensors" "$out/gan.safetensors"
  mkdir -p "$meta/gan" && cp "$exp/gan-ck/gan/config.json" "$meta/gan/gan_config.json"
fi
for stage in "${back[@]}"; do  # plain/base -> $OUT/plain-base.safetensors
  # A copy, so that a next call on this machine can start from $exp/plain with INIT_FROM.
  [ -f "$exp/$stage/diffusion_pytorch_model.safetensors" ] && cp "$exp/$stage/diffusion_pytorch_model.safetensors" "$out/${stage/\//-}.safetensors"
done
mkdir -p "$meta/exports"; (cd "$exp" && find . -name "*.json" -exec cp --parents {} "$meta/exports/" \;)
tar -czf "$out/meta.tar.gz" -C "$work" gpu-meta
ls -la "$out"; echo "all done after $(( $(date +%s) - t0 )) s"
