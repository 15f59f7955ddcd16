/* SPDX-License-Identifier: MIT */
/*
 * failsys: run a command with one system call failing with a chosen errno,
 * as a filesystem or kernel that refuses an operation would make it fail.
 *
 *   failsys SYSCALL ERRNO CMD [ARG...]
 *
 * SYSCALL is one of the names in the table below; ERRNO a name from the
 * table below or a number. A seccomp filter (SECCOMP_RET_ERRNO) makes every
 * call of SYSCALL by CMD and its children fail without reaching the kernel;
 * nothing else changes. Exits 77 (a skip, for the tests) when the kernel or
 * the architecture has no seccomp filters, 2 on a usage error.
 */
#include <errno.h>
#include <linux/audit.h>
#include <linux/filter.h>
#include <linux/seccomp.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/syscall.h>
#include <unistd.h>

#if defined(__x86_64__)
#define ARCH AUDIT_ARCH_X86_64
#elif defined(__aarch64__)
#define ARCH AUDIT_ARCH_AARCH64
#endif

struct name {
	const char *name;
	long value;
};

static const struct name syscalls[] = {
    {"flock", SYS_flock},	  {"fsync", SYS_fsync},
    {"fdatasync", SYS_fdatasync}, {"fallocate", SYS_fallocate},
    {"ftruncate", SYS_ftruncate}, {"io_uring_setup", SYS_io_uring_setup},
};

static const struct name errnos[] = {
    {"EOPNOTSUPP", EOPNOTSUPP}, {"ENOTSUP", ENOTSUP}, {"EIO", EIO},	  {"ENOSPC", ENOSPC},
    {"EPERM", EPERM},		{"EINVAL", EINVAL},   {"ENOSYS", ENOSYS},
};

static long lookup(const struct name *t, size_t n, const char *s)
{
	char *end;
	long v;

	for (size_t i = 0; i < n; i++)
		if (!strcmp(t[i].name, s))
			return t[i].value;
	v = strtol(s, &end, 10);
	return *s && !*end && v > 0 ? v : -1;
}

int main(int argc, char **argv)
{
	long nr, e;

	if (argc < 4) {
		fprintf(stderr, "usage: failsys SYSCALL ERRNO CMD [ARG...]\n");
		return 2;
	}
	nr = lookup(syscalls, sizeof(syscalls) / sizeof(syscalls[0]), argv[1]);
	e = lookup(errnos, sizeof(errnos) / sizeof(errnos[0]), argv[2]);
	if (nr < 0 || e <= 0 || e > SECCOMP_RET_DATA) {
		fprintf(stderr, "failsys: unknown system call '%s' or errno '%s'\n", argv[1],
			argv[2]);
		return 2;
	}
#ifdef ARCH
	{
		struct sock_filter filter[] = {
		    BPF_STMT(BPF_LD | BPF_W | BPF_ABS, offsetof(struct seccomp_data, arch)),
		    BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, ARCH, 1, 0),
		    BPF_STMT(BPF_RET | BPF_K, SECCOMP_RET_ALLOW),
		    BPF_STMT(BPF_LD | BPF_W | BPF_ABS, offsetof(struct seccomp_data, nr)),
		    BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, (unsigned)nr, 0, 1),
		    BPF_STMT(BPF_RET | BPF_K, SECCOMP_RET_ERRNO | (unsigned)e),
		    BPF_STMT(BPF_RET | BPF_K, SECCOMP_RET_ALLOW),
		};
		struct sock_fprog prog = {sizeof(filter) / sizeof(filter[0]), filter};

		if (prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) ||
		    prctl(PR_SET_SECCOMP, SECCOMP_MODE_FILTER, &prog)) {
			fprintf(stderr, "failsys: no seccomp filter here: %s\n", strerror(errno));
			return 77;
		}
	}
	execvp(argv[3], argv + 3);
	fprintf(stderr, "failsys: cannot run '%s': %s\n", argv[3], strerror(errno));
	return 126;
#else
	fprintf(stderr, "failsys: seccomp filters are not set up for this architecture\n");
	return 77;
#endif
}
