#!/usr/bin/env bash
# Download the UCI Adult and Census-Income (KDD) files and encode them with
# mtl_prep into HDF5 datasets (train/valid/test.h5 per dataset).
#
#   data/download.sh [RAW_DIR] [OUT_DIR]
#
# RAW_DIR  where the raw files go (default ~/.cache/mtl_dist/uci); raw data
#          never belongs in the repository.
# OUT_DIR  where the encoded datasets go (default RAW_DIR/h5):
#          OUT_DIR/adult             adult.data -> train.h5, adult.test -> test.h5
#          OUT_DIR/census            census-income.data.gz -> train.h5,
#                                    census-income.test.gz -> test.h5
#          OUT_DIR/census_education  the same rows, tasks education + marital
# MTL_PREP names the mtl_prep binary (default: build/mtl_prep, then PATH).
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
raw="${1:-${XDG_CACHE_HOME:-$HOME/.cache}/mtl_dist/uci}"
out="${2:-$raw/h5}"
prep="${MTL_PREP:-$here/build/mtl_prep}"
if [[ ! -x "$prep" ]]; then
  prep="$(command -v mtl_prep || true)"
  [[ -n "$prep" ]] || { echo "download.sh: mtl_prep not found (build it or set MTL_PREP)" >&2; exit 1; }
fi

uci="https://archive.ics.uci.edu/ml/machine-learning-databases"
files=(
  "adult/adult.data"
  "adult/adult.test"
  "adult/adult.names"
  "census-income-mld/census-income.data.gz"
  "census-income-mld/census-income.test.gz"
  "census-income-mld/census-income.names"
)

mkdir -p "$raw"
for f in "${files[@]}"; do
  dest="$raw/$(basename "$f")"
  if [[ -s "$dest" ]]; then
    echo "have $dest"
    continue
  fi
  echo "downloading $uci/$f"
  # to a temporary name first, so an interrupted download is not taken as done
  if command -v curl >/dev/null; then
    curl -fL --retry 3 -o "$dest.part" "$uci/$f"
  else
    wget -O "$dest.part" "$uci/$f"
  fi
  mv "$dest.part" "$dest"
done

"$prep" --config "$here/configs/adult.ini" \
  --train "$raw/adult.data" --test "$raw/adult.test" --output-dir "$out/adult"
"$prep" --config "$here/configs/census.ini" \
  --train "$raw/census-income.data.gz" --test "$raw/census-income.test.gz" \
  --output-dir "$out/census"
"$prep" --config "$here/configs/census_education.ini" \
  --train "$raw/census-income.data.gz" --test "$raw/census-income.test.gz" \
  --output-dir "$out/census_education"
echo "datasets in $out"
