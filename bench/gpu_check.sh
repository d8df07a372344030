#!/usr/bin/env bash
# Device check for one GPU, at most 5 minutes (the step limits add up to 300 s): is the GPU fast, and does the input pipeline keep up?
#
#   bench/gpu_check.sh                      # on a machine with a CUDA GPU and the project's venv
#   GPU_CHECK_DEVICE=cpu GPU_CHECK_SMALL=1 bench/gpu_check.sh   # tiny sizes on a CPU: checks the script
#
# 1. models:  ResNet-50 baseline and VIB, 224 px, batch 256, bf16 + channels_last, eager and
#             torch.compile'd, on in-memory tensors: train img/s and the VIB/baseline ratio
# 2. data:    a generated SUN397-like folder of photo-sized JPEGs (bench/data_pipeline.py)
# 3. decode:  GPU JPEG decoding (nvJPEG) + crops, img/s (decides whether GPU decoding is worth wiring in)
# 4. loader:  the training loader at 16 workers on that folder, img/s
# 5. train:   1 epoch of a real `python -m models.train` run on that folder
# Then one summary table. Every step has its own time limit; a step that fails or times out is
# reported as such and the others still run. Logs and JSON stay in $GPU_CHECK_OUT (default: a temp folder).
set -uo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-.venv/bin/python}
DEVICE=${GPU_CHECK_DEVICE:-cuda}
OUT=${GPU_CHECK_OUT:-$(mktemp -d -t gpu-check-XXXXXX)}
mkdir -p "$OUT"
if [ "${GPU_CHECK_SMALL:-0}" = 1 ]; then
  MODEL_ARGS=(--arch resnet18 --size 32 --batch-size 4 --steps 2 --warmup 1 --num-classes 10 --precision fp32
              --budget-s 600)
  IMAGES=24; CLASSES=4; WORKERS=2; DECODE_DEVICE=cpu; SLOW=4  # a script check: time limits x4
  TRAIN_ARGS=(--arch resnet18 --image-size 32 --batch-size 4 --precision fp32)
else
  MODEL_ARGS=(--budget-s 140)
  IMAGES=1200; CLASSES=20; WORKERS=16; TRAIN_ARGS=(--batch-size 256); DECODE_DEVICE=$DEVICE; SLOW=1
fi
: > "$OUT/steps.tsv"; : > "$OUT/results.jsonl"

step() {  # step NAME LIMIT_S COMMAND...: run with a time limit, record status and seconds
  local name=$1 limit=$(($2 * SLOW)); shift 2
  local started=$SECONDS status=ok
  echo "== $name (limit ${limit}s)"
  timeout "$limit" "$@" > "$OUT/$name.log" 2>&1 || status="FAILED (exit $?, see $OUT/$name.log)"
  tail -n 3 "$OUT/$name.log"
  printf '%s\t%s\t%s\n' "$name" "$status" "$((SECONDS - started))" >> "$OUT/steps.tsv"
}

step models 150 "$PY" bench/gpu_check.py models --device "$DEVICE" "${MODEL_ARGS[@]}" --json "$OUT/results.jsonl"
step data 45 "$PY" bench/data_pipeline.py --out "$OUT/sun397-like" --images "$IMAGES" --classes "$CLASSES" --generate-only
step decode 20 "$PY" bench/gpu_check.py decode --device "$DECODE_DEVICE" --data "$OUT/sun397-like" --json "$OUT/results.jsonl"
step loader 30 "$PY" bench/data_pipeline.py --out "$OUT/sun397-like" --loader-only --workers "$WORKERS" \
  --batch-size 128 --epochs 6 --json "$OUT/loader.json"
step train 55 "$PY" -m models.train --data sun397 --data-root "$OUT/sun397-like" --epochs 1 --workers auto \
  --device "$DEVICE" --no-progress --out "$OUT/run" "${TRAIN_ARGS[@]}"

"$PY" - "$OUT" <<'EOF'
import csv, json, sys
from pathlib import Path
out = Path(sys.argv[1])
rows = [json.loads(line) for line in (out / "results.jsonl").read_text().splitlines() if line.strip()]
print("\n| measurement | result | note |\n|---|---|---|")
for r in rows:
    if r["measure"] == "train":
        name = f"{r.get('arch', 'resnet50')} {r['head']} {r['mode']} ({r.get('precision', 'bf16')}, channels_last)"
        if "skipped" in r:
            print(f"| {name} | skipped | {r['skipped']} |")
        else:
            ratio = f"VIB/baseline {r['vib_over_baseline']:.3f}; " if "vib_over_baseline" in r else ""
            print(f"| {name}, batch {r['batch']}, {r['size']} px | {r['img_s']:.0f} img/s | {ratio}warm-up {r['warmup_s']} s |")
    elif r["measure"] == "gpu_decode":
        decoder = "nvJPEG" if r["device"].startswith("cuda") else "libjpeg-turbo"
        print(f"| JPEG decode + crop on {r['device']} ({decoder}) | {r['img_s']:.0f} img/s | {r['images']} photo-sized JPEGs |")
loader_file = out / "loader.json"
if loader_file.is_file():
    data = json.loads(loader_file.read_text())
    loader = data["loader"]
    print(f"| loader, {loader['workers']} workers, photo-sized JPEGs, 224 px | {loader['steady_img_s']:.0f} img/s "
          f"after the first epoch ({loader['img_s']:.0f} with worker start-up) | {data['environment']} |")
metrics = out / "run" / "metrics.csv"
if metrics.is_file():
    row = list(csv.DictReader(open(metrics)))[-1]
    config = json.loads((out / "run" / "config.json").read_text())
    print(f"| models.train, 1 epoch | {float(row['seconds']):.1f} s training, val top-1 {float(row['val_acc']):.3f} "
          f"| {config['environment']['device']}, {config['environment']['precision']}, workers {config['args']['workers']} |")
gpu = max((r["img_s"] for r in rows if r["measure"] == "train" and "img_s" in r), default=None)
if gpu and loader_file.is_file():
    feed = json.loads(loader_file.read_text())["loader"]["steady_img_s"]
    verdict = "the loader keeps up" if feed >= gpu else "the GPU waits on the loader: use models.data.prepare"
    print(f"\nloader / fastest training rate = {feed:.0f} / {gpu:.0f} = {feed / gpu:.2f}: {verdict}")
print("\n| step | status | seconds |\n|---|---|---|")
for name, status, seconds in csv.reader(open(out / "steps.tsv"), delimiter="\t"):
    print(f"| {name} | {status} | {seconds} |")
print(f"\nlogs and JSON: {out}")
EOF
