/* hangpeer: a RAIDA peer that accepts TCP connections and never answers (bench/healing.sh).
 *
 *   hangpeer PORT
 *
 * Listens on 127.0.0.1:PORT, accepts every connection, reads and discards what arrives, and
 * closes a connection only once the other side has closed it. Runs until SIGTERM or SIGINT,
 * then prints how many connections it accepted and how many were still open. In C rather
 * than a script so that it takes little CPU from the server it is measured beside.
 */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <unistd.h>

static volatile sig_atomic_t running = 1;
static void stop(int sig) { (void)sig; running = 0; }

int main(int argc, char **argv) {
  if (argc != 2) { fprintf(stderr, "usage: hangpeer PORT\n"); return 2; }
  int port = atoi(argv[1]);
  struct sigaction sa;
  memset(&sa, 0, sizeof sa);
  sa.sa_handler = stop;
  sigaction(SIGTERM, &sa, NULL);
  sigaction(SIGINT, &sa, NULL);
  int l = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK, 0);
  int one = 1;
  setsockopt(l, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
  struct sockaddr_in a;
  memset(&a, 0, sizeof a);
  a.sin_family = AF_INET;
  a.sin_port = htons(port);
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  if (bind(l, (struct sockaddr *)&a, sizeof a) < 0 || listen(l, 4096) < 0) { perror("listen"); return 1; }
  int ep = epoll_create1(0);
  struct epoll_event ev = {.events = EPOLLIN, .data.fd = l};
  epoll_ctl(ep, EPOLL_CTL_ADD, l, &ev);
  printf("hanging peer on 127.0.0.1:%d\n", port);
  fflush(stdout);
  long accepted = 0, open_ = 0;
  struct epoll_event evs[256];
  char buf[4096];
  while (running) {
    int n = epoll_wait(ep, evs, 256, 200);
    for (int i = 0; i < n; i++) {
      int fd = evs[i].data.fd;
      if (fd == l) {
        int c;
        while ((c = accept4(l, NULL, NULL, SOCK_NONBLOCK)) >= 0) {
          struct epoll_event cev = {.events = EPOLLIN, .data.fd = c};
          epoll_ctl(ep, EPOLL_CTL_ADD, c, &cev);
          accepted++;
          open_++;
        }
        continue;
      }
      ssize_t r;
      while ((r = read(fd, buf, sizeof buf)) > 0) {}
      if (r == 0 || (r < 0 && errno != EAGAIN && errno != EINTR)) {
        close(fd); /* also leaves the epoll set */
        open_--;
      }
    }
  }
  printf("hanging peer: accepted %ld, still open %ld\n", accepted, open_);
  return 0;
}
