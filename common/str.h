/* common/str.h: small string helpers shared by the modules.
 *
 * str_copy_trunc() copies a NUL-terminated string into a fixed buffer, cutting it to fit, and
 * always terminates it (cap >= 1).  Use it for free text only (error types, names, states): an
 * identifier that does not fit must be refused instead, since a cut id names something else.
 * str_printable() says whether s[0..n) is non-blank printable ASCII (0x20-0x7e, not all spaces):
 * what CloudWatch accepts as a dimension value and what the metrics keep as a key name.
 * str_parse_bool() reads a flag: "true" or "1" is 1, "false" or "0" is 0 (letters in any case,
 * nothing else around them); anything else, NULL included, is refused (returns 0, *out untouched).
 * It is the one grammar for the environment's TRUE/FALSE variables and the local API's
 * refreshNow / withDecryption arguments.
 * xorshift64() steps a xorshift64 generator (Marsaglia, 13/7/17) and returns the new state:
 * cheap and deterministic, for jitter and sampling, never for anything secret.
 * Thread-safety: pure functions; a generator's state belongs to its caller.
 */
#ifndef STASH_COMMON_STR_H
#define STASH_COMMON_STR_H

#include <stddef.h>
#include <stdint.h>

/* Returns the number of bytes copied (without the NUL). */
size_t str_copy_trunc(char *dst, size_t cap, const char *src);
int str_printable(const char *s, size_t n);
/* Returns 1 and sets *out when s is a flag, else returns 0. */
int str_parse_bool(const char *s, int *out);

static inline uint64_t xorshift64(uint64_t *state)
{
    uint64_t x = *state;

    x ^= x << 13;
    x ^= x >> 7;
    x ^= x << 17;
    *state = x;
    return x;
}

#endif
