/* The stand-in for critest's nginx images (e2e-test-images/nginx, hostnet-nginx):
 * an HTTP server answering 200 to every request, which shows itself as nginx's
 * master does ("nginx: master process ..." in /proc/PID/cmdline, comm "nginx")
 * and writes /var/run/nginx.pid, as critest's namespace specs look for.
 * Usage: nginx [-p PORT] (default 80). Built static by tools/critest/run.py. */
#include <arpa/inet.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

static const char TITLE[] = "nginx: master process nginx -g daemon off;";
static const char BODY[] = "<html><body><h1>Welcome to nginx!</h1></body></html>\n";

int main(int argc, char **argv) {
    int port = 80;
    for (int i = 1; i + 1 < argc; i++)
        if (strcmp(argv[i], "-p") == 0) port = atoi(argv[i + 1]);
    if (strcmp(argv[0], TITLE) != 0) {
        /* argv[0] is what /proc/PID/cmdline starts with; the binary's name
         * (comm, what pidof matches) stays "nginx": exec it by its path, not /proc/self/exe. */
        char self[4096];
        ssize_t n = readlink("/proc/self/exe", self, sizeof self - 1);
        if (n < 0) { perror("readlink"); return 1; }
        self[n] = 0;
        argv[0] = (char *)TITLE;
        execv(self, argv);
        perror("execv");
        return 1;
    }
    FILE *f = fopen("/var/run/nginx.pid", "w");
    if (f) { fprintf(f, "%d\n", (int)getpid()); fclose(f); }
    int s = socket(AF_INET6, SOCK_STREAM, 0);
    int off = 0, on = 1;
    setsockopt(s, IPPROTO_IPV6, IPV6_V6ONLY, &off, sizeof off);
    setsockopt(s, SOL_SOCKET, SO_REUSEADDR, &on, sizeof on);
    struct sockaddr_in6 a = {.sin6_family = AF_INET6, .sin6_port = htons(port)};
    if (bind(s, (struct sockaddr *)&a, sizeof a) < 0 || listen(s, 64) < 0) {
        perror("bind/listen");
        return 1;
    }
    printf("nginx stand-in listening on :%d\n", port);
    fflush(stdout);
    char head[256], req[4096];
    snprintf(head, sizeof head, "HTTP/1.1 200 OK\r\nServer: nginx\r\nContent-Type: text/html\r\n"
             "Content-Length: %zu\r\nConnection: close\r\n\r\n", strlen(BODY));
    for (;;) {
        int c = accept(s, NULL, NULL);
        if (c < 0) continue;
        if (read(c, req, sizeof req) > 0 && strncmp(req, "GET ", 4) == 0) {
            if (write(c, head, strlen(head)) < 0 || write(c, BODY, strlen(BODY)) < 0) { /* peer gone */ }
        }
        close(c);
    }
}
