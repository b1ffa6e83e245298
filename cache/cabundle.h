/* cache/cabundle.h: which CA bundle the upstream client verifies certificates with.
 *
 * The lean build bakes no CA path into libcurl: the right path differs by image (Amazon Linux
 * keeps the bundle at /etc/pki/tls/certs/ca-bundle.crt, Debian at
 * /etc/ssl/certs/ca-certificates.crt).  The first readable file of this list is used:
 *   AWS_CA_BUNDLE, SSL_CERT_FILE (each only when set and not empty),
 *   /etc/pki/tls/certs/ca-bundle.crt, /etc/ssl/certs/ca-certificates.crt, /etc/ssl/cert.pem,
 *   /etc/pki/ca-trust/extracted/pem/tls-ca-bundle.pem.
 * The choice is logged at debug; a set variable naming an unreadable file is logged as a warning
 * and skipped; finding none is logged as an error (HTTPS calls upstream will then fail as
 * UP_UNREACHABLE, plain HTTP endpoints still work).
 *
 * Ownership: the result is a malloc'd copy the caller frees; NULL when none is readable (or on
 * allocation failure).  Thread-safety: reentrant; call it before threads start (it logs).
 */
#ifndef STASH_CACHE_CABUNDLE_H
#define STASH_CACHE_CABUNDLE_H

/* aws_ca_bundle, ssl_cert_file: the variables' values, NULL or "" when unset.  fixed: the
 * fixed paths to try after them, NULL-terminated; NULL: the list above. */
char *ca_bundle_find(const char *aws_ca_bundle, const char *ssl_cert_file,
                     const char *const *fixed);

#endif
