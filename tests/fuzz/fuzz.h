/* The bodies of the fuzz targets (bodies.c). Each takes one input of any
 * bytes, returns 0, and abort()s when an invariant fails so that libFuzzer
 * and tests/unit/test_fuzz_regressions.c both see it as a crash. The same
 * functions run under libFuzzer (make fuzz) and in make test, so a saved
 * input replays exactly as it was found. */
#ifndef OB_TESTS_FUZZ_H
#define OB_TESTS_FUZZ_H

#include <stddef.h>
#include <stdint.h>

/* YAML text → ob_config_load_string, and the summary of a loaded config. */
int ob_fuzz_config(const uint8_t *data, size_t size);
/* One stream record as JSON, or a GetRecords response with "Records" →
 * ob_record_decode → the CloudEvents encoder for messages and poison;
 * the same bytes → ob_records_page_decode, held to ob_record_decode. */
int ob_fuzz_record(const uint8_t *data, size_t size);
/* A message built field by field (layout in bodies.c) → the CloudEvents
 * encoder, templates and globs. */
int ob_fuzz_cloudevents(const uint8_t *data, size_t size);
/* "proxy URL NUL NO_PROXY NUL host NUL CONNECT answer" → the proxy
 * variables read and matched, the answer to CONNECT parsed. */
int ob_fuzz_proxy(const uint8_t *data, size_t size);

#endif
