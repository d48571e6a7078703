/* A curl multi handle driven by epoll through curl's socket interface.
 *
 * curl_multi_perform visits every transfer on each call and checks each
 * one's socket with a poll(2) of its own; with dozens of requests in
 * flight (marks, webhook posts) that is several system calls per request
 * and a scan of all of them per wake-up. Here curl says which sockets to
 * watch (CURLMOPT_SOCKETFUNCTION) and when its timers fire
 * (CURLMOPT_TIMERFUNCTION); one epoll_wait covers them all and only the
 * transfers whose socket is ready run. Used by one thread at a time, like
 * the multi handle itself; ob_multi_wakeup is safe from any thread. */
#ifndef OB_AWS_MULTI_H
#define OB_AWS_MULTI_H

#include <curl/curl.h>

struct ob_multi;

/* NULL when curl or the kernel cannot make one. The caller owns it
 * (ob_multi_destroy). */
struct ob_multi *ob_multi_create(void);
void ob_multi_destroy(struct ob_multi *m);

/* The multi handle, for options and curl_multi_info_read. */
CURLM *ob_multi_curl(struct ob_multi *m);

CURLMcode ob_multi_add(struct ob_multi *m, CURL *easy);
void ob_multi_remove(struct ob_multi *m, CURL *easy);

/* Runs the transfers that can make progress, waiting up to timeout_ms
 * (0: not at all) for one to; returns early on ob_multi_wakeup. Finished
 * transfers are then in curl_multi_info_read. */
void ob_multi_drive(struct ob_multi *m, int timeout_ms);

/* Makes a thread blocked in ob_multi_drive return. */
void ob_multi_wakeup(struct ob_multi *m);

#endif
