/* The process's AWS credentials, shared by every client that signs: one
 * provider per process, created once at startup, refreshed in the
 * background before temporary credentials expire.
 *
 * Signers take a snapshot (ob_cred_acquire) for each request and give it
 * back (ob_cred_release): a snapshot never changes, so a request signed
 * while a refresh installs new credentials is signed with one consistent
 * set. Taking one costs a mutex and a counter, no allocation.
 *
 * The refresher (a thread, when asked for at creation) re-resolves at
 * ob_cred_refresh_at, never holding the lock while it does, so no signer
 * waits on the network. A failed refresh keeps the credentials it has and
 * tries again at ob_cred_retry_at; a service that answers "expired"
 * (ob_cred_report_expired) wakes it at once.
 *
 * Ownership: the caller of ob_cred_provider_create* owns the provider
 * (ob_cred_provider_destroy, after every client using it is destroyed and
 * every snapshot released). A snapshot is owned by whoever acquired it;
 * its credentials are borrowed until ob_cred_release. Logs and errors
 * name the source, never a key, a secret or a token. */
#ifndef OB_AWS_CREDENTIALS_PROVIDER_H
#define OB_AWS_CREDENTIALS_PROVIDER_H

#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>

#include "aws/credentials.h"
#include "core/config.h"
#include "outboxd/error.h"

struct ob_cred_snapshot {
    struct ob_aws_credentials creds;
    /* Unique in the process for every set of credentials installed: what
     * a signing-key cache is keyed on (the same access key id may come
     * back with another secret). */
    uint64_t generation;
    atomic_int refs;
};

/* Where a provider gets credentials, and gets them again: resolve fills
 * *out (the provider then owns it) or err. It may block for seconds (a
 * minute for a credential_process), and ob_cred_provider_destroy does not
 * wait that long: ctx must outlive a resolve under way at destroy. With
 * free, the provider owns ctx and frees it when the last resolve is done;
 * without, ctx is borrowed and its owner keeps it for the process's life
 * (or knows no resolve can be under way). */
struct ob_cred_source {
    enum ob_err (*resolve)(void *ctx, struct ob_aws_credentials *out, struct ob_error *err);
    void *ctx;
    void (*free)(void *ctx); /* NULL: ctx is borrowed */
};

struct ob_cred_provider;

/* Resolves the chain of opt (ob_credentials_resolve; copied: opt may go
 * away) now, blocking; its error is the caller's startup error. With
 * `refresh`, a thread keeps the credentials fresh (the daemon); without
 * (a short command), they are used as resolved. */
enum ob_err ob_cred_provider_create(const struct ob_credentials_options *opt, bool refresh,
                                    struct ob_cred_provider **out, struct ob_error *err);
/* The same from any source (tests give their own); a ctx with free is
 * the provider's from the call on, freed here on failure. */
enum ob_err ob_cred_provider_create_from(const struct ob_cred_source *source, bool refresh,
                                         struct ob_cred_provider **out, struct ob_error *err);
/* Fixed credentials (copied), never refreshed: tests and tools. */
struct ob_cred_provider *ob_cred_provider_static(const struct ob_aws_credentials *creds);
/* Stops the refresher and frees the provider. A resolve under way is
 * waited for a second at most (SIGTERM must end the process within its
 * shutdown timeout): after that the refresher is left to finish it alone
 * and free the provider then; its credentials are not installed. NULL is
 * fine. */
void ob_cred_provider_destroy(struct ob_cred_provider *p);

/* The current credentials; never NULL. Give it back with ob_cred_release. */
struct ob_cred_snapshot *ob_cred_acquire(struct ob_cred_provider *p);
void ob_cred_release(struct ob_cred_snapshot *s);

/* A service answered that the credentials of s expired. Never blocks:
 * wakes the refresher, unless newer credentials are current already (s is
 * old news) or the provider has no refresher. */
void ob_cred_report_expired(struct ob_cred_provider *p, const struct ob_cred_snapshot *s);

/* How many sets of credentials the provider has installed (1 after
 * creation): for tests and logs. */
uint64_t ob_cred_installed(struct ob_cred_provider *p);

/* What every AWS client of a process shares: the region and the
 * credentials, found once at startup. Owned by whoever opened it (the
 * command, or the producer API's handle); clients borrow both. */
struct ob_cred_context {
    char *region;
    struct ob_cred_provider *credentials;
};

/* Resolves the region (configured_region, else ob_aws_region_resolve's
 * chain for opt->profile), then the credentials of opt, given that region
 * for STS (opt->region is not read), as ob_cred_provider_create does. On
 * failure *out holds nothing. */
enum ob_err ob_cred_context_open(const char *configured_region, const struct ob_credentials_options *opt, bool refresh,
                                struct ob_cred_context *out, struct ob_error *err);
/* ob_cred_context_open from the config's aws section. */
enum ob_err ob_cred_context_open_config(const struct ob_config_aws *aws, bool refresh, struct ob_cred_context *out,
                                       struct ob_error *err);
void ob_cred_context_close(struct ob_cred_context *c);

/* The schedule (pure; times in Unix milliseconds). */

/* When to refresh credentials obtained at obtained_ms that expire at
 * expires_ms: min(5 minutes, a third of their lifetime) before they
 * expire; 0 (never) for credentials that do not expire (expires_ms 0). */
int64_t ob_cred_refresh_at(int64_t obtained_ms, int64_t expires_ms);

/* After `failures` refreshes failed in a row (>= 1), when to try again:
 * after a backoff doubling from 1 s up to 1 minute, but while the
 * credentials are still valid at most half the time they have left (at
 * least 1 s), so that several tries fit before they expire. */
int64_t ob_cred_retry_at(int64_t now_ms, int64_t expires_ms, int failures);

#endif
