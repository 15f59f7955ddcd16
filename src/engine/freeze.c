/* SPDX-License-Identifier: MIT */
/*
 * Freeze providers: processes (SIGSTOP/SIGCONT), cgroups (v2 cgroup.freeze
 * or v1 freezer.state) and a pair of shell commands. A process or cgroup that
 * was already stopped or frozen before the freeze is left so by the thaw:
 * mrsnap undoes only what it did.
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <spawn.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "error.h"
#include "extstruct.h"
#include "freeze.h"

extern char **environ;

/* How long a freeze may take to show before it counts as failed. */
#define FREEZE_TIMEOUT_MS 10000

static void sleep_ms(unsigned ms)
{
	struct timespec ts = {ms / 1000, (long)(ms % 1000) * 1000000L};

	nanosleep(&ts, NULL);
}

int mrs_freezer_new(struct mrs_freezer **out, const struct mrs_freezer_ops *ops, void *ctx,
		    struct mrs_error *err)
{
	struct mrs_freezer_ops full;
	struct mrs_freezer *f;
	int ret;

	*out = NULL;
	ret = mrs_struct_in(&full, sizeof(full), ops, "mrs_freezer_ops", err);
	if (ret)
		return ret;
	if (!ops || !full.freeze || !full.thaw)
		return mrs_err(err, -EINVAL, "a freezer needs a freeze and a thaw operation");
	f = calloc(1, sizeof(*f));
	if (!f)
		return mrs_err(err, -ENOMEM, "out of memory");
	f->ops = full;
	f->ctx = ctx;
	*out = f;
	return 0;
}

void mrs_freezer_free(struct mrs_freezer *f)
{
	if (!f)
		return;
	if (f->ops.destroy)
		f->ops.destroy(f->ctx);
	free(f);
}

int mrs_freezer_freeze(struct mrs_freezer *f, struct mrs_error *err)
{
	f->attempted = true;
	return f->ops.freeze(f->ctx, err);
}

int mrs_freezer_thaw(struct mrs_freezer *f, struct mrs_error *err)
{
	f->attempted = false;
	return f->ops.thaw(f->ctx, err);
}

int mrs_freeze_all(struct mrs_freezer *const *f, unsigned n, struct mrs_error *err)
{
	for (unsigned i = 0; i < n; i++) {
		int ret = mrs_freezer_freeze(f[i], err);

		if (ret) {
			struct mrs_error terr;

			if (mrs_thaw_all(f, n, &terr))
				mrs_err_suffix(err,
					       "; and cannot thaw the guest, it may still be "
					       "frozen: %s",
					       terr.msg);
			return ret;
		}
	}
	return 0;
}

int mrs_thaw_all(struct mrs_freezer *const *f, unsigned n, struct mrs_error *err)
{
	int first = 0;

	for (unsigned i = n; i-- > 0;) {
		struct mrs_error e;
		int ret;

		if (!f[i]->attempted)
			continue;
		ret = mrs_freezer_thaw(f[i], &e);
		if (ret && !first) {
			first = ret;
			if (err)
				*err = e;
		}
	}
	return first;
}

/* ---- processes: SIGSTOP, and wait until every thread shows it ---------- */

struct pids {
	int *pid;
	bool *was_stopped; /* stopped before we came: left stopped by the thaw */
	unsigned n;
	unsigned stopped; /* pids signalled so far */
};

/* The state letter in /proc/PID/task/TID/stat: after the ')' that ends comm. */
static char task_state(const char *stat_path)
{
	char buf[512], *paren;
	ssize_t len;
	int fd = open(stat_path, O_RDONLY | O_CLOEXEC);

	if (fd < 0)
		return 0;
	len = read(fd, buf, sizeof(buf) - 1);
	close(fd);
	if (len <= 0)
		return 0;
	buf[len] = '\0';
	paren = strrchr(buf, ')');
	return paren && paren[1] == ' ' ? paren[2] : 0;
}

/*
 * 1 if every thread of pid is stopped, 0 if not yet, -errno if it is gone.
 * Zombie and dead threads count as stopped: they run no more, and a process
 * whose main thread has exited (pthread_exit) keeps a zombie leader while
 * its other threads run on.
 */
static int all_threads_stopped(int pid)
{
	char path[64], stat[64 + 256 + 8];
	struct dirent *de;
	DIR *d;
	int ret = 1;

	snprintf(path, sizeof(path), "/proc/%d/task", pid);
	d = opendir(path);
	if (!d)
		return -errno;
	while ((de = readdir(d))) {
		char s;

		if (de->d_name[0] == '.')
			continue;
		snprintf(stat, sizeof(stat), "%s/%s/stat", path, de->d_name);
		s = task_state(stat);
		if (s != 'T' && s != 't' && s != 'Z' && s != 'X' && s != 0) { /* 0: just exited */
			ret = 0;
			break;
		}
	}
	closedir(d);
	return ret;
}

static int pids_freeze(void *ctx, struct mrs_error *err)
{
	struct pids *p = ctx;

	/*
	 * A process that is stopped already (by its owner, a debugger, an
	 * earlier mrsnap with --leave-frozen) still gets the SIGSTOP, which
	 * changes nothing, but not the SIGCONT.
	 */
	for (p->stopped = 0; p->stopped < p->n; p->stopped++) {
		p->was_stopped[p->stopped] = all_threads_stopped(p->pid[p->stopped]) == 1;
		if (kill(p->pid[p->stopped], SIGSTOP))
			return mrs_err_errno(err, -errno, "cannot stop process %d",
					     p->pid[p->stopped]);
	}
	for (unsigned i = 0; i < p->n; i++) {
		unsigned waited = 0;
		int ret;

		while ((ret = all_threads_stopped(p->pid[i])) == 0 && waited < FREEZE_TIMEOUT_MS) {
			sleep_ms(1);
			waited++;
		}
		if (ret < 0)
			return mrs_err_errno(err, ret, "process %d vanished while stopping",
					     p->pid[i]);
		if (ret == 0)
			return mrs_err(err, -ETIMEDOUT, "process %d did not stop within %d ms",
				       p->pid[i], FREEZE_TIMEOUT_MS);
	}
	return 0;
}

static int pids_thaw(void *ctx, struct mrs_error *err)
{
	struct pids *p = ctx;
	int ret = 0;

	for (unsigned i = 0; i < p->stopped; i++)
		if (!p->was_stopped[i] && kill(p->pid[i], SIGCONT) && !ret)
			ret = mrs_err_errno(err, -errno, "cannot resume process %d", p->pid[i]);
	p->stopped = 0;
	return ret;
}

static void pids_destroy(void *ctx)
{
	struct pids *p = ctx;

	free(p->pid);
	free(p->was_stopped);
	free(p);
}

static const struct mrs_freezer_ops pids_ops = {sizeof(pids_ops), pids_freeze, pids_thaw,
						pids_destroy};

int mrs_freezer_new_pids(struct mrs_freezer **out, const int *pids, unsigned n,
			 struct mrs_error *err)
{
	struct pids *p = calloc(1, sizeof(*p));

	*out = NULL;
	if (!p || !(p->pid = calloc(n ? n : 1, sizeof(int))) ||
	    !(p->was_stopped = calloc(n ? n : 1, sizeof(bool)))) {
		if (p)
			pids_destroy(p);
		return mrs_err(err, -ENOMEM, "out of memory");
	}
	for (unsigned i = 0; i < n; i++) {
		if (pids[i] <= 0 || kill(pids[i], 0)) {
			int e = pids[i] <= 0 ? EINVAL : errno;

			pids_destroy(p);
			return mrs_err_errno(err, -e, "cannot freeze process %d", pids[i]);
		}
		p->pid[i] = pids[i];
	}
	p->n = n;
	if (mrs_freezer_new(out, &pids_ops, p, err)) {
		pids_destroy(p);
		return -ENOMEM;
	}
	return 0;
}

/* ---- cgroups: v2 cgroup.freeze, v1 freezer.state ------------------------ */

struct cgroup {
	char *dir;
	bool v2;
	bool was_frozen; /* frozen by someone else before: left frozen by the thaw */
};

static int write_file(const char *dir, const char *name, const char *text, struct mrs_error *err)
{
	char path[4096];
	int fd, ret = 0;

	snprintf(path, sizeof(path), "%s/%s", dir, name);
	fd = open(path, O_WRONLY | O_CLOEXEC);
	if (fd < 0)
		return mrs_err_errno(err, -errno, "cannot open '%s'", path);
	if (write(fd, text, strlen(text)) != (ssize_t)strlen(text))
		ret = mrs_err_errno(err, -errno, "cannot write '%s' to '%s'", text, path);
	close(fd);
	return ret;
}

/* Whether the file dir/name contains needle; false if it cannot be read. */
static bool file_has(const char *dir, const char *name, const char *needle)
{
	char path[4096], buf[4096];
	ssize_t len;
	int fd;

	snprintf(path, sizeof(path), "%s/%s", dir, name);
	fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return false;
	len = read(fd, buf, sizeof(buf) - 1);
	close(fd);
	if (len <= 0)
		return false;
	buf[len] = '\0';
	return strstr(buf, needle) != NULL;
}

/*
 * Whether the cgroup itself was asked to freeze (not only an ancestor of it,
 * which our thaw would not undo anyway). v1 kernels without
 * freezer.self_freezing: its freezer.state.
 */
static bool cgroup_self_frozen(const struct cgroup *c)
{
	char path[4096];

	if (c->v2)
		return file_has(c->dir, "cgroup.freeze", "1");
	snprintf(path, sizeof(path), "%s/freezer.self_freezing", c->dir);
	if (access(path, R_OK) == 0)
		return file_has(c->dir, "freezer.self_freezing", "1");
	return file_has(c->dir, "freezer.state", "FROZEN") ||
	       file_has(c->dir, "freezer.state", "FREEZING");
}

static int cgroup_freeze(void *ctx, struct mrs_error *err)
{
	struct cgroup *c = ctx;
	int ret;

	c->was_frozen = cgroup_self_frozen(c);
	ret = c->v2 ? write_file(c->dir, "cgroup.freeze", "1", err)
		    : write_file(c->dir, "freezer.state", "FROZEN", err);
	if (ret)
		return ret;
	for (unsigned waited = 0; waited < FREEZE_TIMEOUT_MS; waited++) {
		if (c->v2 ? file_has(c->dir, "cgroup.events", "frozen 1")
			  : file_has(c->dir, "freezer.state", "FROZEN"))
			return 0;
		sleep_ms(1);
	}
	return mrs_err(err, -ETIMEDOUT, "cgroup '%s' did not freeze within %d ms", c->dir,
		       FREEZE_TIMEOUT_MS);
}

static int cgroup_thaw(void *ctx, struct mrs_error *err)
{
	struct cgroup *c = ctx;

	if (c->was_frozen)
		return 0;
	return c->v2 ? write_file(c->dir, "cgroup.freeze", "0", err)
		     : write_file(c->dir, "freezer.state", "THAWED", err);
}

static void cgroup_destroy(void *ctx)
{
	struct cgroup *c = ctx;

	free(c->dir);
	free(c);
}

static const struct mrs_freezer_ops cgroup_ops = {sizeof(cgroup_ops), cgroup_freeze, cgroup_thaw,
						  cgroup_destroy};

int mrs_freezer_new_cgroup(struct mrs_freezer **out, const char *dir, struct mrs_error *err)
{
	struct cgroup *c = calloc(1, sizeof(*c));
	char path[4096];

	*out = NULL;
	if (!c || !(c->dir = strdup(dir))) {
		free(c);
		return mrs_err(err, -ENOMEM, "out of memory");
	}
	snprintf(path, sizeof(path), "%s/cgroup.freeze", dir);
	if (access(path, W_OK) == 0) {
		c->v2 = true;
	} else {
		snprintf(path, sizeof(path), "%s/freezer.state", dir);
		if (access(path, W_OK)) {
			cgroup_destroy(c);
			return mrs_err(err, -ENOENT,
				       "'%s' is not a cgroup that can be frozen (no writable "
				       "cgroup.freeze or freezer.state)",
				       dir);
		}
	}
	if (mrs_freezer_new(out, &cgroup_ops, c, err)) {
		cgroup_destroy(c);
		return -ENOMEM;
	}
	return 0;
}

/* ---- commands: run through /bin/sh -------------------------------------- */

struct commands {
	char *freeze, *thaw;
};

/*
 * The command runs in a process group of its own, so that a Ctrl-C (or a
 * hangup) meant for mrsnap's group does not kill a thaw command half-way:
 * mrsnap handles those signals and thaws. Signals a caller ignores (mrsnap
 * ignores SIGPIPE) get their default action back in the command.
 */
static int spawn_shell(pid_t *pid, const char *cmd)
{
	char *argv[] = {"sh", "-c", (char *)cmd, NULL};
	posix_spawn_file_actions_t fa;
	posix_spawnattr_t attr;
	sigset_t dfl;
	int ret;

	/*
	 * stdin from /dev/null: in a process group of its own the command is in
	 * the background, and one that read the terminal (a password prompt)
	 * would be stopped by SIGTTIN with the guest frozen.
	 */
	ret = posix_spawn_file_actions_init(&fa);
	if (ret)
		return ret;
	ret = posix_spawn_file_actions_addopen(&fa, 0, "/dev/null", O_RDONLY, 0);
	if (!ret)
		ret = posix_spawnattr_init(&attr);
	if (ret) {
		posix_spawn_file_actions_destroy(&fa);
		return ret;
	}
	sigemptyset(&dfl);
	sigaddset(&dfl, SIGPIPE);
	sigaddset(&dfl, SIGXFSZ);
	ret = posix_spawnattr_setflags(&attr, POSIX_SPAWN_SETPGROUP | POSIX_SPAWN_SETSIGDEF);
	if (!ret)
		ret = posix_spawnattr_setpgroup(&attr, 0);
	if (!ret)
		ret = posix_spawnattr_setsigdefault(&attr, &dfl);
	if (!ret)
		ret = posix_spawn(pid, "/bin/sh", &fa, &attr, argv, environ);
	posix_spawnattr_destroy(&attr);
	posix_spawn_file_actions_destroy(&fa);
	return ret;
}

static int run_shell(const char *what, const char *cmd, struct mrs_error *err)
{
	int status, stopsig, ret;
	pid_t pid;

	ret = spawn_shell(&pid, cmd);
	if (ret)
		return mrs_err_errno(err, -ret, "cannot run the %s command", what);
	/*
	 * WUNTRACED: a command that stops (it wrote to the terminal, or stopped
	 * itself) would otherwise be waited for forever, the guest frozen.
	 */
	for (;;) {
		if (waitpid(pid, &status, WUNTRACED) < 0) {
			if (errno == EINTR)
				continue;
			return mrs_err_errno(err, -errno, "cannot wait for the %s command", what);
		}
		if (!WIFSTOPPED(status))
			break;
		stopsig = WSTOPSIG(status);
		kill(-pid, SIGKILL); /* its own process group */
		while (waitpid(pid, &status, 0) < 0 && errno == EINTR)
			;
		return mrs_err(err, -ECHILD, "the %s command stopped (%s) and was killed: %s",
			       what, strsignal(stopsig), cmd);
	}
	if (WIFEXITED(status) && WEXITSTATUS(status) == 0)
		return 0;
	if (WIFEXITED(status))
		return mrs_err(err, -ECHILD, "the %s command exited with status %d: %s", what,
			       WEXITSTATUS(status), cmd);
	return mrs_err(err, -ECHILD, "the %s command was killed by signal %d: %s", what,
		       WTERMSIG(status), cmd);
}

static int commands_freeze(void *ctx, struct mrs_error *err)
{
	return run_shell("freeze", ((struct commands *)ctx)->freeze, err);
}

static int commands_thaw(void *ctx, struct mrs_error *err)
{
	return run_shell("thaw", ((struct commands *)ctx)->thaw, err);
}

static void commands_destroy(void *ctx)
{
	struct commands *c = ctx;

	free(c->freeze);
	free(c->thaw);
	free(c);
}

static const struct mrs_freezer_ops commands_ops = {sizeof(commands_ops), commands_freeze, commands_thaw,
						    commands_destroy};

int mrs_freezer_new_commands(struct mrs_freezer **out, const char *freeze_cmd, const char *thaw_cmd,
			     struct mrs_error *err)
{
	struct commands *c = calloc(1, sizeof(*c));

	*out = NULL;
	if (!c || !(c->freeze = strdup(freeze_cmd)) || !(c->thaw = strdup(thaw_cmd))) {
		if (c)
			commands_destroy(c);
		return mrs_err(err, -ENOMEM, "out of memory");
	}
	if (mrs_freezer_new(out, &commands_ops, c, err)) {
		commands_destroy(c);
		return -ENOMEM;
	}
	return 0;
}
