#!/usr/bin/env bash
# Installs the Debian 12 packages mtl_dist needs to build, test and run.
# Idempotent: packages already present are left as they are.
#   bash launch/install-deps.sh          (as root, or through sudo)
set -euo pipefail
packages=(
  build-essential cmake pkg-config
  libopenmpi-dev openmpi-bin      # the distributed engine
  libopenblas-dev                 # cblas_sgemm
  libxsmm-dev                     # JIT GEMM kernels (src/gemm.c)
  libhdf5-dev hdf5-tools          # datasets and checkpoints
  # HDF5 filter plugins, so files h5py users compress load (data/README.md):
  hdf5-plugin-lzf                 #   LZF (h5py's compression="lzf")
  hdf5-filter-plugin              #   LZ4, BZip2
  hdf5-filter-plugin-blosc-serial #   Blosc
  bitshuffle                      #   Bitshuffle (its plugin is here, not in hdf5-filter-plugin)
  libcmocka-dev                   # unit tests
  libinih-dev                     # INI config files
  libxxhash-dev                   # hashed categorical ids (mtl_prep hash_buckets)
  libcjson-dev                    # JSON output (metrics lines)
  zlib1g-dev                      # gzip CSV input
  python3-h5py python3-numpy      # interop tests: files written and read by h5py
  python3-hdf5plugin              # ... and compressed with its filters
  valgrind                        # memcheck of whole training runs (tests/e2e_valgrind.sh)
  slurm-wlm munge                 # a private Slurm for launch/slurm.sbatch's test (tests/slurm_jobs.sh)
  protobuf-c-compiler libprotobuf-c-dev libonnx-dev  # ONNX export: protoc-c over onnx.proto
  python3-onnx nodejs             # export checks: onnx.checker, ONNX Runtime (tests/e2e_onnx.sh)
  gnuplot-nox                     # launch/plot.sh
)
# npm fetches onnxruntime-node into the build tree (tests/e2e_onnx.sh); a
# nodejs that ships its own npm needs no Debian npm (they would conflict)
command -v npm >/dev/null 2>&1 || packages+=(npm)
missing=()
for p in "${packages[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if [ ${#missing[@]} -eq 0 ]; then
  echo "install-deps: all packages present"
  exit 0
fi
SUDO=""
[ "$(id -u)" -ne 0 ] && SUDO="sudo"
echo "install-deps: installing ${missing[*]}"
$SUDO apt-get update -qq
DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}"
