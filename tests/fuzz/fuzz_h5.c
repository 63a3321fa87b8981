/* libFuzzer target: the HDF5 dataset, /meta and checkpoint loaders.
 * The body is fuzz_h5_one in targets.h; tests/fuzz/run.sh builds and runs
 * this with clang -fsanitize=fuzzer,address,undefined. */
#define _POSIX_C_SOURCE 200809L

#include "targets.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    return fuzz_h5_one(data, size);
}
