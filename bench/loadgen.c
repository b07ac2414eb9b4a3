/*
 * loadgen.c: the load generator of Roost's broker benchmark (bench/run.py).
 *
 * One thread, one epoll loop, plain POSIX sockets and OpenSSL. It speaks just
 * enough MQTT 3.1.1 / 5.0 to drive a broker hard and check what comes back:
 * CONNECT/CONNACK, SUBSCRIBE/SUBACK, PUBLISH at QoS 0/1 with PUBACK, PINGREQ,
 * MQTT 5 topic aliases, and TLS with a client certificate per connection.
 *
 * Every payload carries (publisher id, sequence number, send time), so the
 * subscribers count lost, duplicated and out-of-order messages and measure
 * end-to-end latency while the throughput is being measured. The generator
 * reports its own CPU use: a run where it is near 100% of its core measured
 * the generator, not the broker, and is flagged invalid.
 *
 * Modes (--mode):
 *   pubsub       publishers -> subscribers (--topology fanin|fanout|pairs),
 *                at maximum rate with an end-to-end window, or at --rate msg/s
 *   connections  open --conns idle connections (plain or --tls), report set-up
 *                rate and the broker's RSS per connection (--broker-pid)
 *   retained     store --count retained topics, then time a new '#' subscriber
 *
 * pubsub extras: --persistent (clean session off, session expiry for MQTT 5,
 * fixed client ids), --stuck N (N more subscribers to --stuck-filter that never
 * read their socket after SUBACK: a slow consumer), --cert-dir DIR (TLS: one
 * certificate + key bundle per connection, the certificate's CN as client id,
 * %c in --topic-root for it).
 *
 * Output: one JSON object on stdout. Diagnostics go to stderr.
 */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <math.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <openssl/err.h>
#include <openssl/pem.h>
#include <openssl/ssl.h>
#include <openssl/x509v3.h>
#include <signal.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <dirent.h>
#include <sys/epoll.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/timerfd.h>
#include <time.h>
#include <unistd.h>

#define MAGIC 0x524f4f53u /* "ROOS" */
#define MIN_PAYLOAD 24
#define MAX_EVENTS 1024
#define READ_CHUNK 65536

/* ------------------------------------------------------------------ time */

static uint64_t now_ns(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

static double cpu_seconds_self(void) {
    struct rusage ru;
    getrusage(RUSAGE_SELF, &ru);
    return (double)ru.ru_utime.tv_sec + ru.ru_utime.tv_usec / 1e6 +
           (double)ru.ru_stime.tv_sec + ru.ru_stime.tv_usec / 1e6;
}

/* CPU seconds used so far by another process (utime + stime), or -1. */
static double cpu_seconds_pid(int pid) {
    if (pid <= 0) return -1;
    char path[64], line[2048];
    snprintf(path, sizeof path, "/proc/%d/stat", pid);
    FILE *f = fopen(path, "r");
    if (!f) return -1;
    size_t n = fread(line, 1, sizeof line - 1, f);
    fclose(f);
    line[n] = 0;
    char *p = strrchr(line, ')'); /* the command name may hold spaces */
    if (!p) return -1;
    unsigned long long ut = 0, st = 0;
    /* fields after ')': state(3) ... utime(14) stime(15) */
    int field = 2;
    for (char *tok = strtok(p + 1, " "); tok; tok = strtok(NULL, " ")) {
        field++;
        if (field == 14) ut = strtoull(tok, NULL, 10);
        if (field == 15) { st = strtoull(tok, NULL, 10); break; }
    }
    return (double)(ut + st) / (double)sysconf(_SC_CLK_TCK);
}

static long rss_kib_pid(int pid) {
    if (pid <= 0) return -1;
    char path[64], line[256];
    snprintf(path, sizeof path, "/proc/%d/status", pid);
    FILE *f = fopen(path, "r");
    if (!f) return -1;
    long kib = -1;
    while (fgets(line, sizeof line, f))
        if (strncmp(line, "VmRSS:", 6) == 0) { kib = strtol(line + 6, NULL, 10); break; }
    fclose(f);
    return kib;
}

/* ------------------------------------------------------------- histogram */
/* Microseconds: 1 us buckets below 10 ms, then 1% wide buckets up to ~10 s. */

#define H_LINEAR 10000
#define H_LOG 700
typedef struct { uint64_t b[H_LINEAR + H_LOG]; uint64_t n; double sum; uint64_t max; } hist_t;

static void hist_add(hist_t *h, uint64_t ns) {
    uint64_t us = ns / 1000;
    size_t i;
    if (us < H_LINEAR) i = us;
    else {
        double k = log((double)us / H_LINEAR) / log(1.01);
        i = H_LINEAR + (k >= H_LOG - 1 ? H_LOG - 1 : (size_t)k);
    }
    h->b[i]++;
    h->n++;
    h->sum += (double)ns / 1000.0;
    if (ns > h->max) h->max = ns;
}

static double hist_bucket_us(size_t i) {
    if (i < H_LINEAR) return (double)i;
    return H_LINEAR * pow(1.01, (double)(i - H_LINEAR));
}

static double hist_pct(const hist_t *h, double q) {
    if (!h->n) return -1;
    uint64_t want = (uint64_t)ceil(q * (double)h->n);
    if (want < 1) want = 1;
    uint64_t acc = 0;
    for (size_t i = 0; i < H_LINEAR + H_LOG; i++) {
        acc += h->b[i];
        if (acc >= want) return hist_bucket_us(i);
    }
    return (double)h->max / 1000.0;
}

static void hist_json(const hist_t *h, const char *name, FILE *o) {
    fprintf(o, "\"%s\":{\"count\":%llu", name, (unsigned long long)h->n);
    if (h->n)
        fprintf(o, ",\"mean\":%.1f,\"p50\":%.0f,\"p90\":%.0f,\"p99\":%.0f,\"p999\":%.0f,\"max\":%.0f",
                h->sum / (double)h->n, hist_pct(h, 0.50), hist_pct(h, 0.90), hist_pct(h, 0.99),
                hist_pct(h, 0.999), (double)h->max / 1000.0);
    fprintf(o, "}");
}

/* --------------------------------------------------------------- buffers */

typedef struct { uint8_t *p; size_t off, len, cap; } buf_t;

static void buf_reserve(buf_t *b, size_t extra) {
    if (b->off && b->off == b->len) b->off = b->len = 0;
    if (b->len + extra <= b->cap) return;
    if (b->off) { /* compact first */
        memmove(b->p, b->p + b->off, b->len - b->off);
        b->len -= b->off;
        b->off = 0;
        if (b->len + extra <= b->cap) return;
    }
    size_t cap = b->cap ? b->cap : 256;
    while (cap < b->len + extra) cap *= 2;
    b->p = realloc(b->p, cap);
    if (!b->p) { perror("realloc"); exit(2); }
    b->cap = cap;
}

static size_t buf_pending(const buf_t *b) { return b->len - b->off; }

static void buf_free(buf_t *b) { free(b->p); memset(b, 0, sizeof *b); }

static uint8_t *put_varint(uint8_t *p, uint32_t v) {
    do {
        uint8_t d = v % 128;
        v /= 128;
        if (v) d |= 0x80;
        *p++ = d;
    } while (v);
    return p;
}

static uint8_t *put_u16(uint8_t *p, uint16_t v) { p[0] = v >> 8; p[1] = v & 0xff; return p + 2; }

static uint8_t *put_str(uint8_t *p, const char *s, size_t n) {
    p = put_u16(p, (uint16_t)n);
    memcpy(p, s, n);
    return p + n;
}

static int varint_len(uint32_t v) { return v < 128 ? 1 : v < 16384 ? 2 : v < 2097152 ? 3 : 4; }

/* ---------------------------------------------------------------- config */

enum { MODE_PUBSUB, MODE_CONNECTIONS, MODE_RETAINED };
enum { TOPO_FANIN, TOPO_FANOUT, TOPO_PAIRS };

static struct {
    const char *host;
    int port;
    int mode;
    int topology;
    int proto;  /* 4 = 3.1.1, 5 = 5.0 */
    int qos;
    int pubs, subs;
    int payload;
    double warmup, duration, drain;
    double rate; /* total msg/s; 0 = as fast as the window allows */
    int window;
    int alias;
    int conns;
    int warm_conns;
    int concurrency;
    int tls;
    const char *ca, *certs;
    int count; /* retained topics */
    int broker_pid;
    int keepalive;
    double hold;
    const char *prefix;
    double timeout;
    int persistent;          /* clean session off, session expiry 1 h (MQTT 5) */
    int stuck;               /* extra subscribers that never read */
    const char *stuck_filter;
    const char *cert_dir;    /* one PEM bundle (cert, chain, key) per connection */
    const char *topic_root;  /* topics are ROOT/in/N etc.; %c is the client id; default the prefix */
} cfg = {
    .host = "127.0.0.1", .port = 1883, .mode = MODE_PUBSUB, .topology = TOPO_FANIN, .proto = 4,
    .qos = 0, .pubs = 50, .subs = 1, .payload = 64, .warmup = 1.0, .duration = 5.0, .drain = 10.0,
    .rate = 0, .window = 64, .alias = 0, .conns = 1000, .warm_conns = 10, .concurrency = 64,
    .tls = 0, .ca = NULL, .certs = NULL, .count = 100000, .broker_pid = 0, .keepalive = 60,
    .hold = 2.0, .prefix = "bench", .timeout = 120.0, .persistent = 0, .stuck = 0,
    .stuck_filter = "#", .cert_dir = NULL, .topic_root = NULL,
};

/* ---------------------------------------------------------------- errors */

static int n_errors;
static char first_error[256];

static void record_error(const char *fmt, ...) {
    n_errors++;
    if (first_error[0]) return;
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(first_error, sizeof first_error, fmt, ap);
    va_end(ap);
    fprintf(stderr, "loadgen: %s\n", first_error);
}

static void json_str(FILE *o, const char *s) {
    fputc('"', o);
    for (; *s; s++) {
        if (*s == '"' || *s == '\\') fputc('\\', o);
        if ((unsigned char)*s < 0x20) { fprintf(o, "\\u%04x", *s); continue; }
        fputc(*s, o);
    }
    fputc('"', o);
}

/* --------------------------------------------------------------- clients */

enum { ROLE_PUB, ROLE_SUB, ROLE_IDLE, ROLE_STUCK };
enum { ST_NEW, ST_TCP, ST_TLS, ST_CONNACK, ST_SUBACK, ST_READY, ST_CLOSED };

typedef struct client {
    int fd, id, role, state;
    SSL *ssl;
    int ssl_want_write;
    buf_t rb, wb;
    char cid[64];
    char topic[160];
    int topic_len;
    uint16_t next_pid;
    int inflight;        /* QoS 1 publishes not yet acknowledged */
    int alias_max;       /* from CONNACK (MQTT 5) */
    int receive_max;     /* from CONNACK (MQTT 5) */
    int alias_set;       /* topic alias 1 established on this connection */
    uint64_t seq;        /* next sequence number (publisher) */
    uint64_t acked;
    uint64_t t_start;    /* connect started */
    uint64_t t_last_tx;
    uint64_t base;       /* publisher: sequence below which nothing is awaited */
    uint64_t low_seen;   /* publisher: lowest stream progress, last time looked */
    uint64_t t_low;      /* publisher: when that progress last moved */
    int *streams;        /* publisher: the streams it feeds */
    int n_streams;
    int epoll_out;       /* EPOLLOUT currently requested */
    int expect_close;
    int muted;           /* a stuck subscriber past its SUBACK: out of epoll for good */
} client_t;

typedef struct {
    uint8_t *bits;
    uint64_t nbits; /* capacity in bits */
    uint64_t hi;    /* highest sequence seen + 1 */
    uint64_t unique, dup, ooo;
    int active;
} stream_t;

static int ep;
static client_t *clients;
static int n_clients;
static stream_t *streams; /* [sub * pubs + pub] */
static hist_t lat, connect_lat;
static int measuring;
static uint64_t recv_total, recv_window, sent_total, sent_window, unexpected, retain_flags, bad_payload;
static int n_ready, n_failed, n_pending;
static uint64_t last_rx_ns;
static uint8_t payload_fill[65536];
static uint64_t n_send, n_recv, n_wait; /* system calls, to show the generator's cost */

static void ep_ctl(client_t *c, int op, uint32_t events) {
    struct epoll_event ev = {.events = events, .data.ptr = c};
    if (epoll_ctl(ep, op, c->fd, &ev) < 0 && op != EPOLL_CTL_DEL) {
        perror("epoll_ctl");
        exit(2);
    }
}

static void want_out(client_t *c, int on) {
    if (c->epoll_out == on || c->fd < 0 || c->muted) return;
    c->epoll_out = on;
    ep_ctl(c, EPOLL_CTL_MOD, EPOLLIN | (on ? EPOLLOUT : 0));
}

static void client_close(client_t *c, const char *why) {
    if (c->state == ST_CLOSED) return;
    if (why && !c->expect_close) {
        record_error("client %s: %s", c->cid, why);
        n_failed++;
    }
    if (c->state != ST_READY && c->state != ST_NEW) n_pending--;
    if (c->state == ST_READY) n_ready--;
    c->state = ST_CLOSED;
    if (c->ssl) { SSL_free(c->ssl); c->ssl = NULL; }
    if (c->fd >= 0) { epoll_ctl(ep, EPOLL_CTL_DEL, c->fd, NULL); close(c->fd); c->fd = -1; }
    buf_free(&c->rb);
    buf_free(&c->wb);
}

/* Write what is pending; returns -1 if the client was closed. */
static int client_flush(client_t *c) {
    while (buf_pending(&c->wb)) {
        size_t n = buf_pending(&c->wb);
        ssize_t w;
        if (c->ssl) {
            ERR_clear_error();
            int r = SSL_write(c->ssl, c->wb.p + c->wb.off, (int)n);
            if (r <= 0) {
                int e = SSL_get_error(c->ssl, r);
                if (e == SSL_ERROR_WANT_WRITE) { want_out(c, 1); return 0; }
                if (e == SSL_ERROR_WANT_READ) { c->ssl_want_write = 1; return 0; }
                client_close(c, "TLS write failed");
                return -1;
            }
            w = r;
        } else {
            w = send(c->fd, c->wb.p + c->wb.off, n, MSG_NOSIGNAL);
            n_send++;
            if (w < 0) {
                if (errno == EAGAIN || errno == EINTR) { want_out(c, 1); return 0; }
                client_close(c, strerror(errno));
                return -1;
            }
        }
        c->wb.off += (size_t)w;
        c->t_last_tx = now_ns();
    }
    c->wb.off = c->wb.len = 0;
    c->ssl_want_write = 0;
    want_out(c, 0);
    return 0;
}

/* ----------------------------------------------------------- MQTT encode */

static void q_connect(client_t *c) {
    size_t cid_len = strlen(c->cid);
    int expiry = cfg.proto == 5 && cfg.persistent;
    uint32_t rl = 10 + 2 + (uint32_t)cid_len + (cfg.proto == 5 ? 1 : 0) + (expiry ? 5 : 0);
    buf_reserve(&c->wb, rl + 5);
    uint8_t *p = c->wb.p + c->wb.len;
    *p++ = 0x10;
    p = put_varint(p, rl);
    p = put_str(p, "MQTT", 4);
    *p++ = (uint8_t)cfg.proto;
    *p++ = cfg.persistent ? 0x00 : 0x02; /* clean session / clean start */
    p = put_u16(p, (uint16_t)cfg.keepalive);
    if (expiry) { /* Session Expiry Interval: one hour */
        *p++ = 5;
        *p++ = 0x11;
        *p++ = 0; *p++ = 0; *p++ = 0x0e; *p++ = 0x10;
    } else if (cfg.proto == 5) *p++ = 0; /* no properties */
    p = put_str(p, c->cid, cid_len);
    c->wb.len = (size_t)(p - c->wb.p);
}

static uint16_t next_pid(client_t *c) {
    if (++c->next_pid == 0) c->next_pid = 1;
    return c->next_pid;
}

static void q_subscribe(client_t *c, const char *filter, int qos) {
    size_t fl = strlen(filter);
    uint32_t rl = 2 + (cfg.proto == 5 ? 1 : 0) + 2 + (uint32_t)fl + 1;
    buf_reserve(&c->wb, rl + 5);
    uint8_t *p = c->wb.p + c->wb.len;
    *p++ = 0x82;
    p = put_varint(p, rl);
    p = put_u16(p, next_pid(c));
    if (cfg.proto == 5) *p++ = 0;
    p = put_str(p, filter, fl);
    *p++ = (uint8_t)qos;
    c->wb.len = (size_t)(p - c->wb.p);
}

static void q_simple(client_t *c, uint8_t b0) {
    buf_reserve(&c->wb, 2);
    c->wb.p[c->wb.len++] = b0;
    c->wb.p[c->wb.len++] = 0;
}

static void q_puback(client_t *c, uint16_t pid) {
    buf_reserve(&c->wb, 4);
    uint8_t *p = c->wb.p + c->wb.len;
    *p++ = 0x40;
    *p++ = 2;
    put_u16(p, pid);
    c->wb.len += 4;
}

/* A PUBLISH whose payload carries (publisher id, sequence, send time). */
static void q_publish(client_t *c, const char *topic, int topic_len, int qos, int retain,
                      uint32_t pub_id, uint64_t seq) {
    int use_alias = cfg.proto == 5 && cfg.alias && c->alias_max >= 1;
    int send_topic = !(use_alias && c->alias_set);
    uint32_t props = cfg.proto == 5 ? (use_alias ? 3 : 0) : 0;
    uint32_t rl = 2 + (uint32_t)(send_topic ? topic_len : 0) + (qos ? 2 : 0) +
                  (cfg.proto == 5 ? (uint32_t)varint_len(props) + props : 0) + (uint32_t)cfg.payload;
    buf_reserve(&c->wb, rl + 5);
    uint8_t *p = c->wb.p + c->wb.len;
    *p++ = (uint8_t)(0x30 | (qos << 1) | (retain ? 1 : 0));
    p = put_varint(p, rl);
    if (send_topic) p = put_str(p, topic, (size_t)topic_len);
    else p = put_u16(p, 0);
    if (qos) p = put_u16(p, next_pid(c));
    if (cfg.proto == 5) {
        p = put_varint(p, props);
        if (use_alias) { *p++ = 0x23; p = put_u16(p, 1); }
    }
    uint32_t magic = MAGIC;
    uint64_t t = now_ns();
    memcpy(p, &magic, 4);
    memcpy(p + 4, &pub_id, 4);
    memcpy(p + 8, &seq, 8);
    memcpy(p + 16, &t, 8);
    memcpy(p + 24, payload_fill, (size_t)cfg.payload - 24);
    p += cfg.payload;
    c->wb.len = (size_t)(p - c->wb.p);
    if (use_alias) c->alias_set = 1;
    if (qos) c->inflight++;
    sent_total++;
    if (measuring) sent_window++;
}

/* ----------------------------------------------------------- MQTT decode */

static int get_varint(const uint8_t *p, size_t n, uint32_t *v, size_t *used) {
    uint32_t val = 0, mul = 1;
    for (size_t i = 0; i < 4; i++) {
        if (i >= n) return 0; /* need more */
        val += (p[i] & 0x7f) * mul;
        mul *= 128;
        if (!(p[i] & 0x80)) { *v = val; *used = i + 1; return 1; }
    }
    return -1;
}

/* Walk MQTT 5 properties; report Topic Alias Maximum and Receive Maximum. */
static int parse_props(const uint8_t *p, size_t n, int *alias_max, int *recv_max) {
    size_t i = 0;
    while (i < n) {
        uint8_t id = p[i++];
        switch (id) {
        case 0x01: case 0x17: case 0x19: case 0x24: case 0x25: case 0x28: case 0x29: case 0x2A:
            i += 1; break;
        case 0x13: case 0x23:
            i += 2; break;
        case 0x21:
            if (i + 2 > n) return -1;
            if (recv_max) *recv_max = (p[i] << 8) | p[i + 1];
            i += 2; break;
        case 0x22:
            if (i + 2 > n) return -1;
            if (alias_max) *alias_max = (p[i] << 8) | p[i + 1];
            i += 2; break;
        case 0x02: case 0x11: case 0x18: case 0x27:
            i += 4; break;
        case 0x0B: {
            uint32_t v; size_t u;
            if (get_varint(p + i, n - i, &v, &u) != 1) return -1;
            i += u; break;
        }
        case 0x03: case 0x08: case 0x09: case 0x12: case 0x15: case 0x16: case 0x1A: case 0x1C: case 0x1F:
            if (i + 2 > n) return -1;
            i += 2 + (size_t)((p[i] << 8) | p[i + 1]); break;
        case 0x26:
            for (int k = 0; k < 2; k++) {
                if (i + 2 > n) return -1;
                i += 2 + (size_t)((p[i] << 8) | p[i + 1]);
            }
            break;
        default:
            return -1;
        }
    }
    return i == n ? 0 : -1;
}

static void on_ready(client_t *c);

static void stream_mark(stream_t *s, uint64_t seq) {
    if (seq >= s->nbits) {
        uint64_t nb = s->nbits ? s->nbits : 65536;
        while (nb <= seq) nb *= 2;
        s->bits = realloc(s->bits, nb / 8);
        if (!s->bits) { perror("realloc"); exit(2); }
        memset(s->bits + s->nbits / 8, 0, (nb - s->nbits) / 8);
        s->nbits = nb;
    }
    uint8_t m = (uint8_t)(1u << (seq & 7));
    if (s->bits[seq >> 3] & m) { s->dup++; return; }
    s->bits[seq >> 3] |= m;
    s->unique++;
    if (seq + 1 > s->hi) s->hi = seq + 1;
    else s->ooo++;
}

static void on_message(client_t *c, const uint8_t *pl, size_t n, int retain, uint64_t t_rx) {
    recv_total++;
    last_rx_ns = t_rx;
    if (retain) retain_flags++;
    uint32_t magic, pub_id;
    uint64_t seq, t_tx;
    if (n < MIN_PAYLOAD) { bad_payload++; return; }
    memcpy(&magic, pl, 4);
    if (magic != MAGIC) { bad_payload++; return; }
    memcpy(&pub_id, pl + 4, 4);
    memcpy(&seq, pl + 8, 8);
    memcpy(&t_tx, pl + 16, 8);
    int np = cfg.mode == MODE_RETAINED ? 1 : cfg.pubs;
    if (c->role == ROLE_STUCK) return; /* it never reads; anything parsed came with its SUBACK */
    int sub_index = c->id; /* subscribers are numbered from 0 */
    if ((int)pub_id >= np) { unexpected++; return; }
    stream_t *s = &streams[(size_t)sub_index * (size_t)np + pub_id];
    if (!s->active) { unexpected++; return; }
    stream_mark(s, seq);
    if (measuring) {
        recv_window++;
        if (cfg.mode == MODE_PUBSUB && t_rx > t_tx) hist_add(&lat, t_rx - t_tx);
    }
}

/* Parse every complete packet in the read buffer. */
static void client_parse(client_t *c) {
    uint64_t t_rx = now_ns();
    while (c->state != ST_CLOSED) {
        uint8_t *p = c->rb.p + c->rb.off;
        size_t avail = c->rb.len - c->rb.off;
        if (avail < 2) break;
        uint32_t rl;
        size_t used;
        int r = get_varint(p + 1, avail - 1, &rl, &used);
        if (r == 0) break;
        if (r < 0) { client_close(c, "malformed remaining length"); return; }
        size_t total = 1 + used + rl;
        if (avail < total) break;
        uint8_t b0 = p[0];
        const uint8_t *body = p + 1 + used;
        int type = b0 >> 4;
        switch (type) {
        case 2: { /* CONNACK */
            if (rl < 2) { client_close(c, "short CONNACK"); return; }
            if (body[1] != 0) {
                char why[64];
                snprintf(why, sizeof why, "CONNACK refused, code %d", body[1]);
                client_close(c, why);
                return;
            }
            if (cfg.proto == 5 && rl > 2) {
                uint32_t pl;
                size_t u;
                if (get_varint(body + 2, rl - 2, &pl, &u) == 1 && 2 + u + pl <= rl)
                    parse_props(body + 2 + u, pl, &c->alias_max, &c->receive_max);
            }
            if (c->state == ST_CONNACK) {
                hist_add(&connect_lat, t_rx - c->t_start);
                on_ready(c);
            }
            break;
        }
        case 3: { /* PUBLISH */
            int qos = (b0 >> 1) & 3;
            size_t i = 0;
            if (rl < 2) { client_close(c, "short PUBLISH"); return; }
            size_t tl = (size_t)((body[0] << 8) | body[1]);
            i = 2 + tl;
            uint16_t pid = 0;
            if (qos) { pid = (uint16_t)((body[i] << 8) | body[i + 1]); i += 2; }
            if (cfg.proto == 5) {
                uint32_t pl;
                size_t u;
                if (get_varint(body + i, rl - i, &pl, &u) != 1) { client_close(c, "bad PUBLISH properties"); return; }
                i += u + pl;
            }
            if (i > rl) { client_close(c, "malformed PUBLISH"); return; }
            on_message(c, body + i, rl - i, b0 & 1, t_rx);
            if (qos == 1) q_puback(c, pid);
            else if (qos == 2) { client_close(c, "unexpected QoS 2 delivery"); return; }
            break;
        }
        case 4: /* PUBACK */
            if (c->inflight > 0) c->inflight--;
            c->acked++;
            if (cfg.proto == 5 && rl >= 3 && body[2] >= 0x80) {
                char why[64];
                snprintf(why, sizeof why, "PUBACK reason code 0x%02x", body[2]);
                client_close(c, why);
                return;
            }
            break;
        case 9: /* SUBACK */
            for (size_t i = 2 + (cfg.proto == 5 ? 1 : 0); i < rl; i++) {
                if (body[i] >= 0x80) { client_close(c, "SUBACK refused"); return; }
            }
            if (c->state == ST_SUBACK) {
                c->state = ST_READY;
                n_ready++;
                n_pending--;
                if (c->role == ROLE_STUCK) { /* from now on it never reads */
                    epoll_ctl(ep, EPOLL_CTL_DEL, c->fd, NULL);
                    c->muted = 1;
                    c->rb.off = c->rb.len = 0;
                    return;
                }
            }
            break;
        case 13: /* PINGRESP */
            break;
        case 14: /* DISCONNECT from the server (MQTT 5) */
            client_close(c, "DISCONNECT from broker");
            return;
        default:
            break;
        }
        c->rb.off += total;
    }
    if (c->state != ST_CLOSED && c->rb.off == c->rb.len) c->rb.off = c->rb.len = 0;
}

static void client_read(client_t *c) {
    for (int rounds = 0; rounds < 16 && c->state != ST_CLOSED && !c->muted; rounds++) {
        buf_reserve(&c->rb, READ_CHUNK);
        ssize_t r;
        if (c->ssl) {
            ERR_clear_error();
            int n = SSL_read(c->ssl, c->rb.p + c->rb.len, READ_CHUNK);
            if (n <= 0) {
                int e = SSL_get_error(c->ssl, n);
                if (e == SSL_ERROR_WANT_READ) break;
                if (e == SSL_ERROR_WANT_WRITE) { want_out(c, 1); break; }
                client_close(c, e == SSL_ERROR_ZERO_RETURN ? "closed by broker" : "TLS read failed");
                return;
            }
            r = n;
        } else {
            r = recv(c->fd, c->rb.p + c->rb.len, READ_CHUNK, 0);
            n_recv++;
            if (r < 0) {
                if (errno == EAGAIN || errno == EINTR) break;
                client_close(c, strerror(errno));
                return;
            }
            if (r == 0) { client_close(c, "closed by broker"); return; }
        }
        c->rb.len += (size_t)r;
        client_parse(c);
        if (r < READ_CHUNK && !c->ssl) break;
    }
    if (c->state != ST_CLOSED && (buf_pending(&c->wb) || c->ssl_want_write)) client_flush(c);
}

/* --------------------------------------------------------------- connect */

static SSL_CTX *ssl_ctx;
static X509 **certs;
static EVP_PKEY **keys;
static STACK_OF(X509) **chains; /* --cert-dir: intermediates sent after each certificate */
static int n_certs;

static void add_cert(X509 *x, EVP_PKEY *k, STACK_OF(X509) *chain) {
    static int cap;
    if (n_certs == cap) {
        cap = cap ? cap * 2 : 256;
        certs = realloc(certs, sizeof *certs * (size_t)cap);
        keys = realloc(keys, sizeof *keys * (size_t)cap);
        chains = realloc(chains, sizeof *chains * (size_t)cap);
        if (!certs || !keys || !chains) { perror("realloc"); exit(2); }
    }
    certs[n_certs] = x;
    keys[n_certs] = k;
    chains[n_certs] = chain;
    n_certs++;
}

static int pem_name(const struct dirent *d) {
    size_t n = strlen(d->d_name);
    return n > 4 && !strcmp(d->d_name + n - 4, ".pem");
}

/* --cert-dir: every *.pem file, in name order, holds one device's certificate, its chain
   and its key; connection i uses file i. */
static void load_cert_dir(const char *dir) {
    struct dirent **names;
    int n = scandir(dir, &names, pem_name, alphasort);
    if (n < 0) { perror(dir); exit(2); }
    for (int i = 0; i < n; i++) {
        char path[4096];
        snprintf(path, sizeof path, "%s/%s", dir, names[i]->d_name);
        free(names[i]);
        FILE *f = fopen(path, "r");
        if (!f) { perror(path); exit(2); }
        X509 *leaf = PEM_read_X509(f, NULL, NULL, NULL);
        STACK_OF(X509) *chain = sk_X509_new_null();
        for (X509 *x; leaf && (x = PEM_read_X509(f, NULL, NULL, NULL));) sk_X509_push(chain, x);
        ERR_clear_error();
        rewind(f);
        EVP_PKEY *k = PEM_read_PrivateKey(f, NULL, NULL, NULL);
        fclose(f);
        if (!leaf || !k) { fprintf(stderr, "loadgen: %s needs a certificate and a key\n", path); exit(2); }
        ERR_clear_error();
        add_cert(leaf, k, chain);
    }
    free(names);
    if (!n_certs) { fprintf(stderr, "loadgen: no *.pem bundles in %s\n", dir); exit(2); }
}

static void tls_setup(void) {
    ssl_ctx = SSL_CTX_new(TLS_client_method());
    if (!ssl_ctx) { ERR_print_errors_fp(stderr); exit(2); }
    SSL_CTX_set_mode(ssl_ctx, SSL_MODE_ENABLE_PARTIAL_WRITE | SSL_MODE_ACCEPT_MOVING_WRITE_BUFFER);
    SSL_CTX_set_session_cache_mode(ssl_ctx, SSL_SESS_CACHE_OFF);
    if (cfg.ca) {
        if (SSL_CTX_load_verify_locations(ssl_ctx, cfg.ca, NULL) != 1) {
            ERR_print_errors_fp(stderr);
            exit(2);
        }
        SSL_CTX_set_verify(ssl_ctx, SSL_VERIFY_PEER, NULL);
        X509_VERIFY_PARAM_set1_ip_asc(SSL_CTX_get0_param(ssl_ctx), cfg.host);
    }
    if (cfg.cert_dir) { load_cert_dir(cfg.cert_dir); return; }
    if (!cfg.certs) return;
    /* The bundle holds "certificate, key" pairs in PEM, one per device. */
    FILE *f = fopen(cfg.certs, "r");
    if (!f) { perror(cfg.certs); exit(2); }
    for (;;) {
        X509 *x = PEM_read_X509(f, NULL, NULL, NULL);
        if (!x) break;
        EVP_PKEY *k = PEM_read_PrivateKey(f, NULL, NULL, NULL);
        if (!k) { fprintf(stderr, "loadgen: certificate without a key in %s\n", cfg.certs); exit(2); }
        add_cert(x, k, NULL);
    }
    ERR_clear_error();
    fclose(f);
    if (!n_certs) { fprintf(stderr, "loadgen: no certificates in %s\n", cfg.certs); exit(2); }
}

/* The certificate's common name is the client id brokers may require. */
static void cert_cn(X509 *x, char *out, size_t n) {
    X509_NAME_get_text_by_NID(X509_get_subject_name(x), NID_commonName, out, (int)n);
}

static void client_start(client_t *c) {
    struct sockaddr_in sa = {.sin_family = AF_INET, .sin_port = htons((uint16_t)cfg.port)};
    inet_pton(AF_INET, cfg.host, &sa.sin_addr);
    c->fd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (c->fd < 0) { record_error("socket: %s", strerror(errno)); n_failed++; c->state = ST_CLOSED; return; }
    int one = 1;
    setsockopt(c->fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
    if (c->role == ROLE_STUCK) {
        /* A small receive window: the broker's side backs up after a few KiB. */
        int small = 4096;
        setsockopt(c->fd, SOL_SOCKET, SO_RCVBUF, &small, sizeof small);
    }
    c->t_start = now_ns();
    c->state = ST_TCP;
    n_pending++;
    ep_ctl(c, EPOLL_CTL_ADD, EPOLLIN | EPOLLOUT);
    c->epoll_out = 1;
    if (connect(c->fd, (struct sockaddr *)&sa, sizeof sa) < 0 && errno != EINPROGRESS)
        client_close(c, strerror(errno));
}

static void tls_step(client_t *c) {
    ERR_clear_error();
    int r = SSL_do_handshake(c->ssl);
    if (r == 1) {
        c->state = ST_CONNACK;
        q_connect(c);
        client_flush(c);
        return;
    }
    int e = SSL_get_error(c->ssl, r);
    if (e == SSL_ERROR_WANT_READ) { want_out(c, 0); return; }
    if (e == SSL_ERROR_WANT_WRITE) { want_out(c, 1); return; }
    char why[160];
    unsigned long le = ERR_get_error();
    snprintf(why, sizeof why, "TLS handshake failed: %s", le ? ERR_error_string(le, NULL) : "closed");
    client_close(c, why);
}

static void on_connected(client_t *c) {
    int err = 0;
    socklen_t len = sizeof err;
    getsockopt(c->fd, SOL_SOCKET, SO_ERROR, &err, &len);
    if (err) { client_close(c, strerror(err)); return; }
    if (cfg.tls) {
        c->ssl = SSL_new(ssl_ctx);
        SSL_set_fd(c->ssl, c->fd);
        if (n_certs) {
            SSL_use_certificate(c->ssl, certs[c->id % n_certs]);
            SSL_use_PrivateKey(c->ssl, keys[c->id % n_certs]);
            if (chains[c->id % n_certs]) SSL_set1_chain(c->ssl, chains[c->id % n_certs]);
        }
        SSL_set_connect_state(c->ssl);
        c->state = ST_TLS;
        tls_step(c);
        return;
    }
    c->state = ST_CONNACK;
    q_connect(c);
    client_flush(c);
}

static char sub_filter[200];

static void on_ready(client_t *c) {
    if (c->role == ROLE_SUB || c->role == ROLE_STUCK) {
        c->state = ST_SUBACK;
        q_subscribe(c, sub_filter, cfg.mode == MODE_RETAINED ? 0 : cfg.qos);
        client_flush(c);
        return;
    }
    c->state = ST_READY;
    n_ready++;
    n_pending--;
}

static void client_event(client_t *c, uint32_t ev) {
    if (c->state == ST_CLOSED) return;
    if (c->state == ST_TCP) {
        if (ev & (EPOLLOUT | EPOLLERR | EPOLLHUP)) on_connected(c);
        return;
    }
    if (c->state == ST_TLS) { tls_step(c); return; }
    if (ev & EPOLLIN) client_read(c);
    if (c->state == ST_CLOSED) return;
    if ((ev & EPOLLOUT) && buf_pending(&c->wb)) client_flush(c);
    else if (ev & EPOLLOUT) want_out(c, 0);
    if (c->state != ST_CLOSED && (ev & (EPOLLERR | EPOLLHUP)) && !(ev & EPOLLIN))
        client_close(c, "connection reset");
}

/* ----------------------------------------------------------- event loop */

static volatile sig_atomic_t interrupted;
static void on_signal(int sig) { (void)sig; interrupted = 1; }

static int timer_fd = -1;
static int timer_tag; /* its address tags the timer in epoll */

/* Wait up to timeout_ms for events and dispatch them. */
static void poll_once(int timeout_ms) {
    struct epoll_event evs[MAX_EVENTS];
    int n = epoll_wait(ep, evs, MAX_EVENTS, timeout_ms);
    n_wait++;
    for (int i = 0; i < n; i++) {
        if (evs[i].data.ptr == &timer_tag) {
            uint64_t x;
            if (read(timer_fd, &x, sizeof x) < 0) { /* spurious wake-up */ }
            continue;
        }
        client_event(evs[i].data.ptr, evs[i].events);
    }
}

/* Start connections while fewer than --concurrency are in progress. */
static int next_to_start;
static void start_more(int upto) {
    while (next_to_start < upto && n_pending < cfg.concurrency) client_start(&clients[next_to_start++]);
}

/* Connect clients [from, upto); returns 0 when all of them are ready. */
static int connect_all(int from, int upto, double timeout_s) {
    next_to_start = from;
    uint64_t deadline = now_ns() + (uint64_t)(timeout_s * 1e9);
    for (;;) {
        start_more(upto);
        int done = 1;
        if (next_to_start < upto || n_pending > 0) done = 0;
        if (done) break;
        if (interrupted || now_ns() > deadline) {
            record_error("connecting timed out: %d ready, %d failed, %d pending", n_ready, n_failed, n_pending);
            return -1;
        }
        poll_once(50);
    }
    return n_failed ? -1 : 0;
}

static void run_for(double seconds) {
    uint64_t end = now_ns() + (uint64_t)(seconds * 1e9);
    while (!interrupted && now_ns() < end) poll_once(50);
}

static void setup_clients(int n) {
    n_clients = n;
    clients = calloc((size_t)n, sizeof *clients);
    if (!clients) { perror("calloc"); exit(2); }
    for (int i = 0; i < n; i++) { clients[i].fd = -1; clients[i].state = ST_NEW; }
}

static void disconnect_all(void) {
    for (int i = 0; i < n_clients; i++) {
        client_t *c = &clients[i];
        if (c->state == ST_CLOSED || c->state == ST_NEW) continue;
        c->expect_close = 1;
        if (c->state == ST_READY && !c->muted) { q_simple(c, 0xE0); client_flush(c); }
        client_close(c, NULL);
    }
}

/* Send PINGREQ on connections idle for more than half the keep-alive. */
static void keepalive_tick(void) {
    uint64_t t = now_ns(), half = (uint64_t)cfg.keepalive * 500000000ull;
    for (int i = 0; i < n_clients; i++) {
        client_t *c = &clients[i];
        if (c->state == ST_READY && !c->muted && t - c->t_last_tx > half) { q_simple(c, 0xC0); client_flush(c); }
    }
}

/* A run that could not even start still answers in JSON. */
static int fail_report(const char *mode) {
    printf("{\"mode\":\"%s\",\"phase\":\"connect\",\"connected\":%d,\"failed\":%d,\"errors\":%d,\"first_error\":",
           mode, n_ready, n_failed, n_errors ? n_errors : 1);
    json_str(stdout, first_error[0] ? first_error : "could not connect");
    printf("}\n");
    return 1;
}

/* ---------------------------------------------------------------- pubsub */

/* Messages of publisher p that some subscriber has not received yet. A broker
   that drops the newest messages would freeze the window for good: when it has
   not moved for 500 ms, what is outstanding is written off (and counted lost). */
static uint64_t window_resets;
static uint64_t outstanding(client_t *p) {
    uint64_t low = p->seq;
    for (int k = 0; k < p->n_streams; k++) {
        uint64_t hi = streams[p->streams[k]].hi;
        if (hi < low) low = hi;
    }
    if (low != p->low_seen || !p->t_low) { p->low_seen = low; p->t_low = now_ns(); }
    if (low < p->base) low = p->base;
    uint64_t out = p->seq - low;
    if (out >= (uint64_t)cfg.window && now_ns() - p->t_low > 500000000ull) {
        if (getenv("LOADGEN_DEBUG"))
            fprintf(stderr, "loadgen: %s window reset at seq %llu (lowest received %llu)\n", p->cid,
                    (unsigned long long)p->seq, (unsigned long long)low);
        p->base = p->seq;
        p->t_low = now_ns();
        window_resets++;
        out = 0;
    }
    return out;
}

static int room(client_t *p) {
    if (p->state != ST_READY) return 0;
    int r = cfg.window - (int)outstanding(p);
    if (cfg.qos && cfg.window - p->inflight < r) r = cfg.window - p->inflight;
    if (cfg.qos && p->receive_max && p->receive_max - p->inflight < r) r = p->receive_max - p->inflight;
    return r > 0 ? r : 0;
}

static int has_room(client_t *p) { return room(p) > 0; }

static void publish_one(client_t *p) {
    q_publish(p, p->topic, p->topic_len, cfg.qos, 0, (uint32_t)p->id - (uint32_t)cfg.subs, p->seq);
    p->seq++;
}

static int streams_complete(void) {
    for (int i = cfg.subs; i < cfg.subs + cfg.pubs; i++) {
        client_t *p = &clients[i];
        for (int k = 0; k < p->n_streams; k++)
            if (streams[p->streams[k]].unique < p->seq) return 0;
    }
    return 1;
}

static void arm_timer(uint64_t at_ns) {
    struct itimerspec its = {0};
    its.it_value.tv_sec = (time_t)(at_ns / 1000000000ull);
    its.it_value.tv_nsec = (long)(at_ns % 1000000000ull);
    timerfd_settime(timer_fd, TFD_TIMER_ABSTIME, &its, NULL);
}

/* --topic-root (default the prefix) with %c replaced by `cid`. */
static void topic_root(char *out, size_t n, const char *cid) {
    const char *t = cfg.topic_root ? cfg.topic_root : cfg.prefix;
    size_t o = 0;
    for (; *t && o + 1 < n; t++) {
        if (t[0] == '%' && t[1] == 'c') {
            o += (size_t)snprintf(out + o, n - o, "%s", cid);
            if (o >= n) o = n - 1;
            t++;
        } else out[o++] = *t;
    }
    out[o] = 0;
}

static int run_pubsub(void) {
    int np = cfg.pubs, ns = cfg.subs;
    if (cfg.topology == TOPO_FANOUT && np != 1) { fprintf(stderr, "fan-out uses one publisher\n"); np = cfg.pubs = 1; }
    if (cfg.topology == TOPO_FANIN && ns != 1) { fprintf(stderr, "fan-in uses one subscriber\n"); ns = cfg.subs = 1; }
    if (cfg.topology == TOPO_PAIRS && ns != np) { fprintf(stderr, "pairs need --subs == --pubs\n"); return 2; }
    int nk = cfg.stuck, total = ns + np + nk;
    if (cfg.tls && n_certs && n_certs < total) {
        fprintf(stderr, "loadgen: %d connections need as many certificates, %d given\n", total, n_certs);
        return 2;
    }
    setup_clients(total);
    streams = calloc((size_t)ns * (size_t)np, sizeof *streams);
    /* clients[0..ns) subscribe, clients[ns..ns+np) publish, then the stuck ones */
    for (int i = 0; i < total; i++) {
        client_t *c = &clients[i];
        c->id = i;
        c->role = i < ns ? ROLE_SUB : i < ns + np ? ROLE_PUB : ROLE_STUCK;
        if (cfg.tls && n_certs) cert_cn(certs[i], c->cid, sizeof c->cid);
        else if (i < ns) snprintf(c->cid, sizeof c->cid, "%s-s%d", cfg.prefix, i);
        else if (i < ns + np) snprintf(c->cid, sizeof c->cid, "%s-p%d", cfg.prefix, i - ns);
        else snprintf(c->cid, sizeof c->cid, "%s-k%d", cfg.prefix, i - ns - np);
    }
    char root[160];
    for (int i = 0; i < np; i++) {
        client_t *c = &clients[ns + i];
        const char *kind = cfg.topology == TOPO_FANIN ? "in" : cfg.topology == TOPO_FANOUT ? "out" : "pair";
        topic_root(root, sizeof root, c->cid);
        if (cfg.topology == TOPO_FANOUT) c->topic_len = snprintf(c->topic, sizeof c->topic, "%s/out", root);
        else c->topic_len = snprintf(c->topic, sizeof c->topic, "%s/%s/%d", root, kind, i);
        c->streams = calloc((size_t)ns, sizeof(int));
        for (int s = 0; s < ns; s++) {
            if (cfg.topology == TOPO_PAIRS && s != i) continue;
            int idx = s * np + i;
            streams[idx].active = 1;
            c->streams[c->n_streams++] = idx;
        }
    }
    /* Subscribers first, so that nothing is published before they listen. */
    if (cfg.topology == TOPO_FANIN) {
        topic_root(root, sizeof root, "+");
        snprintf(sub_filter, sizeof sub_filter, "%s/in/+", root);
    } else if (cfg.topology == TOPO_FANOUT) {
        snprintf(sub_filter, sizeof sub_filter, "%s", clients[ns].topic);
    }
    if (cfg.topology == TOPO_PAIRS) {
        /* each subscriber has its own filter: connect them one by one */
        for (int s = 0; s < ns; s++) {
            snprintf(sub_filter, sizeof sub_filter, "%s", clients[ns + s].topic);
            if (connect_all(s, s + 1, 30) < 0) return fail_report("pubsub");
        }
    } else if (connect_all(0, ns, 30) < 0) return fail_report("pubsub");
    if (nk) {
        snprintf(sub_filter, sizeof sub_filter, "%s", cfg.stuck_filter);
        if (connect_all(ns + np, total, 30) < 0) return fail_report("pubsub");
    }
    if (connect_all(ns, ns + np, 30) < 0) return fail_report("pubsub");

    int paced = cfg.rate > 0;
    if (paced) {
        timer_fd = timerfd_create(CLOCK_MONOTONIC, TFD_NONBLOCK | TFD_CLOEXEC);
        struct epoll_event ev = {.events = EPOLLIN, .data.ptr = &timer_tag};
        epoll_ctl(ep, EPOLL_CTL_ADD, timer_fd, &ev);
    }
    uint64_t t0 = now_ns();
    uint64_t t_start = t0 + (uint64_t)(cfg.warmup * 1e9);
    uint64_t t_end = t_start + (uint64_t)(cfg.duration * 1e9);
    uint64_t w_start = 0, w_end = 0, paced_sent = 0, paced_skipped = 0;
    double cpu0 = 0, cpu1 = 0, bcpu0 = -1, bcpu1 = -1;
    uint64_t next_ka = t0 + 1000000000ull;
    int rr = 0;
    while (!interrupted) {
        uint64_t t = now_ns();
        if (!measuring && !w_start && t >= t_start) {
            measuring = 1;
            w_start = t;
            cpu0 = cpu_seconds_self();
            bcpu0 = cpu_seconds_pid(cfg.broker_pid);
        }
        if (measuring && t >= t_end) {
            measuring = 0;
            w_end = t;
            cpu1 = cpu_seconds_self();
            bcpu1 = cpu_seconds_pid(cfg.broker_pid);
            break;
        }
        if (n_failed) break;
        if (paced) {
            uint64_t due = (uint64_t)((double)(t - t0) * cfg.rate / 1e9);
            while (paced_sent < due) {
                /* round-robin over publishers; one whose window is full is skipped */
                int tried = 0;
                while (tried < np && !has_room(&clients[ns + rr])) { rr = (rr + 1) % np; tried++; }
                if (tried == np) { paced_skipped += due - paced_sent; paced_sent = due; break; }
                publish_one(&clients[ns + rr]);
                client_flush(&clients[ns + rr]);
                rr = (rr + 1) % np;
                paced_sent++;
            }
            arm_timer(t0 + (uint64_t)((double)(paced_sent + 1) * 1e9 / cfg.rate));
            poll_once(20);
        } else {
            /* Block in epoll unless a publisher still has room after its burst:
               the window only opens when subscribers receive, which wakes us. */
            /* At QoS 0 a publisher writes once a quarter of its window is free: fewer,
               larger writes keep the generator's own cost per message low. At
               QoS 1 it answers every PUBACK at once, as a real client does. */
            int more = 0, min_room = (cfg.qos == 0 && cfg.window >= 4) ? cfg.window / 4 : 1;
            for (int i = 0; i < np; i++) {
                client_t *p = &clients[ns + i];
                int r = room(p);
                if (r < min_room) continue;
                if (r > 64) { r = 64; more = 1; }
                for (int k = 0; k < r; k++) publish_one(p);
                client_flush(p);
            }
            poll_once(more ? 0 : 10);
        }
        if (t > next_ka) { keepalive_tick(); next_ka = t + 1000000000ull; }
    }
    /* Drain: wait for what is still in flight. */
    uint64_t drain_end = now_ns() + (uint64_t)(cfg.drain * 1e9);
    last_rx_ns = now_ns();
    while (!interrupted && !n_failed && !streams_complete()) {
        uint64_t t = now_ns();
        if (t > drain_end) break;
        /* Nothing more is coming: QoS 0 may drop, and a broker may drop QoS 1 too. */
        if (t - last_rx_ns > (cfg.qos ? 2000000000ull : 500000000ull)) break;
        poll_once(20);
    }
    uint64_t lost = 0, dup = 0, ooo = 0, unacked = 0;
    for (int i = 0; i < np; i++) {
        client_t *p = &clients[ns + i];
        unacked += (uint64_t)p->inflight;
        for (int k = 0; k < p->n_streams; k++) {
            stream_t *s = &streams[p->streams[k]];
            if (s->unique < p->seq) lost += p->seq - s->unique;
            dup += s->dup;
            ooo += s->ooo;
        }
    }
    int complete_window = w_end > w_start && w_start;
    double dur = complete_window ? (double)(w_end - w_start) / 1e9 : 0;
    double gen_cpu = dur > 0 ? (cpu1 - cpu0) / dur : 0;
    double broker_cpu = (dur > 0 && bcpu0 >= 0 && bcpu1 >= 0) ? (bcpu1 - bcpu0) / dur : -1;
    int stuck_connected = 0;
    for (int i = ns + np; i < ns + np + nk; i++) {
        struct tcp_info ti;
        socklen_t tl = sizeof ti;
        if (clients[i].fd >= 0 && getsockopt(clients[i].fd, IPPROTO_TCP, TCP_INFO, &ti, &tl) == 0 &&
            ti.tcpi_state == 1 /* ESTABLISHED */)
            stuck_connected++;
    }
    disconnect_all();

    FILE *o = stdout;
    const char *topo = cfg.topology == TOPO_FANIN ? "fanin" : cfg.topology == TOPO_FANOUT ? "fanout" : "pairs";
    fprintf(o, "{\"mode\":\"pubsub\",\"topology\":\"%s\",\"proto\":%d,\"qos\":%d,\"alias\":%s,", topo,
            cfg.proto, cfg.qos, cfg.alias ? "true" : "false");
    fprintf(o, "\"pubs\":%d,\"subs\":%d,\"payload\":%d,\"window\":%d,\"target_rate\":%.0f,", np, ns,
            cfg.payload, cfg.window, cfg.rate);
    fprintf(o, "\"warmup_s\":%.3f,\"duration_s\":%.4f,\"persistent\":%s,\"stuck\":%d,\"stuck_connected\":%d,",
            cfg.warmup, dur, cfg.persistent ? "true" : "false", nk, stuck_connected);
    fprintf(o, "\"sent_total\":%llu,\"received_total\":%llu,\"sent_in_window\":%llu,\"received_in_window\":%llu,",
            (unsigned long long)sent_total, (unsigned long long)recv_total, (unsigned long long)sent_window,
            (unsigned long long)recv_window);
    fprintf(o, "\"rate\":%.1f,\"publish_rate\":%.1f,", dur > 0 ? (double)recv_window / dur : 0,
            dur > 0 ? (double)sent_window / dur : 0);
    fprintf(o, "\"lost\":%llu,\"duplicated\":%llu,\"out_of_order\":%llu,\"unexpected\":%llu,\"bad_payload\":%llu,"
               "\"unacked\":%llu,\"paced_skipped\":%llu,",
            (unsigned long long)lost, (unsigned long long)dup, (unsigned long long)ooo,
            (unsigned long long)unexpected, (unsigned long long)bad_payload, (unsigned long long)unacked,
            (unsigned long long)paced_skipped);
    hist_json(&lat, "latency_us", o);
    fprintf(o, ",\"window_resets\":%llu,\"syscalls\":{\"send\":%llu,\"recv\":%llu,\"epoll_wait\":%llu}",
            (unsigned long long)window_resets, (unsigned long long)n_send, (unsigned long long)n_recv,
            (unsigned long long)n_wait);
    fprintf(o, ",\"gen_cpu\":%.3f,\"broker_cpu\":%.3f,\"errors\":%d,\"first_error\":", gen_cpu, broker_cpu, n_errors);
    json_str(o, first_error);
    fprintf(o, "}\n");
    return n_errors ? 1 : 0;
}

/* ----------------------------------------------------------- connections */

static int run_connections(void) {
    int total = cfg.warm_conns + cfg.conns;
    setup_clients(total);
    for (int i = 0; i < total; i++) {
        clients[i].id = i;
        clients[i].role = ROLE_IDLE;
        if (cfg.tls && n_certs) cert_cn(certs[i % n_certs], clients[i].cid, sizeof clients[i].cid);
        else snprintf(clients[i].cid, sizeof clients[i].cid, "%s-c%d", cfg.prefix, i);
    }
    /* A few connections first, so lazily built broker state is in the baseline. */
    int rc = connect_all(0, cfg.warm_conns, 30);
    run_for(0.5);
    long rss0 = rss_kib_pid(cfg.broker_pid);
    memset(&connect_lat, 0, sizeof connect_lat);
    double cpu0 = cpu_seconds_self(), bcpu0 = cpu_seconds_pid(cfg.broker_pid);
    uint64_t t0 = now_ns();
    if (rc == 0) rc = connect_all(cfg.warm_conns, total, cfg.timeout);
    uint64_t t1 = now_ns();
    double cpu1 = cpu_seconds_self(), bcpu1 = cpu_seconds_pid(cfg.broker_pid);
    int connected = n_ready - cfg.warm_conns;
    /* Let the broker settle, keep the connections idle, then read its RSS. */
    long rss1 = -1;
    uint64_t hold_end = now_ns() + (uint64_t)(cfg.hold * 1e9);
    while (!interrupted && now_ns() < hold_end) { poll_once(100); keepalive_tick(); }
    rss1 = rss_kib_pid(cfg.broker_pid);
    int still = n_ready - cfg.warm_conns;
    disconnect_all();
    double dur = (double)(t1 - t0) / 1e9;
    FILE *o = stdout;
    fprintf(o, "{\"mode\":\"connections\",\"tls\":%s,\"proto\":%d,\"conns\":%d,\"connected\":%d,"
               "\"still_connected\":%d,\"failed\":%d,\"concurrency\":%d,",
            cfg.tls ? "true" : "false", cfg.proto, cfg.conns, connected, still, n_failed, cfg.concurrency);
    fprintf(o, "\"setup_s\":%.4f,\"rate\":%.1f,\"rss_before_kib\":%ld,\"rss_after_kib\":%ld,\"rss_per_conn_kib\":%.3f,",
            dur, dur > 0 ? connected / dur : 0, rss0, rss1,
            (rss0 >= 0 && rss1 >= 0 && still > 0) ? (double)(rss1 - rss0) / still : -1.0);
    hist_json(&connect_lat, "connect_us", o);
    fprintf(o, ",\"gen_cpu\":%.3f,\"broker_cpu\":%.3f,\"errors\":%d,\"first_error\":", dur > 0 ? (cpu1 - cpu0) / dur : 0,
            (dur > 0 && bcpu0 >= 0) ? (bcpu1 - bcpu0) / dur : -1, n_errors);
    json_str(o, first_error);
    fprintf(o, "}\n");
    return rc < 0 || n_errors ? 1 : 0;
}

/* -------------------------------------------------------------- retained */

static int run_retained(void) {
    /* clients[0] subscribes to '#' later, clients[1] stores the retained topics */
    setup_clients(2);
    streams = calloc(1, sizeof *streams);
    streams[0].active = 1;
    client_t *sub = &clients[0], *pub = &clients[1];
    sub->id = 0;
    sub->role = ROLE_SUB;
    snprintf(sub->cid, sizeof sub->cid, "%s-rs", cfg.prefix);
    pub->id = 1;
    pub->role = ROLE_PUB;
    snprintf(pub->cid, sizeof pub->cid, "%s-rp", cfg.prefix);
    snprintf(sub_filter, sizeof sub_filter, "#");
    int saved_alias = cfg.alias;
    cfg.alias = 0;
    if (connect_all(1, 2, 30) < 0) return fail_report("retained");
    uint64_t t0 = now_ns();
    uint64_t deadline = t0 + (uint64_t)(cfg.timeout * 1e9);
    char topic[160];
    uint64_t i = 0;
    int window = cfg.window;
    while (!interrupted && !n_failed && (i < (uint64_t)cfg.count || pub->inflight > 0)) {
        if (now_ns() > deadline) { record_error("storing retained messages timed out at %llu", (unsigned long long)i); break; }
        int burst = 0;
        while (i < (uint64_t)cfg.count && pub->inflight < window && burst < 64) {
            int tl = snprintf(topic, sizeof topic, "%s/g%03llu/d%06llu", cfg.prefix,
                              (unsigned long long)(i / 1000), (unsigned long long)i);
            q_publish(pub, topic, tl, 1, 1, 0, i);
            i++;
            burst++;
        }
        if (burst) client_flush(pub);
        poll_once(burst ? 0 : 10);
    }
    uint64_t t1 = now_ns();
    cfg.alias = saved_alias;
    /* A new subscriber to '#' receives every retained message. */
    run_for(0.2);
    double cpu0 = cpu_seconds_self(), bcpu0 = cpu_seconds_pid(cfg.broker_pid);
    measuring = 1;
    uint64_t t2 = now_ns();
    if (connect_all(0, 1, 30) < 0) return fail_report("retained");
    deadline = t2 + (uint64_t)(cfg.timeout * 1e9);
    while (!interrupted && !n_failed && streams[0].unique < (uint64_t)cfg.count && now_ns() < deadline) poll_once(10);
    uint64_t t3 = last_rx_ns > t2 ? last_rx_ns : now_ns();
    double cpu1 = cpu_seconds_self(), bcpu1 = cpu_seconds_pid(cfg.broker_pid);
    measuring = 0;
    /* A short wait shows duplicates or extra messages arriving late. */
    run_for(0.3);
    disconnect_all();
    double store_s = (double)(t1 - t0) / 1e9, deliver_s = (double)(t3 - t2) / 1e9;
    int complete = streams[0].unique == (uint64_t)cfg.count;
    if (!complete && !n_errors)
        record_error("the '#' subscriber received %llu of %d retained messages",
                     (unsigned long long)streams[0].unique, cfg.count);
    FILE *o = stdout;
    fprintf(o, "{\"mode\":\"retained\",\"proto\":%d,\"count\":%d,\"stored\":%llu,\"store_s\":%.4f,\"store_rate\":%.1f,",
            cfg.proto, cfg.count, (unsigned long long)pub->acked, store_s, store_s > 0 ? cfg.count / store_s : 0);
    fprintf(o, "\"received\":%llu,\"unique\":%llu,\"duplicated\":%llu,\"retain_flag\":%llu,\"unexpected\":%llu,"
               "\"bad_payload\":%llu,\"complete\":%s,",
            (unsigned long long)recv_total, (unsigned long long)streams[0].unique,
            (unsigned long long)streams[0].dup, (unsigned long long)retain_flags,
            (unsigned long long)unexpected, (unsigned long long)bad_payload, complete ? "true" : "false");
    fprintf(o, "\"deliver_s\":%.4f,\"deliver_rate\":%.1f,\"gen_cpu\":%.3f,\"broker_cpu\":%.3f,\"errors\":%d,\"first_error\":",
            deliver_s, deliver_s > 0 ? streams[0].unique / deliver_s : 0,
            deliver_s > 0 ? (cpu1 - cpu0) / deliver_s : 0,
            (deliver_s > 0 && bcpu0 >= 0) ? (bcpu1 - bcpu0) / deliver_s : -1, n_errors);
    json_str(o, first_error);
    fprintf(o, "}\n");
    return n_errors ? 1 : 0;
}

/* ------------------------------------------------------------------ main */

static void usage(void) {
    fprintf(stderr,
            "usage: loadgen --port N [--host A] --mode pubsub|connections|retained\n"
            "  pubsub:      --topology fanin|fanout|pairs --pubs N --subs N --qos 0|1 --proto 4|5 [--alias]\n"
            "               --payload B --window N --rate MSG_S --warmup S --duration S --drain S\n"
            "               [--persistent] [--stuck N --stuck-filter F] [--topic-root R (%%c: client id)]\n"
            "               [--tls --ca F (--certs BUNDLE | --cert-dir DIR)]\n"
            "  connections: --conns N --warm-conns N --concurrency N --hold S [--tls --ca F --certs F]\n"
            "  retained:    --count N --window N\n"
            "  all:         --broker-pid PID --prefix STR --keepalive S --timeout S\n");
    exit(2);
}

int main(int argc, char **argv) {
    static struct option opts[] = {
        {"host", 1, 0, 'h'}, {"port", 1, 0, 'p'}, {"mode", 1, 0, 'm'}, {"topology", 1, 0, 't'},
        {"proto", 1, 0, 'V'}, {"qos", 1, 0, 'q'}, {"pubs", 1, 0, 'P'}, {"subs", 1, 0, 'S'},
        {"payload", 1, 0, 'b'}, {"warmup", 1, 0, 'w'}, {"duration", 1, 0, 'd'}, {"drain", 1, 0, 'D'},
        {"rate", 1, 0, 'r'}, {"window", 1, 0, 'W'}, {"alias", 0, 0, 'a'}, {"conns", 1, 0, 'n'},
        {"warm-conns", 1, 0, 'N'}, {"concurrency", 1, 0, 'c'}, {"tls", 0, 0, 'T'}, {"ca", 1, 0, 'A'},
        {"certs", 1, 0, 'C'}, {"count", 1, 0, 'k'}, {"broker-pid", 1, 0, 'B'}, {"keepalive", 1, 0, 'K'},
        {"hold", 1, 0, 'H'}, {"prefix", 1, 0, 'x'}, {"timeout", 1, 0, 'o'}, {"persistent", 0, 0, 'E'},
        {"stuck", 1, 0, 'U'}, {"stuck-filter", 1, 0, 'F'}, {"cert-dir", 1, 0, 'R'}, {"topic-root", 1, 0, 'X'},
        {0, 0, 0, 0}};
    int ch;
    while ((ch = getopt_long(argc, argv, "", opts, NULL)) != -1) {
        switch (ch) {
        case 'h': cfg.host = optarg; break;
        case 'p': cfg.port = atoi(optarg); break;
        case 'm':
            if (!strcmp(optarg, "pubsub")) cfg.mode = MODE_PUBSUB;
            else if (!strcmp(optarg, "connections")) cfg.mode = MODE_CONNECTIONS;
            else if (!strcmp(optarg, "retained")) cfg.mode = MODE_RETAINED;
            else usage();
            break;
        case 't':
            if (!strcmp(optarg, "fanin")) cfg.topology = TOPO_FANIN;
            else if (!strcmp(optarg, "fanout")) cfg.topology = TOPO_FANOUT;
            else if (!strcmp(optarg, "pairs")) cfg.topology = TOPO_PAIRS;
            else usage();
            break;
        case 'V': cfg.proto = atoi(optarg); break;
        case 'q': cfg.qos = atoi(optarg); break;
        case 'P': cfg.pubs = atoi(optarg); break;
        case 'S': cfg.subs = atoi(optarg); break;
        case 'b': cfg.payload = atoi(optarg); break;
        case 'w': cfg.warmup = atof(optarg); break;
        case 'd': cfg.duration = atof(optarg); break;
        case 'D': cfg.drain = atof(optarg); break;
        case 'r': cfg.rate = atof(optarg); break;
        case 'W': cfg.window = atoi(optarg); break;
        case 'a': cfg.alias = 1; break;
        case 'n': cfg.conns = atoi(optarg); break;
        case 'N': cfg.warm_conns = atoi(optarg); break;
        case 'c': cfg.concurrency = atoi(optarg); break;
        case 'T': cfg.tls = 1; break;
        case 'A': cfg.ca = optarg; break;
        case 'C': cfg.certs = optarg; break;
        case 'k': cfg.count = atoi(optarg); break;
        case 'B': cfg.broker_pid = atoi(optarg); break;
        case 'K': cfg.keepalive = atoi(optarg); break;
        case 'H': cfg.hold = atof(optarg); break;
        case 'x': cfg.prefix = optarg; break;
        case 'o': cfg.timeout = atof(optarg); break;
        case 'E': cfg.persistent = 1; break;
        case 'U': cfg.stuck = atoi(optarg); break;
        case 'F': cfg.stuck_filter = optarg; break;
        case 'R': cfg.cert_dir = optarg; cfg.tls = 1; break;
        case 'X': cfg.topic_root = optarg; break;
        default: usage();
        }
    }
    if (cfg.proto != 4 && cfg.proto != 5) usage();
    if (cfg.qos < 0 || cfg.qos > 1) usage();
    if (cfg.payload < MIN_PAYLOAD || cfg.payload > (int)sizeof payload_fill) usage();
    if (cfg.pubs < 1 || cfg.subs < 1 || cfg.window < 1 || cfg.keepalive < 1) usage();
    memset(payload_fill, 'x', sizeof payload_fill);

    /* Idle-connection runs need one descriptor per connection. */
    struct rlimit rl;
    if (getrlimit(RLIMIT_NOFILE, &rl) == 0) {
        rl.rlim_cur = rl.rlim_max;
        setrlimit(RLIMIT_NOFILE, &rl);
    }
    signal(SIGINT, on_signal);
    signal(SIGTERM, on_signal);
    signal(SIGPIPE, SIG_IGN);
    ep = epoll_create1(EPOLL_CLOEXEC);
    if (ep < 0) { perror("epoll_create1"); return 2; }
    if (cfg.tls) tls_setup();
    int rc;
    switch (cfg.mode) {
    case MODE_CONNECTIONS: rc = run_connections(); break;
    case MODE_RETAINED: rc = run_retained(); break;
    default: rc = run_pubsub(); break;
    }
    fflush(stdout);
    return rc;
}
