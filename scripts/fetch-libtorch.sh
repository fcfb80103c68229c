#!/usr/bin/env bash
# libtorch 2.13.0 for tch 0.26, from the PyPI torch wheel (the usual libtorch download host is not
# reachable here). Downloads the wheels once into a cache outside the clone and unpacks only what a
# build needs. Prints the libtorch directory.
#   usage: scripts/fetch-libtorch.sh [cpu|cuda] [CACHE_DIR]
# cpu:  libtorch_cpu + libc10 + libgomp, plus the two small CUDA runtime libraries that
#       libtorch_cpu.so links to (it never uses them without a GPU). ~540 MB download, ~490 MB on disk.
# cuda: also libtorch_cuda and the NVIDIA wheels it needs (~2.5 GB download).
set -euo pipefail
VARIANT=${1:-cpu}
CACHE=${2:-${COINCAST_CACHE:-$HOME/.cache/coincast}}
TORCH_VER=2.13.0
DEST=$CACHE/libtorch-$TORCH_VER-$VARIANT
WHEELS=$CACHE/wheels
if [ -f "$DEST/build-version" ]; then echo "$DEST"; exit 0; fi
mkdir -p "$WHEELS"
pipdl() { python3 -m pip download --no-deps --disable-pip-version-check -q -d "$WHEELS" "$@"; }
TORCH_WHEEL=$(ls "$WHEELS"/torch-$TORCH_VER-cp311-*manylinux_2_28_x86_64.whl 2>/dev/null | head -n1 || true)
if [ -z "$TORCH_WHEEL" ]; then
  # Any cpXY wheel carries the same libraries; cp311 is pinned so the cache is reused.
  pipdl --only-binary=:all: --platform manylinux_2_28_x86_64 --python-version 3.11 \
        --implementation cp --abi cp311 "torch==$TORCH_VER"
  TORCH_WHEEL=$(ls "$WHEELS"/torch-$TORCH_VER-cp311-*manylinux_2_28_x86_64.whl)
fi
ls "$WHEELS"/nvidia_cuda_runtime-13*.whl >/dev/null 2>&1 || pipdl 'nvidia-cuda-runtime==13.0.96.*'
ls "$WHEELS"/nvidia_cuda_cupti-13*.whl >/dev/null 2>&1 || pipdl 'nvidia-cuda-cupti==13.0.85.*'
if [ "$VARIANT" = cuda ]; then
  pipdl 'nvidia-cublas==13.1.1.3.*' 'nvidia-cudnn-cu13==9.20.0.48' 'nvidia-nccl-cu13==2.29.7' \
        'nvidia-cusparselt-cu13==0.8.1' 'nvidia-nvshmem-cu13==3.4.5' 'nvidia-cusparse==12.6.3.3.*' \
        'nvidia-cufft==12.0.0.61.*' 'nvidia-cufile==1.15.1.6.*' 'nvidia-curand==10.4.0.35.*' \
        'nvidia-cuda-nvrtc==13.0.88.*' 'nvidia-cusolver==12.0.4.66.*' 'nvidia-nvjitlink==13.0.88.*'
fi
TMP=$(mktemp -d "$CACHE/.libtorch.XXXXXX"); trap 'rm -rf "$TMP"' EXIT
mkdir -p "$TMP/out/lib"
LIBS=('torch/lib/libtorch_cpu.so' 'torch/lib/libc10.so' 'torch/lib/libgomp.so.1')
[ "$VARIANT" = cuda ] && LIBS+=('torch/lib/libtorch.so' 'torch/lib/libtorch_cuda.so' 'torch/lib/libc10_cuda.so'
                               'torch/lib/libtorch_nvshmem.so' 'torch/lib/libtorch_cuda_linalg.so')
python3 - "$TORCH_WHEEL" "$TMP/x" "${LIBS[@]}" <<'PY'
import sys, zipfile
wheel, dest, libs = sys.argv[1], sys.argv[2], set(sys.argv[3:])
with zipfile.ZipFile(wheel) as z:
    z.extractall(dest, [n for n in z.namelist() if n in libs or n.startswith(("torch/include/", "torch/share/"))])
PY
mv "$TMP"/x/torch/include "$TMP"/x/torch/share "$TMP/out/"; mv "$TMP"/x/torch/lib/* "$TMP/out/lib/"
python3 - "$TMP/out/lib" "$VARIANT" "$WHEELS" <<'PY'
import glob, os, sys, zipfile
dest, variant, wheels = sys.argv[1], sys.argv[2], sys.argv[3]
wanted = None if variant == "cuda" else {"libcudart.so.13", "libcupti.so.13"}
pattern = "nvidia_*.whl" if variant == "cuda" else "nvidia_cuda_*-13*.whl"
for w in glob.glob(os.path.join(wheels, pattern)):
    with zipfile.ZipFile(w) as z:
        for n in z.namelist():
            base = os.path.basename(n)
            if "/lib/" in n and ".so" in base and (wanted is None or base in wanted):
                with open(os.path.join(dest, base), "wb") as f:
                    f.write(z.read(n))
PY
cd "$TMP/out/lib"
[ "$VARIANT" = cpu ] && ln -sf libtorch_cpu.so libtorch.so   # torch-sys links -ltorch; without libtorch_cuda
ln -sf libgomp.so.1 libgomp.so                                 # -lgomp: torch's own OpenMP
echo "$TORCH_VER" > ../build-version                           # torch-sys' version check runs and passes
rm -rf "$DEST" && mv "$TMP/out" "$DEST"
echo "$DEST"
