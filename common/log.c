#include "common/log.h"

#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>
#include <unistd.h>

#include "common/err.h"

enum log_level g_log_level = LOG_LEVEL_INFO;

static const char *const s_names[] = {"DEBUG", "INFO", "WARN", "ERROR", "NONE"};

const char *log_level_name(enum log_level level)
{
    if ((unsigned)level > LOG_LEVEL_NONE) {
        return "?";
    }
    return s_names[level];
}

int log_level_parse(const char *s, enum log_level *out)
{
    unsigned i;

    for (i = 0; i <= LOG_LEVEL_NONE; i++) {
        if (strcasecmp(s, s_names[i]) == 0) {
            *out = (enum log_level)i;
            return STASH_OK;
        }
    }
    if (strcasecmp(s, "warning") == 0) {
        *out = LOG_LEVEL_WARN;
        return STASH_OK;
    }
    return STASH_EINVAL;
}

void log_write(enum log_level level, const char *module, const char *fmt, ...)
{
    char line[LOG_LINE_MAX];
    va_list ap;
    int head;
    int n;
    size_t len;

    head = snprintf(line, sizeof(line), "[stash] %s %s: ", log_level_name(level), module);
    if (head < 0 || (size_t)head >= sizeof(line)) {
        return;
    }
    va_start(ap, fmt);
    n = vsnprintf(line + head, sizeof(line) - (size_t)head, fmt, ap);
    va_end(ap);
    if (n < 0) {
        return;
    }
    len = (size_t)head + (size_t)n;
    if (len > sizeof(line) - 2) {
        len = sizeof(line) - 2;
        memset(line + len - 3, '.', 3);
    }
    /* A record never spans lines (CloudWatch would split it into two events), and no other
     * control character (a terminal escape in a hostile name) reaches the log; tabs stay. */
    for (size_t i = (size_t)head; i < len; i++) {
        unsigned char c = (unsigned char)line[i];

        if ((c < 0x20 && c != '\t') || c == 0x7f) {
            line[i] = ' ';
        }
    }
    line[len++] = '\n';
    /* One write(2) so concurrent records never interleave; a lost log line is not worth more. */
    (void)!write(STDERR_FILENO, line, len);
}
