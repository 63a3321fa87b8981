/* libFuzzer target: the trainer's INI file and command line, and mtl_prep's INI config.
 * The body is fuzz_config_one in targets.h; tests/fuzz/run.sh builds and runs
 * this with clang -fsanitize=fuzzer,address,undefined. */
#define _POSIX_C_SOURCE 200809L

#include "targets.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    return fuzz_config_one(data, size);
}
