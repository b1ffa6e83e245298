/* common/log.h: one log record, one line, one write(2) to stderr.
 *
 * Records look like "[stash] WARN cache: message" so they are easy to grep in CloudWatch next to
 * the function's own lines.  The LOG_* macros test the level before evaluating their arguments.
 * Never pass a secret value, a token or an Authorization header to them: log names, not values.
 * A record longer than LOG_LINE_MAX is truncated with "..." (never split over two lines).
 * Thread-safety: log_write is thread-safe; g_log_level is set once in main() before threads.
 */
#ifndef STASH_COMMON_LOG_H
#define STASH_COMMON_LOG_H

enum log_level {
    LOG_LEVEL_DEBUG = 0,
    LOG_LEVEL_INFO,
    LOG_LEVEL_WARN,
    LOG_LEVEL_ERROR,
    LOG_LEVEL_NONE,
};

#define LOG_LINE_MAX 1024

extern enum log_level g_log_level;

void log_write(enum log_level level, const char *module, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
/* Parses debug|info|warn|error|none (case-insensitive); STASH_EINVAL otherwise. */
int log_level_parse(const char *s, enum log_level *out);
const char *log_level_name(enum log_level level);

#define LOG_AT(level, module, ...)                     \
    do {                                               \
        if ((level) >= g_log_level) {                  \
            log_write((level), (module), __VA_ARGS__); \
        }                                              \
    } while (0)

#define LOG_DEBUG(module, ...) LOG_AT(LOG_LEVEL_DEBUG, module, __VA_ARGS__)
#define LOG_INFO(module, ...)  LOG_AT(LOG_LEVEL_INFO, module, __VA_ARGS__)
#define LOG_WARN(module, ...)  LOG_AT(LOG_LEVEL_WARN, module, __VA_ARGS__)
#define LOG_ERROR(module, ...) LOG_AT(LOG_LEVEL_ERROR, module, __VA_ARGS__)

#endif
