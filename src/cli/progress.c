/* SPDX-License-Identifier: MIT */
/*
 * The progress line on stderr, and signals: every signal that would
 * otherwise end mrsnap sets a flag that the progress callback hands back to
 * the library, which then stops cleanly (removing a partial image, thawing a
 * guest) and returns.
 */
#include <errno.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <unistd.h>

#include "cli.h"

static volatile sig_atomic_t interrupted;
static bool show;
static bool drawn;

static void on_signal(int sig)
{
	interrupted = sig;
}

int cli_interrupted(void)
{
	return interrupted;
}

/* The terminal's width: stderr's window, else $COLUMNS, else 80. */
static unsigned term_width(void)
{
	struct winsize ws;
	const char *env = getenv("COLUMNS");
	long v;

	if (ioctl(STDERR_FILENO, TIOCGWINSZ, &ws) == 0 && ws.ws_col > 0)
		return ws.ws_col;
	v = env ? strtol(env, NULL, 10) : 0;
	return v > 0 && v < 10000 ? (unsigned)v : 80;
}

void cli_progress_format(char *buf, size_t len, const struct mrs_progress *p, unsigned width)
{
	char done[32], total[32], rate[32], pct[16], eta[32] = "";
	double s = cli_seconds(p->elapsed_ns);
	/* One column short of the width: a line that fills it wraps on some terminals. */
	size_t fit = width > 1 ? width - 1 : 0;

	if (fit >= len)
		fit = len - 1;
	if (!p->bytes_total) {
		snprintf(buf, fit + 1, "%s", p->phase);
		return;
	}
	cli_fmt_bytes(done, sizeof(done), p->bytes_done);
	cli_fmt_bytes(total, sizeof(total), p->bytes_total);
	cli_fmt_bytes(rate, sizeof(rate), s > 0 ? (uint64_t)((double)p->bytes_moved / s) : 0);
	snprintf(pct, sizeof(pct), "%5.1f%%",
		 100.0 * (double)p->bytes_done / (double)p->bytes_total);
	if (p->bytes_done && p->bytes_done < p->bytes_total && s > 0.5)
		snprintf(eta, sizeof(eta), "  ETA %.0fs",
			 s * (double)(p->bytes_total - p->bytes_done) / (double)p->bytes_done);
	/* The longest form that fits, dropping the least useful parts first; else cut. */
	if ((size_t)snprintf(buf, len, "%-10s %s  %s / %s  %s/s%s", p->phase, pct, done, total,
			     rate, eta) <= fit)
		return;
	if ((size_t)snprintf(buf, len, "%-10s %s  %s / %s  %s/s", p->phase, pct, done, total,
			     rate) <= fit)
		return;
	if ((size_t)snprintf(buf, len, "%s %s  %s / %s", p->phase, pct, done, total) <= fit)
		return;
	snprintf(buf, len, "%s %s", p->phase, pct);
	buf[fit] = '\0';
}

/*
 * Redraw in place: shorter than the terminal, so it never wraps into a
 * trail of lines; blanks over what is left of a longer line before it.
 */
static void draw(const struct mrs_progress *p)
{
	static size_t last;
	unsigned width = term_width();
	char line[256];
	size_t n;

	cli_progress_format(line, sizeof(line), p, width);
	n = strlen(line);
	if (last >= width) /* the terminal got narrower */
		last = width - 1;
	fprintf(stderr, "\r%s%*s", line, last > n ? (int)(last - n) : 0, "");
	last = n;
	drawn = true;
}

static int on_progress(void *ctx, const struct mrs_progress *p)
{
	/* Not a byte while the guest is frozen: a write to a slow terminal or a
	 * full pipe would add to the downtime, or block it. */
	if (show && !p->frozen)
		draw(p);
	return interrupted != 0;
}

/*
 * The signals whose default action ends the process and that come from
 * outside: a hangup of the terminal or ssh session (SIGHUP), Ctrl-C and
 * Ctrl-\ (SIGINT, SIGQUIT), kill and timeout(1) (SIGTERM, or any with -s),
 * a stray SIGUSR1/2, and rlimits and timers (SIGXCPU, SIGALRM, SIGVTALRM,
 * SIGPROF). All end mrsnap the way SIGINT does: cleaned up and thawed.
 * Not the faults (SIGSEGV, SIGBUS, SIGILL, SIGFPE, SIGABRT, SIGSYS,
 * SIGTRAP): they mean mrsnap itself is broken and cannot go on. SIGPIPE and
 * SIGXFSZ are ignored: the write fails with EPIPE or EFBIG instead, and that
 * error takes the same clean way out.
 */
static const struct {
	int sig;
	const char *name;
} caught[] = {
    {SIGHUP, "SIGHUP"},	  {SIGINT, "SIGINT"},	{SIGQUIT, "SIGQUIT"}, {SIGTERM, "SIGTERM"},
    {SIGUSR1, "SIGUSR1"}, {SIGUSR2, "SIGUSR2"}, {SIGALRM, "SIGALRM"}, {SIGVTALRM, "SIGVTALRM"},
    {SIGPROF, "SIGPROF"}, {SIGXCPU, "SIGXCPU"}, {SIGPWR, "SIGPWR"},   {SIGSTKFLT, "SIGSTKFLT"},
    {SIGPOLL, "SIGPOLL"},
};

const char *cli_signal_name(int sig)
{
	for (size_t i = 0; i < sizeof(caught) / sizeof(caught[0]); i++)
		if (caught[i].sig == sig)
			return caught[i].name;
	return "a signal";
}

void cli_progress_setup(struct cli_common *c)
{
	struct sigaction sa;

	memset(&sa, 0, sizeof(sa));
	sa.sa_handler = on_signal;
	/*
	 * Not SA_RESETHAND: a second Ctrl-C must not kill us while the guest is
	 * frozen, or nobody would thaw it. Every wait is bounded; SIGKILL is
	 * there for the rest.
	 */
	sa.sa_flags = 0;
	sigemptyset(&sa.sa_mask);
	for (size_t i = 0; i < sizeof(caught) / sizeof(caught[0]); i++)
		sigaction(caught[i].sig, &sa, NULL);
	sa.sa_handler = SIG_IGN;
	sigaction(SIGPIPE, &sa, NULL);
	sigaction(SIGXFSZ, &sa, NULL);
	show = c->progress > 0 || (c->progress < 0 && !c->quiet && isatty(STDERR_FILENO));
	c->io.progress = on_progress;
	c->io.progress_ctx = NULL;
}

/*
 * SIGPIPE is ignored, so a reader that went away shows as a write error on
 * stdout: say so, rather than exit 0 with the output lost.
 */
int cli_finish_output(int code)
{
	if (cli_json_lost() && code == EXIT_OK)
		code = EXIT_FAILED; /* jw_end() said why */
	errno = 0;
	if (fflush(stdout) == 0 && !ferror(stdout))
		return code;
	cli_error("cannot write to standard output: %s", errno ? strerror(errno) : "write error");
	return code == EXIT_OK ? EXIT_FAILED : code;
}

void cli_progress_done(void)
{
	if (drawn)
		fputs("\r\033[K", stderr);
	drawn = false;
}
