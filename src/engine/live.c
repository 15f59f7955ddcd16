/* SPDX-License-Identifier: MIT */
/*
 * The live-round policy (docs/DESIGN.md, "Live rounds").
 *
 * The model. A round reads and hashes every page of RAM (S pages scanned;
 * tmpfs holes count, and cost little) and writes the pages whose hash
 * changed (W bytes). Its duration is taken to be
 *
 *	d = a * S + b * W
 *
 * with a the cost of scanning one page and b the cost of writing one byte.
 * The channels overlap reading with writing, so the sum errs long, which is
 * the safe side for a downtime target. The frozen round scans what the last
 * live round scanned and is expected to write what it wrote (the pages that
 * changed during one round), so its estimate is a * S_last + b * W_last.
 * Until this model, the estimate was W_last at the average write rate of
 * the live rounds: the frozen round's scan of all of RAM, most of its time
 * when little is dirty, was left out.
 *
 * a and b are the least-squares fit over the live rounds that are of the
 * frozen round's kind: rounds 1, 2, ... (round 0 writes every page to fresh
 * blocks of a new file and compares nothing; it is used only while it is
 * the only round). So:
 * - after round 0 the estimate is round 0's duration, as before this model:
 *   one round cannot tell scanning from writing, but every split predicts
 *   its own duration for a round like it;
 * - after round 1 it is round 1's duration, for the same reason;
 * - from then on, the fitted line at the last round, which smooths a round
 *   slowed or sped up by the running guest.
 * A fit with a negative cost (noise: durations that fall as rounds write
 * more, or rise so steeply that scanning would cost less than nothing) and
 * rounds that all wrote in the same proportion to their scan do not tell
 * the costs apart; then every round's time is charged to its scan, the one
 * cost the frozen round surely has.
 */
#include "live.h"

/*
 * Least squares with two regressors, S and W, without an intercept, in a
 * form that does not cancel: first a0, the scan cost if scanning took all
 * the time; then b from what W adds beyond its part along S (W' = W - k S,
 * k = sum(S W) / sum(S S)); then a = a0 - b k. The rounds tell the costs
 * apart when W' is not zero but for rounding.
 */
void mrs_live_fit(const struct mrs_round_stats *r, unsigned n, struct mrs_live_costs *costs)
{
	double ss = 0, sw = 0, sd = 0, ww = 0, pp = 0, pe = 0, a0, k;

	for (unsigned i = 0; i < n; i++) {
		double s = (double)r[i].pages_scanned, w = (double)r[i].bytes_written;

		ss += s * s;
		sw += s * w;
		sd += s * (double)r[i].duration_ns;
		ww += w * w;
	}
	a0 = ss > 0 ? sd / ss : 0;
	k = ss > 0 ? sw / ss : 0;
	for (unsigned i = 0; i < n; i++) {
		double s = (double)r[i].pages_scanned;
		double p = (double)r[i].bytes_written - k * s; /* W' */
		double e = (double)r[i].duration_ns - a0 * s;  /* what the scan leaves */

		pp += p * p;
		pe += p * e;
	}
	costs->scan_ns_per_page = a0;
	costs->write_ns_per_byte = 0;
	if (pp > 1e-24 * ww) {
		double b = pe / pp, a = a0 - b * k;

		if (a >= 0 && b >= 0) {
			costs->scan_ns_per_page = a;
			costs->write_ns_per_byte = b;
		}
	}
}

/* Round 0 alone, or the rounds after it. */
static void fit_rounds(const struct mrs_round_stats *rounds, unsigned n, struct mrs_live_costs *c)
{
	if (n == 1)
		mrs_live_fit(rounds, 1, c);
	else
		mrs_live_fit(rounds + 1, n - 1, c);
}

uint64_t mrs_live_estimate_ns(const struct mrs_round_stats *rounds, unsigned n)
{
	const struct mrs_round_stats *last = &rounds[n - 1];
	struct mrs_live_costs c;
	double ns;

	fit_rounds(rounds, n, &c);
	ns = c.scan_ns_per_page * (double)last->pages_scanned +
	     c.write_ns_per_byte * (double)last->bytes_written;
	ns += 0.5; /* to the nearest ns */
	return ns >= 0x1p64 ? UINT64_MAX : (uint64_t)ns;
}

/*
 * In this order: the round limit, which counts the frozen round; the target;
 * and from round 2 on (round 0 wrote everything, so round 1 always wrote
 * less) whether the dirty set stopped shrinking.
 */
enum mrs_live_decision mrs_live_decide(const struct mrs_live_policy *policy,
				       const struct mrs_round_stats *rounds, unsigned n,
				       uint64_t *estimate_ns)
{
	*estimate_ns = mrs_live_estimate_ns(rounds, n);
	if (n + 1 >= policy->max_rounds)
		return MRS_LIVE_MAX_ROUNDS;
	if (*estimate_ns <= policy->downtime_ns)
		return MRS_LIVE_CONVERGED;
	if (n >= 3 && rounds[n - 1].bytes_written >= rounds[n - 2].bytes_written)
		return MRS_LIVE_NO_PROGRESS;
	return MRS_LIVE_GO_ON;
}
