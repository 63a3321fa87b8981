/* libFuzzer target: mtl_prep's CSV reader (mtl_prep_run on fuzzed CSV files).
 * The body is fuzz_csv_one in targets.h; tests/fuzz/run.sh builds and runs
 * this with clang -fsanitize=fuzzer,address,undefined. */
#define _POSIX_C_SOURCE 200809L

#include "targets.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    return fuzz_csv_one(data, size);
}
