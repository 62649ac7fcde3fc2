/* Breakout attempts run inside a container by tests/test_breakout.py. Built
 * static at test time. Each check prints one line "name result", where result
 * is "ok" when the call succeeded (the attack got through) or the errno name
 * when it was refused; the test compares these with what Docker's defaults give.
 * Nothing here writes to a host file even when a check gets through: writes
 * are only attempted as opens, never as data.
 *
 * usage: breakout_probe syscalls HOSTPID HOSTMARKER DISKMAJ DISKMIN
 *        breakout_probe watch-exe   (CVE-2019-5736: grab /proc/N/exe of processes
 *                                    entering the container, until /tmp/dy-stop exists) */
#define _GNU_SOURCE
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <sched.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <signal.h>
#include <sys/mount.h>
#include <sys/ptrace.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/sysmacros.h>
#include <sys/time.h>
#include <time.h>
#include <unistd.h>

static void report(const char *name, long r) {
    if (r < 0) {
        const char *n = strerrorname_np(errno);
        printf("%s %s\n", name, n ? n : "?");
    } else {
        printf("%s ok\n", name);
    }
    fflush(stdout);
}

static long open_close(const char *path, int flags) {
    int fd = open(path, flags);
    if (fd >= 0) close(fd);
    return fd;
}

static int syscalls(int argc, char **argv) {
    if (argc < 6) return 2;
    pid_t hostpid = atoi(argv[2]);
    const char *marker = argv[3];
    unsigned maj = atoi(argv[4]), min = atoi(argv[5]);
    char buf[64];

    report("mount_tmpfs", mount("none", "/mnt", "tmpfs", 0, NULL));
    report("mount_bind_proc", mount("/proc", "/mnt", NULL, MS_BIND, NULL));
    report("mount_proc", mount("proc", "/mnt", "proc", 0, NULL));
    report("umount_kcore_mask", umount2("/proc/kcore", MNT_DETACH));
    report("remount_proc_sys_rw", mount(NULL, "/proc/sys", NULL, MS_REMOUNT | MS_BIND, NULL));
    report("unshare_user", unshare(CLONE_NEWUSER));
    report("unshare_mnt", unshare(CLONE_NEWNS));
    report("unshare_userns_mnt", unshare(CLONE_NEWUSER | CLONE_NEWNS));
    {
        int fd = open("/proc/1/ns/mnt", O_RDONLY);
        report("setns_mnt", fd < 0 ? -1 : setns(fd, CLONE_NEWNS));
        if (fd >= 0) close(fd);
    }
    report("keyctl", syscall(SYS_keyctl, 0 /* KEYCTL_GET_KEYRING_ID */, -3, 0));
    report("add_key", syscall(SYS_add_key, "user", "dy", "x", 1, -3));
    report("request_key", syscall(SYS_request_key, "user", "dy", NULL, 0));
    {
        /* shocker: an ext4-style handle for the root inode (2) of the fs under "/" */
        struct { unsigned int bytes; int type; unsigned char h[8]; } fh = {8, 1, {2, 0, 0, 0, 0, 0, 0, 0}};
        int root = open("/", O_RDONLY | O_DIRECTORY);
        report("open_by_handle_at", syscall(SYS_open_by_handle_at, root, &fh, O_RDONLY));
        close(root);
    }
    report("kill_host_pid", kill(hostpid, 0));
    report("ptrace_host_pid", ptrace(PTRACE_ATTACH, hostpid, 0, 0));
    report("bpf", syscall(SYS_bpf, 0, NULL, 0));
    report("perf_event_open", syscall(SYS_perf_event_open, NULL, 0, -1, -1, 0));
    report("init_module", syscall(SYS_init_module, NULL, 0, ""));
    report("finit_module", syscall(SYS_finit_module, -1, "", 0));
    report("delete_module", syscall(SYS_delete_module, "dy_none", 0));
    report("kexec_load", syscall(SYS_kexec_load, 0, 0, NULL, 0));
    report("iopl", syscall(SYS_iopl, 3));
    report("ioperm", syscall(SYS_ioperm, 0x80, 1, 1));
    report("reboot", syscall(SYS_reboot, 0xfee1dead, 672274793, 0 /* CAD_OFF */, NULL));
    report("swapoff", syscall(SYS_swapoff, "/dev/null"));
    report("userfaultfd", syscall(SYS_userfaultfd, 0));
    {
        struct timespec ts;
        clock_gettime(CLOCK_REALTIME, &ts);
        report("clock_settime", clock_settime(CLOCK_REALTIME, &ts));
    }
    report("acct", syscall(SYS_acct, NULL));
    report("syslog_read", syscall(SYS_syslog, 3 /* READ_ALL */, buf, sizeof buf));
    report("lookup_dcookie", syscall(SYS_lookup_dcookie, 0, buf, sizeof buf));
    report("quotactl", syscall(SYS_quotactl, 0, NULL, 0, NULL));
    report("pivot_root", syscall(SYS_pivot_root, "/tmp", "/tmp"));
    {
        /* The classic chroot escape: chroot deeper, then climb with "..". */
        mkdir("/tmp/dy-chroot", 0755);
        int root = open("/", O_RDONLY | O_DIRECTORY);
        long r = chroot("/tmp/dy-chroot");
        if (r == 0) {
            fchdir(root);
            for (int i = 0; i < 64; i++) chdir("..");
            r = chroot(".");
        }
        report("chroot_climb", r);
        report("chroot_climb_sees_host", access(marker, F_OK));
        close(root);
    }
    /* Block device of the host's root disk, and /dev/mem, /dev/kmsg, /dev/port. */
    {
        struct { const char *name; mode_t type; unsigned ma, mi; } devs[] = {
            {"disk", S_IFBLK, maj, min}, {"mem", S_IFCHR, 1, 1}, {"kmem", S_IFCHR, 1, 2},
            {"port", S_IFCHR, 1, 4}, {"kmsg", S_IFCHR, 1, 11}, {"loop0", S_IFBLK, 7, 0},
        };
        for (unsigned i = 0; i < sizeof devs / sizeof devs[0]; i++) {
            char path[64], name[64];
            snprintf(path, sizeof path, "/tmp/dy-%s", devs[i].name);
            unlink(path);
            long r = mknod(path, devs[i].type | 0600, makedev(devs[i].ma, devs[i].mi));
            snprintf(name, sizeof name, "mknod_%s", devs[i].name);
            report(name, r);
            snprintf(name, sizeof name, "open_%s", devs[i].name);
            report(name, r < 0 ? -1 : open_close(path, O_RDONLY));
            unlink(path);
        }
    }
    return 0;
}

/* CVE-2019-5736: while `docker exec` processes are entering the container,
 * try to get a writable handle on their executable (/proc/N/exe) or a view of
 * their fds, cwd and root. Prints every handle obtained that is not the
 * container's own busybox or this probe. */
static int watch_exe(int argc, char **argv) {
    (void)argc, (void)argv;
    time_t end = time(NULL) + 120; /* a bound in case the test never stops us */
    pid_t self = getpid();
    long tries = 0;
    printf("watching\n");
    fflush(stdout);
    while (time(NULL) < end && access("/tmp/dy-stop", F_OK) != 0) {
        DIR *d = opendir("/proc");
        if (!d) return 1;
        struct dirent *e;
        while ((e = readdir(d))) {
            int pid = atoi(e->d_name);
            if (pid <= 1 || pid == self) continue;
            char p[320], link[512];
            snprintf(p, sizeof p, "/proc/%d/exe", pid);
            tries++;
            int fd = open(p, O_PATH);
            if (fd >= 0) {
                char fp[64];
                snprintf(fp, sizeof fp, "/proc/self/fd/%d", fd);
                ssize_t n = readlink(fp, link, sizeof link - 1);
                link[n > 0 ? n : 0] = 0;
                /* The container's own binaries are its own to rewrite. */
                if (strcmp(link, "/bin/busybox") && strcmp(link, "/probe")) {
                    printf("FOREIGN-EXE %d %s\n", pid, link);
                    int w = open(fp, O_WRONLY);
                    if (w >= 0) {
                        printf("WRITABLE-EXE %d %s\n", pid, link);
                        close(w);
                    }
                }
                close(fd);
            }
            for (const char *what = "cwd"; what; what = strcmp(what, "cwd") == 0 ? "root" : NULL) {
                snprintf(p, sizeof p, "/proc/%d/%s", pid, what);
                ssize_t n = readlink(p, link, sizeof link - 1);
                if (n > 0) {
                    link[n] = 0;
                    if (link[0] != '/')
                        printf("FOREIGN-%s %d %s\n", what, pid, link);
                }
            }
            snprintf(p, sizeof p, "/proc/%d/fd", pid);
            DIR *fds = opendir(p);
            if (fds) {
                struct dirent *f;
                while ((f = readdir(fds))) {
                    if (f->d_name[0] == '.') continue;
                    snprintf(p, sizeof p, "/proc/%d/fd/%s", pid, f->d_name);
                    ssize_t n = readlink(p, link, sizeof link - 1);
                    if (n <= 0) continue;
                    link[n] = 0;
                    struct stat st;
                    /* A directory fd reachable through /proc is a way out of the root. */
                    if (stat(p, &st) == 0 && S_ISDIR(st.st_mode))
                        printf("DIR-FD %d %s -> %s\n", pid, f->d_name, link);
                }
                closedir(fds);
            }
            fflush(stdout);
        }
        closedir(d);
    }
    printf("done %ld\n", tries);
    return 0;
}

int main(int argc, char **argv) {
    /* Only ever inside the test's container, whose image has this probe at /probe. */
    struct stat a, b;
    if (stat("/proc/self/exe", &a) || stat("/probe", &b) || a.st_ino != b.st_ino || a.st_dev != b.st_dev) {
        fprintf(stderr, "refusing to run outside the test container\n");
        return 3;
    }
    if (argc > 1 && strcmp(argv[1], "syscalls") == 0) return syscalls(argc, argv);
    if (argc > 1 && strcmp(argv[1], "watch-exe") == 0) return watch_exe(argc, argv);
    fprintf(stderr, "usage: %s syscalls|watch-exe ...\n", argv[0]);
    return 2;
}
