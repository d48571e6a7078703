/* libFuzzer entry point for ob_fuzz_proxy (bodies.c); built by make fuzz. */
#include "fuzz.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    return ob_fuzz_proxy(data, size);
}
