/* SPDX-License-Identifier: MIT */
/*
 * The live-round policy: after each live round, from the statistics of the
 * rounds so far, whether to run another round or to freeze the guest, and
 * how long the frozen round is expected to take. Pure: no I/O, no clock;
 * the same rounds always give the same answer (docs/DESIGN.md, "Live rounds").
 */
#ifndef MRS_LIVE_H
#define MRS_LIVE_H

#include <stdint.h>

/* What the policy knows of one live round. */
struct mrs_round_stats {
	uint64_t pages_scanned; /* pages looked at: all of RAM, holes included */
	uint64_t bytes_written; /* page data the round wrote */
	uint64_t duration_ns;
};

struct mrs_live_policy {
	uint64_t downtime_ns; /* the target for the frozen round */
	unsigned max_rounds;  /* all rounds, the frozen one included */
};

enum mrs_live_decision {
	MRS_LIVE_GO_ON,	      /* run another live round */
	MRS_LIVE_CONVERGED,   /* the frozen round is expected to fit the target */
	MRS_LIVE_MAX_ROUNDS,  /* the next round is the last the limit allows */
	MRS_LIVE_NO_PROGRESS, /* the last round wrote no less than the one before */
};

/* The cost model fitted to the live rounds: a round takes scan + write. */
struct mrs_live_costs {
	double scan_ns_per_page;
	double write_ns_per_byte;
};

/*
 * The costs that best explain the n rounds' durations, never negative; all
 * charged to the scan when the rounds cannot tell the two costs apart.
 */
void mrs_live_fit(const struct mrs_round_stats *rounds, unsigned n, struct mrs_live_costs *costs);

/*
 * The frozen round's expected duration after the n >= 1 live rounds, at the
 * costs fitted to rounds 1 .. n-1 (to round 0 while it is the only one).
 */
uint64_t mrs_live_estimate_ns(const struct mrs_round_stats *rounds, unsigned n);

/*
 * What to do after the n >= 1 live rounds (rounds[0] is round 0). The
 * estimate the decision rests on goes to *estimate_ns, whatever the decision.
 */
enum mrs_live_decision mrs_live_decide(const struct mrs_live_policy *policy,
				       const struct mrs_round_stats *rounds, unsigned n,
				       uint64_t *estimate_ns);

#endif
