#include "cache/cabundle.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "common/log.h"

static const char *const default_paths[] = {
    "/etc/pki/tls/certs/ca-bundle.crt",                  /* Amazon Linux 2 and 2023, RHEL */
    "/etc/ssl/certs/ca-certificates.crt",                /* Debian, Ubuntu, Alpine */
    "/etc/ssl/cert.pem",                                 /* Alpine, macOS, LibreSSL */
    "/etc/pki/ca-trust/extracted/pem/tls-ca-bundle.pem", /* Fedora, RHEL's source */
    NULL,
};

/* Readable as a regular file by this process: fopen rather than access(2), so a directory
 * or a file whose permissions deny us is skipped the way libcurl would later fail on it. */
static int readable(const char *path)
{
    FILE *f = fopen(path, "r");
    if (!f) {
        return 0;
    }
    char byte;
    size_t n = fread(&byte, 1, 1, f);
    int ok = n == 1;
    (void)fclose(f); /* read-only: nothing to lose on close */
    return ok;
}

static char *take(const char *path, const char *why)
{
    LOG_DEBUG("tls", "CA bundle: %s (%s)", path, why);
    return strdup(path);
}

char *ca_bundle_find(const char *aws_ca_bundle, const char *ssl_cert_file, const char *const *fixed)
{
    const struct {
        const char *name;
        const char *value;
    } vars[] = {{"AWS_CA_BUNDLE", aws_ca_bundle}, {"SSL_CERT_FILE", ssl_cert_file}};
    for (size_t i = 0; i < sizeof vars / sizeof vars[0]; i++) {
        if (!vars[i].value || !vars[i].value[0]) {
            continue;
        }
        if (readable(vars[i].value)) {
            return take(vars[i].value, vars[i].name);
        }
        LOG_WARN("tls", "%s names %s, which is not a readable file; ignoring it", vars[i].name,
                 vars[i].value);
    }
    for (const char *const *p = fixed ? fixed : default_paths; *p; p++) {
        if (readable(*p)) {
            return take(*p, "first readable default");
        }
    }
    LOG_WARN("tls", "no CA bundle found (set AWS_CA_BUNDLE); HTTPS calls upstream will fail");
    return NULL;
}
