/*
 * The physical limit for `npm run bench`: the least an HTTP/1.1 file server can do. One thread
 * per connection, blocking sockets, keep-alive, GET only, the body moved with sendfile(2).
 * No Range, no conditionals, no security beyond refusing "..": a measuring stick, not a server.
 *
 *   sendfile-server @abstract-name|/socket/path ROOT [URL_PREFIX]
 *
 * Binds the exact-length name (no padding to 108 bytes), prints "ready" once listening.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <pthread.h>
#include <signal.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/sendfile.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

static const char *root;
static const char *prefix = "";

static int write_all(int fd, const char *p, size_t n) {
  while (n > 0) {
    ssize_t w = write(fd, p, n);
    if (w < 0) {
      if (errno == EINTR) continue;
      return -1;
    }
    p += w;
    n -= (size_t)w;
  }
  return 0;
}

static int reply_status(int fd, const char *status) {
  char head[256];
  int n = snprintf(head, sizeof head, "HTTP/1.1 %s\r\nContent-Length: 0\r\nConnection: close\r\n\r\n", status);
  write_all(fd, head, (size_t)n);
  return -1; /* close the connection */
}

/* Serves one request whose head is buf[0..len); returns 0 to keep the connection, -1 to close. */
static int serve(int fd, char *buf) {
  char method[16], target[PATH_MAX];
  if (sscanf(buf, "%15s %4000s", method, target) != 2) return reply_status(fd, "400 Bad Request");
  if (strcmp(method, "GET") != 0) return reply_status(fd, "405 Method Not Allowed");
  char *q = strchr(target, '?');
  if (q) *q = '\0';
  size_t plen = strlen(prefix);
  if (strncmp(target, prefix, plen) != 0 || strstr(target, "..")) return reply_status(fd, "404 Not Found");
  char path[PATH_MAX + 64];
  snprintf(path, sizeof path, "%s/%s", root, target + plen);
  int file = open(path, O_RDONLY | O_CLOEXEC);
  if (file < 0) return reply_status(fd, "404 Not Found");
  struct stat st;
  if (fstat(file, &st) < 0 || !S_ISREG(st.st_mode)) {
    close(file);
    return reply_status(fd, "404 Not Found");
  }
  int close_after = strcasestr(buf, "\nconnection: close") != NULL;
  char head[256];
  int n = snprintf(head, sizeof head,
                   "HTTP/1.1 200 OK\r\nContent-Type: application/octet-stream\r\nContent-Length: %lld\r\n%s\r\n",
                   (long long)st.st_size, close_after ? "Connection: close\r\n" : "");
  if (write_all(fd, head, (size_t)n) < 0) {
    close(file);
    return -1;
  }
  off_t off = 0;
  while (off < st.st_size) {
    ssize_t s = sendfile(fd, file, &off, (size_t)(st.st_size - off));
    if (s < 0 && errno == EINTR) continue;
    if (s <= 0) {
      close(file);
      return -1;
    }
  }
  close(file);
  return close_after ? -1 : 0;
}

static void *connection(void *arg) {
  int fd = (int)(intptr_t)arg;
  char buf[16384];
  size_t have = 0;
  for (;;) {
    char *end;
    buf[have] = '\0';
    while ((end = strstr(buf, "\r\n\r\n")) == NULL) {
      if (have >= sizeof buf - 1) goto out;
      ssize_t r = read(fd, buf + have, sizeof buf - 1 - have);
      if (r < 0 && errno == EINTR) continue;
      if (r <= 0) goto out;
      have += (size_t)r;
      buf[have] = '\0';
    }
    size_t used = (size_t)(end + 4 - buf);
    end[2] = '\0';
    if (serve(fd, buf) < 0) goto out;
    memmove(buf, buf + used, have - used); /* pipelined requests */
    have -= used;
  }
out:
  close(fd);
  return NULL;
}

int main(int argc, char **argv) {
  if (argc < 3) {
    fprintf(stderr, "usage: %s @name|/path ROOT [URL_PREFIX]\n", argv[0]);
    return 2;
  }
  root = argv[2];
  if (argc > 3) prefix = argv[3];
  signal(SIGPIPE, SIG_IGN);
  struct sockaddr_un sa = {.sun_family = AF_UNIX};
  const char *name = argv[1];
  size_t nlen = strlen(name);
  if (nlen >= sizeof sa.sun_path) return 2;
  socklen_t len;
  if (name[0] == '@') {
    memcpy(sa.sun_path + 1, name + 1, nlen - 1); /* sun_path[0] stays NUL: abstract */
    len = (socklen_t)(offsetof(struct sockaddr_un, sun_path) + nlen);
  } else {
    unlink(name);
    memcpy(sa.sun_path, name, nlen);
    len = (socklen_t)(offsetof(struct sockaddr_un, sun_path) + nlen + 1);
  }
  int ls = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (ls < 0 || bind(ls, (struct sockaddr *)&sa, len) < 0 || listen(ls, 1024) < 0) {
    perror("listen");
    return 1;
  }
  printf("ready\n");
  fflush(stdout);
  pthread_attr_t attr;
  pthread_attr_init(&attr);
  pthread_attr_setdetachstate(&attr, PTHREAD_CREATE_DETACHED);
  pthread_attr_setstacksize(&attr, 256 * 1024);
  for (;;) {
    int fd = accept4(ls, NULL, NULL, SOCK_CLOEXEC);
    if (fd < 0) {
      if (errno == EINTR || errno == ECONNABORTED || errno == EMFILE) continue;
      perror("accept");
      return 1;
    }
    pthread_t t;
    if (pthread_create(&t, &attr, connection, (void *)(intptr_t)fd) != 0) close(fd);
  }
}
