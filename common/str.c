#include "common/str.h"

#include <string.h>
#include <strings.h>

size_t str_copy_trunc(char *dst, size_t cap, const char *src)
{
    size_t n = strnlen(src, cap - 1);

    memcpy(dst, src, n);
    dst[n] = '\0';
    return n;
}

int str_printable(const char *s, size_t n)
{
    int nonblank = 0;

    for (size_t i = 0; i < n; i++) {
        unsigned char c = (unsigned char)s[i];

        if (c < 0x20 || c > 0x7e) {
            return 0;
        }
        nonblank |= c != ' ';
    }
    return nonblank;
}

int str_parse_bool(const char *s, int *out)
{
    if (!s) {
        return 0;
    }
    if (strcasecmp(s, "true") == 0 || strcmp(s, "1") == 0) {
        *out = 1;
        return 1;
    }
    if (strcasecmp(s, "false") == 0 || strcmp(s, "0") == 0) {
        *out = 0;
        return 1;
    }
    return 0;
}
