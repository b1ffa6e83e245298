#include "common/log.h"

#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>
#include <unistd.h>

#include "common/buf.h"
#include "common/clock.h"
#include "common/err.h"

enum log_level g_log_level = LOG_LEVEL_INFO;
enum log_format g_log_format = LOG_FORMAT_TEXT;

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

int log_level_parse_lambda(const char *s, enum log_level *out)
{
    static const struct {
        const char *name;
        enum log_level level;
    } names[] = {
        {"TRACE", LOG_LEVEL_DEBUG}, {"DEBUG", LOG_LEVEL_DEBUG}, {"INFO", LOG_LEVEL_INFO},
        {"WARN", LOG_LEVEL_WARN},   {"ERROR", LOG_LEVEL_ERROR}, {"FATAL", LOG_LEVEL_ERROR},
    };

    for (size_t i = 0; s && i < sizeof(names) / sizeof(names[0]); i++) {
        if (strcasecmp(s, names[i].name) == 0) {
            *out = names[i].level;
            return STASH_OK;
        }
    }
    return STASH_EINVAL;
}

int log_format_parse(const char *s, enum log_format *out)
{
    if (s && strcasecmp(s, "JSON") == 0) {
        *out = LOG_FORMAT_JSON;
        return STASH_OK;
    }
    if (s && strcasecmp(s, "Text") == 0) {
        *out = LOG_FORMAT_TEXT;
        return STASH_OK;
    }
    return STASH_EINVAL;
}

/* Replaces with '?' each byte that does not belong to a well-formed UTF-8 sequence (RFC 3629:
 * no overlong forms, no surrogates, nothing past U+10FFFF), so the JSON text is valid UTF-8
 * whatever a hostile name held.  A message cut by truncation mid-character ends in '?'. */
static void utf8_sanitise(char *s, size_t n)
{
    size_t i = 0;

    while (i < n) {
        unsigned char c = (unsigned char)s[i];
        size_t len;
        unsigned long cp;
        int ok = 1;

        if (c < 0x80) {
            i++;
            continue;
        }
        if (c >= 0xc2 && c <= 0xdf) {
            len = 2;
            cp = c & 0x1fu;
        } else if (c >= 0xe0 && c <= 0xef) {
            len = 3;
            cp = c & 0x0fu;
        } else if (c >= 0xf0 && c <= 0xf4) {
            len = 4;
            cp = c & 0x07u;
        } else {
            s[i++] = '?';
            continue;
        }
        if (len > n - i) {
            ok = 0;
        }
        for (size_t k = 1; ok && k < len; k++) {
            unsigned char cont = (unsigned char)s[i + k];

            if ((cont & 0xc0) != 0x80) {
                ok = 0;
            }
            cp = (cp << 6) | (cont & 0x3fu);
        }
        if (ok && ((len == 3 && (cp < 0x800 || (cp >= 0xd800 && cp <= 0xdfff))) ||
                   (len == 4 && (cp < 0x10000 || cp > 0x10ffff)))) {
            ok = 0;
        }
        if (!ok) {
            s[i++] = '?'; /* the bytes after it are looked at again on their own */
            continue;
        }
        i += len;
    }
}

/* One record as one JSON object on one line, in one write(2). */
static void write_json(enum log_level level, const char *module, const char *msg, size_t len)
{
    struct buf b = BUF_INIT(0);
    char ts[CLOCK_ISO_LEN];
    enum stash_err rc;

    clock_format_iso(clock_real_ms(), ts);
    rc = buf_printf(&b, "{\"timestamp\":\"%s\",\"level\":\"%s\",\"message\":\"", ts,
                    log_level_name(level));
    if (!rc) {
        rc = buf_put_json_escaped(&b, msg, len);
    }
    if (!rc) {
        rc = buf_puts(&b, "\",\"logger\":\"stash\",\"module\":\"");
    }
    if (!rc) {
        rc = buf_put_json_escaped(&b, module, strlen(module));
    }
    if (!rc) {
        rc = buf_puts(&b, "\"}\n");
    }
    if (!rc) {
        (void)!write(STDERR_FILENO, b.data, b.len);
    }
    buf_release(&b);
}

void log_write(enum log_level level, const char *module, const char *fmt, ...)
{
    char line[LOG_LINE_MAX];
    va_list ap;
    int head;
    int n;
    size_t len;

    /* JSON: the message alone goes in the line; the level and module become fields. */
    head = g_log_format == LOG_FORMAT_JSON
               ? 0
               : snprintf(line, sizeof(line), "[stash] %s %s: ", log_level_name(level), module);
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
    if (g_log_format == LOG_FORMAT_JSON) {
        utf8_sanitise(line, len);
        write_json(level, module, line, len);
        return;
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
