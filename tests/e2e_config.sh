#!/usr/bin/env bash
# One config per dataset serves both tools (README "Training"):
#  - mtl_prep reads configs/census.ini and configs/adult.ini (its [columns]
#    and [task.NAME]) and skips their [train] sections;
#  - mtl_dist reads the same files' [train] and [train.esmm]: the command
#    `mtl_dist --config configs/census.ini --model esmm --train TRAIN.h5
#    --epochs 1` works as it stands (ESMM's tasks come from the file), on
#    census and on Adult;
#  - the example that `mtl_dist --help` prints runs as printed (mpirun and
#    mtl_dist taken from the build, 2 epochs), in a directory laid out as it
#    says.
# Needs the raw UCI files in MTL_DATA_DIR (skips what is missing).
# Environment (set by ctest, see tests/CMakeLists.txt): MTL_BIN, MTL_SRC,
# MTL_DATA_DIR, MPIEXEC, MPIEXEC_NUMPROC_FLAG, PYTHON3, TMPDIR.
set -euo pipefail

source "$(dirname "$0")/common.sh"
MTL_DATA_DIR=${MTL_DATA_DIR:-}
WORK=$(mktemp -d "${TMPDIR:-/tmp}/e2e_config.XXXXXX")
trap 'rm -rf "$WORK"' EXIT

# check NAME CMD...: CMD succeeds (stdout+stderr in $WORK/NAME.log)
check() {
    local name=$1
    shift
    if timeout 300 "$@" >"$WORK/$name.log" 2>&1; then
        return 0
    fi
    fail "$name: exit $? from: $*"
    sed 's/^/    /' "$WORK/$name.log" | tail -15
    return 1
}

CENSUS=$MTL_DATA_DIR/census-income.test.gz
if [ -z "$MTL_DATA_DIR" ] || [ ! -f "$CENSUS" ]; then
    echo "SKIP: census: census-income.test.gz not found in MTL_DATA_DIR='$MTL_DATA_DIR'"
else
    echo "== census: configs/census.ini for mtl_prep, then for mtl_dist --model esmm =="
    # the layout the --help example names: configs/ and out/census/ in one directory
    ln -s "$MTL_SRC/configs" "$WORK/configs"
    if check census_prep "$PREP" --config "$WORK/configs/census.ini" --input "$CENSUS" \
        --output-dir "$WORK/out/census" --split 0.6,0.2,0.2; then
        pass "mtl_prep reads configs/census.ini (its [train] sections skipped)"
        if check census_esmm "$DIST" --config "$MTL_SRC/configs/census.ini" --model esmm \
            --train "$WORK/out/census/train.h5" --epochs 1; then
            if grep -q "model esmm" "$WORK/census_esmm.log" && grep -q "^done:" "$WORK/census_esmm.log"; then
                pass "mtl_dist --config configs/census.ini --model esmm --train ... --epochs 1:"
                sed 's/^/    /' "$WORK/census_esmm.log"
            else
                fail "census esmm: no 'model esmm' header or 'done:' line"
                sed 's/^/    /' "$WORK/census_esmm.log"
            fi
        fi

        echo
        echo "== the example of mtl_dist --help, as printed =="
        # the lines after "Example", joined where they end in a backslash
        example=$("$DIST" --help | sed -n '/^Example/,$p' | sed -n '/^  /p' | sed 's/\\$//' | tr -d '\n')
        echo "example:$example"
        read -r -a words <<<"$example"
        if [ "${words[0]:-}" != mpirun ] || [ "${words[3]:-}" != mtl_dist ]; then
            fail "the --help example is not 'mpirun -n N mtl_dist ...': $example"
        else
            # mpirun and mtl_dist from this build; more ranks than cores
            # allowed; 2 epochs at most (a later option wins), to keep it quick
            cmd=("$MPIEXEC" "${words[1]}" "${words[2]}" "${OVERSUB[@]}" "$DIST" "${words[@]:4}"
                --epochs 2)
            if (cd "$WORK" && check help_example "${cmd[@]}"); then
                if grep -q "model ple" "$WORK/help_example.log" && grep -q "^done:" "$WORK/help_example.log"; then
                    pass "the --help example runs: $(grep -m1 '^mtl_dist' "$WORK/help_example.log")"
                    grep -e '^epoch' -e '^early' -e '^done' "$WORK/help_example.log" | sed 's/^/    /'
                else
                    fail "the --help example ran but did not train ple to the end"
                    sed 's/^/    /' "$WORK/help_example.log" | tail -5
                fi
            else
                failures=$((failures + 1))
            fi
        fi
    fi
fi

echo
ADULT=$MTL_DATA_DIR/adult.data
if [ -z "$MTL_DATA_DIR" ] || [ ! -f "$ADULT" ] || [ ! -f "$MTL_DATA_DIR/adult.test" ]; then
    echo "SKIP: adult: adult.data / adult.test not found in MTL_DATA_DIR='$MTL_DATA_DIR'"
else
    echo "== adult: configs/adult.ini for mtl_prep, then for mtl_dist --model esmm on 2 ranks =="
    if check adult_prep "$PREP" --config "$MTL_SRC/configs/adult.ini" --train "$ADULT" \
        --test "$MTL_DATA_DIR/adult.test" --output-dir "$WORK/out/adult"; then
        pass "mtl_prep reads configs/adult.ini"
        if check adult_esmm "$MPIEXEC" "$NPFLAG" 2 "${OVERSUB[@]}" "$DIST" \
            --config "$MTL_SRC/configs/adult.ini" --model esmm --train "$WORK/out/adult/train.h5" \
            --test "$WORK/out/adult/test.h5" --epochs 1; then
            if grep -q "model esmm" "$WORK/adult_esmm.log" && grep -q "^test" "$WORK/adult_esmm.log"; then
                pass "adult, esmm from configs/adult.ini: $(grep -m1 '^test' "$WORK/adult_esmm.log")"
            else
                fail "adult esmm: no 'model esmm' header or test line"
                sed 's/^/    /' "$WORK/adult_esmm.log"
            fi
        fi
    fi
fi

echo
if [ "$failures" -ne 0 ]; then
    echo "e2e_config: $failures check(s) FAILED"
    exit 1
fi
echo "e2e_config: all checks passed"
