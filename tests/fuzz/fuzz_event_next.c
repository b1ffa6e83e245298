/* libFuzzer harness: one event/next body through lifecycle_parse_event(), as the Lambda-mode loop
 * reads it.
 *
 * Properties (abort() when broken, on top of ASan/UBSan):
 * - the result is one of the documented codes, and on STASH_OK the type is a known one;
 * - an INVOKE accepted has a non-empty, NUL-terminated request id shorter than its buffer;
 * - the shutdown reason is NUL-terminated and lower case; a deadline is never negative;
 * - parsing is a pure function: the same bytes give the same event.
 * Seeds: tests/fuzz/corpus/event_next (the samples of tests/data/extensions-api-samples).
 * Run: make fuzz && build/fuzz/fuzz/fuzz_event_next tests/fuzz/corpus/event_next -max_total_time=60
 */
#include <ctype.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "common/mem.h"
#include "extension/lifecycle.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static int ready;
    struct lifecycle_event a;
    struct lifecycle_event b;
    enum stash_err rc;
    size_t n;

    if (!ready) {
        mem_init();
        ready = 1;
    }
    rc = lifecycle_parse_event((const char *)data, size, &a);
    if (rc != STASH_OK && rc != STASH_EPARSE && rc != STASH_EINVAL) {
        abort();
    }
    if (rc == STASH_OK) {
        if (a.type != LIFECYCLE_EVENT_INVOKE && a.type != LIFECYCLE_EVENT_SHUTDOWN &&
            a.type != LIFECYCLE_EVENT_UNKNOWN) {
            abort();
        }
        n = strnlen(a.request_id, sizeof(a.request_id));
        if (n == sizeof(a.request_id) || (a.type == LIFECYCLE_EVENT_INVOKE && n == 0)) {
            abort();
        }
    }
    n = strnlen(a.shutdown_reason, sizeof(a.shutdown_reason));
    if (n == sizeof(a.shutdown_reason) || a.deadline_ms < 0) {
        abort();
    }
    for (size_t i = 0; i < n; i++) {
        if (isupper((unsigned char)a.shutdown_reason[i])) {
            abort();
        }
    }
    if (lifecycle_parse_event((const char *)data, size, &b) != rc ||
        memcmp(&a, &b, sizeof(a)) != 0) {
        abort();
    }
    return 0;
}
