/* SPDX-License-Identifier: MIT */
/*
 * QEMU's device state as mrsnap's device-state source and sink: QEMU's own
 * migration stream, with x-ignore-shared so that the shared RAM mrsnap
 * moves itself stays out of it, over a descriptor QEMU gets with getfd
 * (migrate fd:NAME, migrate-incoming fd:NAME): no shell, no temporary file.
 * How a migration ends is awaited as QEMU's MIGRATION event (capability
 * events), never by polling query-migrate: on the way out this is
 * downtime.
 */
#include <errno.h>
#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>

#include "error.h"
#include "qemu_impl.h"
#include "ram.h"

#define FD_URI "fd:" MRS_QEMU_FDNAME

/* Hand QEMU its copy of fd under MRS_QEMU_FDNAME, then run cmd on it. */
static int start_migration(struct mrs_qemu *q, const char *cmd, int fd, struct mrs_error *err)
{
	json_t *name = json_pack("{s:s}", "fdname", MRS_QEMU_FDNAME);
	json_t *uri = json_pack("{s:s}", "uri", FD_URI);
	int ret = name && uri ? 0 : mrs_err(err, -ENOMEM, "out of memory");

	if (!ret && !q->qmp)
		ret = mrs_err(err, -ENOTCONN, "not connected to QEMU");
	/* As late as can be: every check that fails without a migration is behind us. */
	if (!ret)
		ret = mrs_qemu_set_capabilities(q, err);
	if (!ret)
		ret = mrs_qmp_cmd_fd(q->qmp, "getfd", name, fd, NULL, err);
	if (!ret) {
		/*
		 * Started unless QEMU said no: a migrate whose answer was lost
		 * (timeout, closed socket) may run, and is cancelled before cont.
		 */
		q->migration_started = true;
		q->migration_ended = false;
		ret = mrs_qemu_cmd(q, cmd, uri, NULL, err);
		if (ret == -EREMOTEIO)
			q->migration_started = false;
		/* Not left with QEMU: its copy would keep our end from ever seeing EOF. */
		if (ret)
			mrs_qemu_cmd(q, "closefd", name, NULL, NULL);
	}
	if (ret && !q->migration_started)
		mrs_qemu_restore_capabilities(q);
	json_decref(name);
	json_decref(uri);
	return ret;
}

/* Wait for the MIGRATION event that says how it ended: "completed", "failed", "cancelled". */
static int await_end(struct mrs_qemu *q, char *status, size_t len, struct mrs_error *err)
{
	for (;;) {
		json_t *data = NULL;
		const char *s;
		int ret;

		if (!q->qmp)
			return mrs_err(err, -ENOTCONN, "not connected to QEMU");
		ret = mrs_qmp_wait_event(q->qmp, "MIGRATION", q->timeout_ms, &data, err);
		if (ret)
			return ret;
		s = json_string_value(json_object_get(data, "status"));
		snprintf(status, len, "%s", s ? s : "");
		json_decref(data);
		if (mrs_qemu_migration_over(status)) {
			q->migration_ended = true;
			return 0;
		}
	}
}

/* query-migrate's answer (a new reference), or NULL. */
static json_t *query_migrate(struct mrs_qemu *q)
{
	json_t *ret = NULL;

	if (mrs_qemu_cmd(q, "query-migrate", NULL, &ret, NULL))
		return NULL;
	return ret;
}

/* A migration that ended but did not complete: QEMU's error-desc, quoted. */
static int failed(struct mrs_qemu *q, const char *what, const char *status, struct mrs_error *err)
{
	json_t *info = query_migrate(q);
	const char *desc = json_string_value(json_object_get(info, "error-desc"));
	int ret = mrs_err(err, -EIO, "QEMU could not %s (migration %s): %s", what, status,
			  desc ? desc : "QEMU gave no reason");

	json_decref(info);
	return ret;
}

/*
 * x-ignore-shared leaves a shared block out of the stream, but newer QEMUs
 * count only a memory-backend-file with a mem-path as shared: a memfd
 * backend's RAM then goes through QEMU's stream too (the image is right but
 * holds it twice), and the user should know (mrs_qemu_warning()).
 *
 * query-migrate's ram.total counts only the blocks QEMU did not leave out:
 * those never shared (video RAM, ROMs) always, and the backends at risk
 * (those without a mem-path) if they went in. So the warning needs total
 * to reach the at-risk backends' size: a large video RAM next to a small
 * file-backed pc.ram is no sign (a file backend is always left out), nor
 * is the size of the device state. Where the non-shared RAM alone is as
 * large as the memfd backends, the two cannot be told apart from
 * query-migrate, and the warning errs on the side of saying it.
 */
static void check_ram_left_out(struct mrs_qemu *q, uint64_t bytes)
{
	json_t *info = query_migrate(q);
	json_t *total = json_object_get(json_object_get(info, "ram"), "total");
	uint64_t at_risk = 0, in_stream = 0;

	for (unsigned i = 0; i < q->nbackends; i++)
		if (!q->backends[i].mem_path)
			at_risk += q->backends[i].size;
	if (json_is_integer(total) && json_integer_value(total) > 0)
		in_stream = (uint64_t)json_integer_value(total);
	if (at_risk && in_stream >= at_risk)
		mrs_qemu_add_warning(
		    q,
		    "%s put guest RAM into its own migration stream although x-ignore-shared "
		    "was set (%" PRIu64 " MiB of RAM in it, %" PRIu64
		    " bytes of device state): the image is right but holds that memory twice, "
		    "and the downtime paid for it; newer QEMUs leave out only "
		    "memory-backend-file with a mem-path, so use one",
		    q->producer, in_stream >> 20, bytes);
	json_decref(info);
}

static int source_start(void *ctx, int fd, struct mrs_error *err)
{
	int ret = start_migration(ctx, "migrate", fd, err);

	return ret ? mrs_err_prefix(err, "cannot save QEMU's device state") : 0;
}

static int source_finish(void *ctx, uint64_t bytes, struct mrs_error *err)
{
	struct mrs_qemu *q = ctx;
	char status[32];
	int ret = await_end(q, status, sizeof(status), err);

	if (ret)
		return mrs_err_prefix(err, "QEMU did not finish saving its device state");
	if (strcmp(status, "completed")) {
		ret = failed(q, "save its device state", status, err);
		mrs_qemu_restore_capabilities(q);
		return ret;
	}
	check_ram_left_out(q, bytes);
	mrs_qemu_restore_capabilities(q);
	return 0;
}

static int sink_start(void *ctx, int fd, struct mrs_error *err)
{
	int ret = start_migration(ctx, "migrate-incoming", fd, err);

	return ret ? mrs_err_prefix(err, "cannot load the device state into QEMU") : 0;
}

/*
 * QEMU says why a load failed on its standard error only ("Unknown savevm
 * section or instance 'x'": a device the snapshot's QEMU did not have), and
 * then exits: what mrsnap can say is where to look and what to change.
 */
static int load_failed(struct mrs_qemu *q, int code, const char *how, const char *desc,
		       struct mrs_error *err)
{
	q->caps_changed = false; /* a QEMU whose load failed exits: nothing to put back */
	return mrs_err(err, code,
		       "QEMU %s while loading the device state%s%s; its reason is on QEMU's "
		       "standard error: start QEMU with the same devices and machine as the "
		       "snapshot's QEMU (%s%s%s)",
		       how, desc ? ": " : "", desc ? desc : "", q->image_producer,
		       q->image_machine[0] ? ", machine " : "", q->image_machine);
}

static int sink_finish(void *ctx, uint64_t bytes, struct mrs_error *err)
{
	struct mrs_qemu *q = ctx;
	char status[32];
	int ret = await_end(q, status, sizeof(status), err);
	json_t *info;
	const char *desc;

	(void)bytes;
	if (ret == -ECONNRESET)
		return load_failed(q, ret, "exited (it closed its QMP connection)", NULL, err);
	if (ret)
		return mrs_err_prefix(err, "QEMU did not finish loading the device state");
	if (strcmp(status, "completed")) {
		info = query_migrate(q);
		desc = json_string_value(json_object_get(info, "error-desc"));
		ret = load_failed(q, -EIO, "failed", desc, err);
		json_decref(info);
		return ret;
	}
	/* The restored guest's own next migrate must carry its RAM. */
	mrs_qemu_restore_capabilities(q);
	return 0;
}

int mrs_qemu_devstate_source(struct mrs_qemu *q, struct mrs_devstate_source *src,
			     struct mrs_error *err)
{
	char status[64];
	bool running;
	/* Nothing is changed in QEMU before the migration starts: this only asks. */
	int ret = mrs_qemu_status(q, &running, status, sizeof(status), err);

	if (ret)
		return ret;
	/* Before any RAM is read: such a QEMU's migrate fails only at the end. */
	if (!strcmp(status, "inmigrate"))
		return mrs_err(
		    err, -MRS_EUSAGE,
		    "QEMU is waiting for incoming state (status 'inmigrate', started with "
		    "-incoming): it has no guest to save yet; restore an image into it "
		    "with restore --qmp, or snapshot a QEMU that runs its guest");
	if (!strcmp(status, "postmigrate"))
		return mrs_err(
		    err, -MRS_EUSAGE,
		    "QEMU's guest is paused after a migration (status 'postmigrate', as a "
		    "snapshot with --paused or of a paused guest leaves it): QEMU refuses "
		    "another migrate until the guest is resumed with QMP 'cont'");
	*src = (struct mrs_devstate_source)MRS_DEVSTATE_SOURCE_INIT;
	src->start = source_start;
	src->finish = source_finish;
	src->ctx = q;
	src->producer = q->producer;
	src->machine = q->machine[0] ? q->machine : NULL;
	return 0;
}

/* Appends "; what" to the list of differences in buf. */
static void differs(char *buf, size_t len, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
static void differs(char *buf, size_t len, const char *fmt, ...)
{
	size_t at = strlen(buf);
	va_list ap;

	if (at + 2 >= len)
		return;
	if (at)
		at += (size_t)snprintf(buf + at, len - at, "; ");
	va_start(ap, fmt);
	vsnprintf(buf + at, len - at, fmt, ap);
	va_end(ap);
}

static const struct mrs_block_info *image_block(const struct mrs_image_info *image,
						const char *name)
{
	for (uint32_t b = 0; b < image->nblocks; b++)
		if (!strcmp(image->blocks[b].name, name))
			return &image->blocks[b];
	return NULL;
}

/*
 * QEMU loads the device state only into the RAM it was saved with: every
 * backend must be a block of the image, of its size, and every block of the
 * image a backend (or a block the user placed with --ram).
 */
static int check_blocks(const struct mrs_qemu *q, const struct mrs_image_info *image,
			const struct mrs_ram *ram, unsigned nram, struct mrs_error *err)
{
	char diff[900] = "";

	for (unsigned i = 0; i < q->nbackends; i++) {
		const struct mrs_qemu_backend *b = &q->backends[i];
		const struct mrs_block_info *bi = image_block(image, b->id);

		if (!bi)
			differs(diff, sizeof(diff),
				"QEMU's backend '%s' (%" PRIu64 " bytes) is not in the image",
				b->id, b->size);
		else if (bi->size != b->size)
			differs(diff, sizeof(diff),
				"block '%s' is %" PRIu64 " bytes in the image, %" PRIu64 " in QEMU",
				b->id, bi->size, b->size);
	}
	for (uint32_t b = 0; b < image->nblocks; b++) {
		bool placed = false;

		for (unsigned i = 0; i < nram && !placed; i++)
			placed = !strcmp(ram[i].name, image->blocks[b].name);
		if (!placed)
			differs(diff, sizeof(diff),
				"the image's block '%s' (%" PRIu64
				" bytes) is no backend of QEMU's",
				image->blocks[b].name, image->blocks[b].size);
	}
	if (diff[0])
		return mrs_err(err, -MRS_EUSAGE,
			       "QEMU's memory backends are not the image's blocks: %s; start QEMU "
			       "with the backends the snapshot was taken with",
			       diff);
	return 0;
}

/*
 * Each backend's target must be memory QEMU maps: a mem-path file removed
 * or replaced since QEMU started (or a --ram elsewhere) would be written,
 * created even, and QEMU would load its device state over RAM that never
 * saw the image. Not checked when QEMU's pid is not known.
 */
static int check_qemu_maps(const struct mrs_qemu *q, const struct mrs_ram *ram, unsigned nram,
			   struct mrs_error *err)
{
	for (unsigned i = 0; i < nram && q->pid > 0; i++) {
		struct stat st;
		bool backend = false;

		for (unsigned b = 0; b < q->nbackends && !backend; b++)
			backend = !strcmp(q->backends[b].id, ram[i].name);
		if (!backend)
			continue;
		if (stat(ram[i].path, &st) || !mrs_ram_mapped_by_pid(q->pid, st.st_dev, st.st_ino))
			return mrs_err(err, -MRS_EUSAGE,
				       "QEMU (pid %d) does not map '%s', the target of its backend "
				       "'%s': RAM written there would not reach the guest (was the "
				       "file removed or replaced after QEMU started?)",
				       q->pid, ram[i].path, ram[i].name);
	}
	return 0;
}

static int check_waiting(struct mrs_qemu *q, struct mrs_error *err)
{
	char status[64];
	bool running;
	int ret = mrs_qemu_status(q, &running, status, sizeof(status), err);

	if (ret)
		return ret;
	if (strcmp(status, "inmigrate"))
		return mrs_err(err, -MRS_EUSAGE,
			       "QEMU is not waiting for incoming state (its status is '%s': it has "
			       "a guest already, restored before or started without -incoming); "
			       "start a new QEMU with -incoming defer for this restore",
			       status);
	return 0;
}

int mrs_qemu_incoming(struct mrs_qemu *q, const struct mrs_image_info *image,
		      const struct mrs_ram *ram, unsigned nram, struct mrs_devstate_sink *sink,
		      struct mrs_error *err)
{
	const char *machine = image->devstate.machine;
	int ret;

	snprintf(q->image_producer, sizeof(q->image_producer), "%s",
		 image->devstate.producer[0] ? image->devstate.producer : "QEMU");
	snprintf(q->image_machine, sizeof(q->image_machine), "%s", machine);
	if (!image->devstate.present)
		return mrs_err(err, -MRS_EUSAGE,
			       "the image holds no device state (a snapshot of RAM only): restore "
			       "it without --qmp, into the backends' files, before QEMU starts");
	if (machine[0] && q->machine[0] && strcmp(machine, q->machine))
		return mrs_err(err, -MRS_EUSAGE,
			       "the image's device state is of machine type '%s', QEMU runs '%s': "
			       "start QEMU with -machine %s",
			       machine, q->machine, machine);
	ret = check_waiting(q, err);
	if (!ret)
		ret = mrs_qemu_read_backends(q, err);
	if (!ret)
		ret = check_blocks(q, image, ram, nram, err);
	if (!ret)
		ret = check_qemu_maps(q, ram, nram, err);
	if (ret)
		return ret;
	*sink = (struct mrs_devstate_sink)MRS_DEVSTATE_SINK_INIT;
	sink->start = sink_start;
	sink->finish = sink_finish;
	sink->ctx = q;
	return 0;
}
