#!/usr/bin/env bash
# Set up roomscan on a fresh Debian machine: system packages (as root), a virtualenv in .venv, the package.
#   scripts/setup.sh          runtime only
#   scripts/setup.sh --test   also what the tests need (PostgreSQL, Chromium, test libraries)
set -euo pipefail
cd "$(dirname "$0")/.."

want_test=0
[[ "${1:-}" == "--test" ]] && want_test=1

apt_packages=()
optional=0
# Receipt OCR's Tesseract engine (the English model ships in tesseract-ocr-eng): optional for amenity detection.
if ! command -v tesseract >/dev/null 2>&1; then apt_packages+=(tesseract-ocr tesseract-ocr-eng); optional=1; fi
# The fonts generated receipts are drawn with (roomscan/receipts/fonts.py): named exactly, so generated receipts
# and the tests on them do not depend on what else a machine has installed.
for font in fonts-dejavu-core:dejavu/DejaVuSansMono.ttf fonts-dejavu-extra:dejavu/DejaVuSansCondensed.ttf \
            fonts-liberation:liberation/LiberationMono-Regular.ttf fonts-freefont-ttf:freefont/FreeMono.ttf; do
  [[ -e /usr/share/fonts/truetype/${font#*:} ]] || { apt_packages+=("${font%%:*}"); optional=1; }
done
if (( want_test )); then
  optional=0  # the tests need every package
  command -v chromium >/dev/null 2>&1 || apt_packages+=(chromium)
  ls /usr/lib/postgresql/*/bin/initdb >/dev/null 2>&1 || apt_packages+=(postgresql)
fi
if (( ${#apt_packages[@]} )); then
  if [[ $(id -u) -eq 0 ]]; then
    echo "==> apt-get install ${apt_packages[*]}"
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -q >/dev/null
    apt-get install -y -q --no-install-recommends "${apt_packages[@]}" >/dev/null
  elif (( optional )); then
    echo "note: receipt OCR's Tesseract engine or fonts are not installed (sudo apt-get install ${apt_packages[*]})" >&2
  else
    echo "missing system packages: ${apt_packages[*]}; run: sudo apt-get install ${apt_packages[*]}" >&2
    exit 1
  fi
fi

PY=${PYTHON:-python3}
if [[ ! -x .venv/bin/python ]]; then
  echo "==> creating .venv"
  "$PY" -m venv .venv
fi
pip=(.venv/bin/python -m pip -q --disable-pip-version-check)
# torch first and pinned: an unpinned torch pulls a multi-GB CUDA build where a CPU build is all that is needed.
if ! .venv/bin/python -c "import torch" >/dev/null 2>&1; then
  echo "==> installing torch==${ROOMSCAN_TORCH_VERSION:-2.13.0}"
  "${pip[@]}" install "torch==${ROOMSCAN_TORCH_VERSION:-2.13.0}" 2>&1 | grep -v "^WARNING: Location" || true
fi
extras="all"
(( want_test )) && extras="all,test"
echo "==> installing roomscan[$extras]"
"${pip[@]}" install -e ".[$extras]" 2>&1 | grep -v "^WARNING: Location" || true
.venv/bin/python -c "import roomscan, torch, transformers" || { echo "setup failed: roomscan did not import" >&2; exit 1; }
echo "==> ready: .venv/bin/roomscan --help"
