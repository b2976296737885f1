#define _GNU_SOURCE
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/ptrace.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

/* probe tiocsti TEXT: pushes TEXT and a newline into the terminal behind fds 0, 1 and 2.
   probe hunt MS [PREFIX]: for MS milliseconds, watches every process of the container that still
   runs the host's runtime binary (its Name starts with PREFIX, "gocker" by default): its Seccomp mode, whether its
   /proc/PID/exe opens for reading and for writing, and whether it can be ptraced. */
int main(int argc, char **argv) {
    if (argc < 3) return 2;
    if (!strcmp(argv[1], "tiocsti")) {
        for (int fd = 0; fd < 3; fd++) {
            int err = 0;
            char line[256];
            snprintf(line, sizeof line, "%s\n", argv[2]);
            for (char *c = line; *c; c++)
                if (ioctl(fd, TIOCSTI, c) < 0) { err = errno; break; }
            printf("tiocsti fd=%d errno=%d\n", fd, err);
        }
        return 0;
    }
    if (!strcmp(argv[1], "hunt")) {
        struct timespec t0, t;
        clock_gettime(CLOCK_MONOTONIC, &t0);
        long ms = atol(argv[2]), seen = 0, me = getpid();
        const char *prefix = argc > 3 ? argv[3] : "gocker";
        setvbuf(stdout, NULL, _IOLBF, 0);
        printf("hunting\n");
        for (;;) {
            clock_gettime(CLOCK_MONOTONIC, &t);
            if ((t.tv_sec - t0.tv_sec) * 1000 + (t.tv_nsec - t0.tv_nsec) / 1000000 > ms) break;
            DIR *d = opendir("/proc");
            struct dirent *e;
            while (d && (e = readdir(d))) {
                long pid = atol(e->d_name);
                if (pid <= 0 || pid == me) continue;
                char p[64], buf[4096];
                snprintf(p, sizeof p, "/proc/%ld/status", pid);
                int fd = open(p, O_RDONLY);
                if (fd < 0) continue;
                int n = read(fd, buf, sizeof buf - 1);
                close(fd);
                if (n <= 0) continue;
                buf[n] = 0;
                char *name = strstr(buf, "Name:\t");
                if (!name || strncmp(name + 6, prefix, strlen(prefix))) continue;
                char *sc = strstr(buf, "Seccomp:\t");
                int seccomp = sc ? atoi(sc + 9) : -1;
                snprintf(p, sizeof p, "/proc/%ld/exe", pid);
                /* What a success reached: the host binary, or already the exec'd program (an
                   execve in progress keeps the old Name for a moment). */
                char got_r[256] = "-", got_w[256] = "-", got_p[256] = "-", fdp[64];
                int r = open(p, O_RDONLY), re = r < 0 ? errno : 0;
                if (r >= 0) { snprintf(fdp, sizeof fdp, "/proc/self/fd/%d", r); int k = readlink(fdp, got_r, 255); got_r[k > 0 ? k : 0] = 0; close(r); }
                int w = open(p, O_WRONLY | O_APPEND), we = w < 0 ? errno : 0;
                if (w >= 0) { snprintf(fdp, sizeof fdp, "/proc/self/fd/%d", w); int k = readlink(fdp, got_w, 255); got_w[k > 0 ? k : 0] = 0; close(w); }
                long pt = ptrace(PTRACE_SEIZE, pid, 0, 0);
                int pe = pt < 0 ? errno : 0;
                if (pt == 0) {
                    int k = readlink(p, got_p, 255); got_p[k > 0 ? k : 0] = 0;
                    /* Let it go at once: a tracee's exit would otherwise wait for us. */
                    int st;
                    if (ptrace(PTRACE_INTERRUPT, pid, 0, 0) == 0 && waitpid(pid, &st, __WALL) == pid)
                        ptrace(PTRACE_DETACH, pid, 0, 0);
                }
                printf("pid=%ld seccomp=%d exe_read=%d:%s exe_write=%d:%s ptrace=%d:%s\n", pid, seccomp, re, got_r, we, got_w, pe, got_p);
                seen++;
            }
            if (d) closedir(d);
        }
        printf("hunt done seen=%ld\n", seen);
        return 0;
    }
    return 2;
}
