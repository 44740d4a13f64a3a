/* The web console's private contracts, shared by its three files (the
 * gateway's own are in gateway.h):
 *
 *   console.c       the door (token, cookie), the page, media, the websocket
 *                   and the queues of what each open page is sent
 *   console_chat.c  messages from a page, taken through the webhook's routing
 *   console_feed.c  what the pages watch: the supervisor's events and status,
 *                   the kill button, orders, tickets and the outbox
 *
 * All of it runs on the gateway's one thread, in libwebsockets' loop. */
#ifndef SOUK_GATEWAY_CONSOLE_H
#define SOUK_GATEWAY_CONSOLE_H

#include "gateway.h"

#include "souk/store.h"

#include <jansson.h>

#define GW_CONSOLE_BUS "souk-console-bus"    /* lws protocol of its adopted sockets */
#define GW_CONSOLE_MEDIA_MAX (2 * 1024 * 1024) /* one voice note */

/* A text waiting to be written to a page. */
typedef struct gw_page_out {
    struct gw_page_out *next;
    size_t len;
    unsigned char buf[]; /* LWS_PRE bytes, then the text */
} gw_page_out_t;

/* One open page: the websocket's per-session data. */
typedef struct gw_page {
    struct gw_page *prev, *next;
    struct lws *wsi;     /* NULL until established and after closing */
    gw_page_out_t *head, *tail;
    size_t queued;       /* bytes in the queue */
    char *rx;            /* the message being received */
    size_t rx_len;
    bool rx_overflow;
    bool closing;        /* too slow: being closed, sends are dropped */
} gw_page_t;

/* A message sent from a page, waiting for routing's answer. */
typedef struct gw_console_req {
    struct gw_console_req *next;
    gw_page_t *page;   /* NULL once the page closed */
    gw_request_t *req; /* routing's handle while routed */
    char id[64];       /* the page's id for the message */
    char sid[GW_SID_MAX + 1];
} gw_console_req_t;

struct gw_console {
    gw_t *gw;
    zsock_t *events;   /* SUB on the supervisor's events */
    zsock_t *control;  /* DEALER, a client of the supervisor */
    store_t *store;    /* opened on the first refresh */
    bool store_failed;
    gw_page_t *pages;
    size_t npages;
    gw_console_req_t *reqs;
    int64_t status_asked_ms; /* 0: no request outstanding */
    bool status_again;       /* something changed while one was outstanding */
    char *status;      /* last status message sent, for a new page */
    char *data;        /* last data message sent, for a new page */
    char media_dir[512];
    bool refreshing;   /* sul_refresh is armed */
    lws_sorted_usec_list_t sul_refresh;
};

/* console.c: sending to pages (queued; a page too slow to read is closed). */
void gw_console_send_text(gw_page_t *page, const char *text, size_t len);
/* doc (consumed) to one page, or to every page when page is NULL; returns
 * the text when keep (caller frees), else NULL. */
char *gw_console_send(gw_console_t *self, gw_page_t *page, json_t *doc, bool keep);
void gw_console_error(gw_console_t *self, gw_page_t *page, const char *id, const char *text);

/* console_chat.c */
/* {"type":"send", id, waid, name, body, media?: {content_type, data}} */
void gw_console_chat_send(gw_console_t *self, gw_page_t *page, json_t *msg);
/* The page closed: its messages' replies go out through the sender. */
void gw_console_chat_page_gone(gw_console_t *self, gw_page_t *page);

/* console_feed.c */
/* The adopted sockets' lws callback. */
int gw_console_bus_callback(struct lws *wsi, enum lws_callback_reasons reason, void *user,
                            void *in, size_t len);
/* A page opened: refresh status and data every second while any is open. */
void gw_console_feed_start(gw_console_t *self);
/* STATUS_REQ now, or as soon as the outstanding one is answered. */
void gw_console_ask_status(gw_console_t *self);
/* {"type":"kill", name}: SIGKILL through the supervisor's KILL. */
void gw_console_kill(gw_console_t *self, gw_page_t *page, json_t *msg);

#endif
