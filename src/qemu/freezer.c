/* SPDX-License-Identifier: MIT */
/*
 * QEMU's guest frozen the QMP way: stop, confirmed by query-status, and
 * cont. A guest that was not running when asked to freeze (paused by its
 * user, or started with -S) is left as it was: thaw resumes only what
 * freeze stopped. Nothing here sleeps or polls: stop returns once the vCPUs
 * are stopped, and query-status only confirms it.
 */
#include <errno.h>

#include "error.h"
#include "qemu_impl.h"

static int freeze(void *ctx, struct mrs_error *err)
{
	struct mrs_qemu *q = ctx;
	char status[64];
	bool running;
	int ret = mrs_qemu_status(q, &running, NULL, 0, err);

	if (ret)
		return mrs_err_prefix(err, "cannot stop the guest");
	q->paused_before = !running;
	if (!running)
		return 0; /* paused before mrsnap came: not ours to resume */
	/* Before the command: a stop that fails half-way is still undone. */
	q->stop_sent = true;
	ret = mrs_qemu_cmd(q, "stop", NULL, NULL, err);
	if (!ret)
		ret = mrs_qemu_status(q, &running, status, sizeof(status), err);
	if (ret)
		return mrs_err_prefix(err, "cannot stop the guest");
	if (running)
		return mrs_err(err, -EAGAIN, "QEMU still runs the guest after 'stop' (status '%s')",
			       status);
	return 0;
}

/*
 * A migration mrsnap started and did not see end is cancelled first: a cont
 * must not race with it. Then the migration capabilities are put back.
 */
static int thaw(void *ctx, struct mrs_error *err)
{
	struct mrs_qemu *q = ctx;
	int ret;

	mrs_qemu_cancel_migration(q);
	/* Never left on in the user's QEMU, even when the thaw has nothing to resume. */
	mrs_qemu_restore_capabilities(q);
	if (!q->stop_sent)
		return 0;
	ret = mrs_qemu_cont(q, err);
	if (!ret)
		q->stop_sent = false;
	return ret;
}

int mrs_qemu_paused_before(const struct mrs_qemu *q)
{
	return q->paused_before;
}

int mrs_qemu_freezer(struct mrs_qemu *q, struct mrs_freezer **out, struct mrs_error *err)
{
	struct mrs_freezer_ops ops = MRS_FREEZER_OPS_INIT;

	ops.freeze = freeze;
	ops.thaw = thaw;
	return mrs_freezer_new(out, &ops, q, err);
}
