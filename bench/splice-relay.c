/*
 * The physical limit of the proxy benchmark: a minimal SOCKS5 relay in C that moves bytes with
 * splice(2) through a pipe pair, never copying them to user space. No auth, CONNECT to an IPv4 or
 * IPv6 literal (the bench client sends IPv4), no policy, no counters, no logging but failed connects
 * (to stderr). Not a product:
 * proxy-bench.ts builds it with the system compiler (cc -O2) into a temp dir and measures every
 * proxy against it.
 *
 *   cc -O2 -pthread -o splice-relay bench/splice-relay.c && ./splice-relay PORT
 *
 * One thread per direction (blocking sockets, so the kernel does the waiting): the connection's
 * thread does the handshake and relays client->target; a second thread relays target->client.
 * Half-close: on EOF from one side, shutdown(SHUT_WR) on the other and keep the other direction
 * running; the fds close when both directions have ended. On an error in either direction both
 * sockets are shut down so the other thread wakes and ends.
 */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <unistd.h>

#define CHUNK (1 << 20) /* bytes per splice call; the pipe is resized towards it */

struct conn {
  int client, target;
  atomic_int live; /* directions still running; the last one closes the fds */
};

static int read_full(int fd, unsigned char *buf, size_t n) {
  size_t got = 0;
  while (got < n) {
    ssize_t r = read(fd, buf + got, n - got);
    if (r < 0 && errno == EINTR) continue;
    if (r <= 0) return -1;
    got += (size_t)r;
  }
  return 0;
}

static int write_full(int fd, const unsigned char *buf, size_t n) {
  size_t put = 0;
  while (put < n) {
    ssize_t w = write(fd, buf + put, n - put);
    if (w < 0 && errno == EINTR) continue;
    if (w <= 0) return -1;
    put += (size_t)w;
  }
  return 0;
}

static void release(struct conn *c) {
  if (atomic_fetch_sub(&c->live, 1) == 1) {
    close(c->client);
    close(c->target);
    free(c);
  }
}

/* Moves bytes from `in` to `out` until EOF or an error; returns 0 on EOF, -1 on an error. */
static int pump(int in, int out) {
  int p[2];
  if (pipe2(p, O_CLOEXEC) < 0) return -1;
  fcntl(p[1], F_SETPIPE_SZ, CHUNK); /* best effort: capped by /proc/sys/fs/pipe-max-size */
  int rc = 0;
  for (;;) {
    ssize_t n = splice(in, NULL, p[1], NULL, CHUNK, SPLICE_F_MOVE);
    if (n < 0 && errno == EINTR) continue;
    if (n == 0) break;
    if (n < 0) { rc = -1; break; }
    while (n > 0) {
      /* No SPLICE_F_MORE here: like MSG_MORE it corks the socket, and a 1-byte echo would wait 200 ms. */
      ssize_t m = splice(p[0], NULL, out, NULL, (size_t)n, SPLICE_F_MOVE);
      if (m < 0 && errno == EINTR) continue;
      if (m <= 0) { rc = -1; goto done; }
      n -= m;
    }
  }
done:
  close(p[0]);
  close(p[1]);
  return rc;
}

static void relay(struct conn *c, int in, int out) {
  if (pump(in, out) == 0) {
    shutdown(out, SHUT_WR); /* half-close: pass the EOF on, keep the other direction */
  } else {
    shutdown(c->client, SHUT_RDWR); /* an error ends both directions */
    shutdown(c->target, SHUT_RDWR);
  }
}

static void *upstream(void *arg) {
  struct conn *c = arg;
  relay(c, c->target, c->client);
  release(c);
  return NULL;
}

/* The SOCKS5 handshake; returns the connected target fd or -1 (after replying when it can). */
static int handshake(int client) {
  unsigned char b[262];
  if (read_full(client, b, 2) < 0 || b[0] != 5 || read_full(client, b + 2, b[1]) < 0) return -1;
  if (!memchr(b + 2, 0, b[1])) {
    write_full(client, (const unsigned char *)"\x05\xff", 2);
    return -1;
  }
  if (write_full(client, (const unsigned char *)"\x05\x00", 2) < 0) return -1;
  if (read_full(client, b, 4) < 0 || b[0] != 5) return -1;
  struct sockaddr_storage ss;
  memset(&ss, 0, sizeof ss);
  socklen_t len;
  unsigned char reply[10] = {5, 0, 0, 1, 0, 0, 0, 0, 0, 0};
  if (b[1] != 1) reply[1] = 7; /* command not supported */
  if (b[3] == 1) {
    struct sockaddr_in *a = (struct sockaddr_in *)&ss;
    if (read_full(client, b + 4, 6) < 0) return -1;
    a->sin_family = AF_INET;
    memcpy(&a->sin_addr, b + 4, 4);
    memcpy(&a->sin_port, b + 8, 2);
    len = sizeof *a;
  } else if (b[3] == 4) {
    struct sockaddr_in6 *a = (struct sockaddr_in6 *)&ss;
    if (read_full(client, b + 4, 18) < 0) return -1;
    a->sin6_family = AF_INET6;
    memcpy(&a->sin6_addr, b + 4, 16);
    memcpy(&a->sin6_port, b + 20, 2);
    len = sizeof *a;
  } else {
    reply[1] = 8; /* address type not supported (no names: this relay resolves nothing) */
    write_full(client, reply, sizeof reply);
    return -1;
  }
  if (reply[1] != 0) {
    write_full(client, reply, sizeof reply);
    return -1;
  }
  int t = socket(ss.ss_family, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (t < 0 || connect(t, (struct sockaddr *)&ss, len) < 0) {
    if (errno != ECONNREFUSED) perror("splice-relay: connect");
    reply[1] = errno == ECONNREFUSED ? 5 : errno == ENETUNREACH ? 3 : errno == EHOSTUNREACH ? 4 : 1;
    if (t >= 0) close(t);
    write_full(client, reply, sizeof reply);
    return -1;
  }
  int one = 1;
  setsockopt(t, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
  if (write_full(client, reply, sizeof reply) < 0) {
    close(t);
    return -1;
  }
  return t;
}

static pthread_attr_t small_stack;

static void *serve(void *arg) {
  int client = (int)(long)arg;
  int one = 1;
  setsockopt(client, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
  int target = handshake(client);
  if (target < 0) {
    close(client);
    return NULL;
  }
  struct conn *c = malloc(sizeof *c);
  if (!c) {
    close(client);
    close(target);
    return NULL;
  }
  c->client = client;
  c->target = target;
  atomic_init(&c->live, 2);
  pthread_t up;
  if (pthread_create(&up, &small_stack, upstream, c) != 0) {
    atomic_store(&c->live, 1);
    release(c);
    return NULL;
  }
  relay(c, c->client, c->target);
  release(c);
  return NULL;
}

int main(int argc, char **argv) {
  int port = argc == 2 ? atoi(argv[1]) : 0;
  if (port <= 0 || port > 65535) {
    fprintf(stderr, "usage: splice-relay PORT (listens on 127.0.0.1)\n");
    return 2;
  }
  signal(SIGPIPE, SIG_IGN);
  /* A connection holds 6 fds (two sockets, two pipe pairs): take the hard limit. */
  struct rlimit rl;
  if (getrlimit(RLIMIT_NOFILE, &rl) == 0) {
    rl.rlim_cur = rl.rlim_max;
    setrlimit(RLIMIT_NOFILE, &rl);
  }
  pthread_attr_init(&small_stack);
  pthread_attr_setstacksize(&small_stack, 64 * 1024);
  pthread_attr_setdetachstate(&small_stack, PTHREAD_CREATE_DETACHED);
  int l = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  int one = 1;
  setsockopt(l, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
  struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = htons((unsigned short)port)};
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  if (l < 0 || bind(l, (struct sockaddr *)&a, sizeof a) < 0 || listen(l, 4096) < 0) {
    perror("splice-relay: listen");
    return 1;
  }
  for (;;) {
    int c = accept4(l, NULL, NULL, SOCK_CLOEXEC);
    if (c < 0) {
      if (errno == EINTR || errno == ECONNABORTED) continue;
      if (errno == EMFILE || errno == ENFILE) { usleep(10000); continue; }
      perror("splice-relay: accept");
      return 1;
    }
    pthread_t t;
    if (pthread_create(&t, &small_stack, serve, (void *)(long)c) != 0) close(c);
  }
}
