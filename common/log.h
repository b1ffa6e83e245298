/* common/log.h: one log record, one line, one write(2) to stderr.
 *
 * Records look like "[stash] WARN cache: message" so they are easy to grep in CloudWatch next to
 * the function's own lines.  With g_log_format LOG_FORMAT_JSON (Lambda's
 * AWS_LAMBDA_LOG_FORMAT=JSON) each record is instead one JSON object on one line, as Lambda's JSON
 * log format has them:
 *   {"timestamp":"2026-01-02T03:04:05.678Z","level":"WARN","message":"...","logger":"stash",
 *    "module":"cache"}
 * (timestamp ISO 8601 UTC with milliseconds; level one of Lambda's names; the message escaped as
 * JSON requires, bytes that are not UTF-8 replaced by '?', so no message can break the object).
 * The LOG_* macros test the level before evaluating their arguments.
 * Never pass a secret value, a token or an Authorization header to them: log names, not values.
 * A message longer than LOG_LINE_MAX is truncated with "..." (never split over two lines).
 * Thread-safety: log_write is thread-safe; g_log_level and g_log_format are set in main() before
 * threads.
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

enum log_format {
    LOG_FORMAT_TEXT = 0,
    LOG_FORMAT_JSON,
};

#define LOG_LINE_MAX 1024

extern enum log_level g_log_level;
extern enum log_format g_log_format;

void log_write(enum log_level level, const char *module, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
/* Parses debug|info|warn|error|none (case-insensitive); STASH_EINVAL otherwise. */
int log_level_parse(const char *s, enum log_level *out);
const char *log_level_name(enum log_level level);
/* Parses Lambda's level names TRACE|DEBUG|INFO|WARN|ERROR|FATAL (AWS_LAMBDA_LOG_LEVEL;
 * case-insensitive) onto stash's levels: TRACE as DEBUG (stash has nothing finer), FATAL as ERROR
 * (stash's errors are the lines that say it cannot go on).  STASH_EINVAL otherwise (NULL too). */
int log_level_parse_lambda(const char *s, enum log_level *out);
/* Parses Lambda's AWS_LAMBDA_LOG_FORMAT, Text or JSON (case-insensitive); STASH_EINVAL otherwise
 * (NULL too), leaving *out as it was. */
int log_format_parse(const char *s, enum log_format *out);

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
