#!/usr/bin/env bash
# Installs the Debian 12 packages mtl_dist needs to build, test and run.
# Idempotent: packages already present are left as they are.
#   bash launch/install-deps.sh          (as root, or through sudo)
set -euo pipefail
packages=(
  build-essential cmake pkg-config
  libopenmpi-dev openmpi-bin      # the distributed engine
  libopenblas-dev                 # cblas_sgemm
  libhdf5-dev hdf5-tools          # datasets and checkpoints
  libcmocka-dev                   # unit tests
  libinih-dev                     # INI config files
  libcjson-dev                    # JSON output (metrics lines)
  zlib1g-dev                      # gzip CSV input
  python3-h5py python3-numpy      # interop tests: files written and read by h5py
  valgrind                        # memcheck of whole training runs (tests/e2e_valgrind.sh)
)
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
