/* SPDX-License-Identifier: MIT */
/*
 * A QEMU session (include/mrsnap.h, "QEMU"): the QMP connection, what QEMU
 * says about itself, and the commands every part of src/qemu/ needs.
 */
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "error.h"
#include "extstruct.h"
#include "qemu_impl.h"

/* Codes after which the QMP connection takes no more commands (qmp.h). */
static bool breaks_connection(int code)
{
	return code == -ETIMEDOUT || code == -ECONNRESET || code == -EPROTO || code == -ENOTCONN;
}

int mrs_qemu_cmd(struct mrs_qemu *q, const char *cmd, json_t *args, json_t **ret,
		 struct mrs_error *err)
{
	if (!q->qmp)
		return mrs_err(err, -ENOTCONN, "not connected to QEMU");
	return mrs_qmp_cmd(q->qmp, cmd, args, ret, err);
}

/*
 * A QMP socket serves one client at a time: the broken connection is closed
 * first, so that QEMU accepts the new one.
 */
static int reconnect(struct mrs_qemu *q, struct mrs_error *err)
{
	int ret;

	mrs_qmp_close(q->qmp);
	q->qmp = NULL;
	ret = mrs_qmp_connect(&q->qmp, q->path, q->timeout_ms, err);
	if (ret) {
		q->qmp = NULL;
		return mrs_err_prefix(err, "cannot connect to QEMU again");
	}
	return 0;
}

int mrs_qemu_cmd_again(struct mrs_qemu *q, const char *cmd, json_t *args, json_t **ret,
		       struct mrs_error *err)
{
	struct mrs_error first = {0};
	int code = mrs_qemu_cmd(q, cmd, args, ret, &first);

	if (!breaks_connection(code)) {
		if (code && err)
			*err = first;
		return code;
	}
	code = reconnect(q, err);
	if (code)
		return mrs_err_suffix(err, " (the first connection: %s)", first.msg);
	return mrs_qemu_cmd(q, cmd, args, ret, err);
}

int mrs_qemu_status(struct mrs_qemu *q, bool *running, char *status, size_t len,
		    struct mrs_error *err)
{
	json_t *ret = NULL, *run;
	const char *s;
	int code = mrs_qemu_cmd(q, "query-status", NULL, &ret, err);

	if (code)
		return code;
	run = json_object_get(ret, "running");
	s = json_string_value(json_object_get(ret, "status"));
	if (!json_is_boolean(run) || !s) {
		json_decref(ret);
		return mrs_err(err, -EPROTO, "QEMU's query-status has no 'running' and 'status'");
	}
	*running = json_is_true(run);
	if (status)
		snprintf(status, len, "%s", s);
	json_decref(ret);
	return 0;
}

int mrs_qemu_cont(struct mrs_qemu *q, struct mrs_error *err)
{
	int ret = mrs_qemu_cmd_again(q, "cont", NULL, NULL, err);

	return ret ? mrs_err_prefix(err, "cannot resume the guest") : 0;
}

int mrs_qemu_resume(struct mrs_qemu *q, struct mrs_error *err)
{
	return mrs_qemu_cont(q, err);
}

bool mrs_qemu_migration_over(const char *status)
{
	return !strcmp(status, "completed") || !strcmp(status, "failed") ||
	       !strcmp(status, "cancelled") || !strcmp(status, "none");
}

/*
 * QEMU takes no capability while a migration is "cancelling": wait for the
 * MIGRATION event that ends it, if query-migrate says it has not ended.
 */
static void await_cancelled(struct mrs_qemu *q)
{
	json_t *info = NULL, *data = NULL;
	const char *s;

	if (mrs_qemu_cmd(q, "query-migrate", NULL, &info, NULL))
		return;
	s = json_string_value(json_object_get(info, "status"));
	while (s && !mrs_qemu_migration_over(s) && q->qmp &&
	       !mrs_qmp_wait_event(q->qmp, "MIGRATION", q->timeout_ms, &data, NULL)) {
		s = json_string_value(json_object_get(data, "status"));
		if (s && mrs_qemu_migration_over(s))
			break;
		json_decref(data);
		data = NULL;
	}
	json_decref(data);
	json_decref(info);
}

void mrs_qemu_cancel_migration(struct mrs_qemu *q)
{
	if (q->migration_started && !q->migration_ended &&
	    !mrs_qemu_cmd_again(q, "migrate_cancel", NULL, NULL, NULL))
		await_cancelled(q);
	q->migration_ended = true;
}

/* What mrsnap switches on, in the order the saved states follow. */
static const char *const capability_names[MRS_QEMU_NCAPS] = {"x-ignore-shared", "events"};

static int send_capabilities(struct mrs_qemu *q, const bool *states, bool again,
			     struct mrs_error *err)
{
	json_t *args = json_pack("{s:[{s:s,s:b},{s:s,s:b}]}", "capabilities", "capability",
				 capability_names[0], "state", states[0], "capability",
				 capability_names[1], "state", states[1]);
	int ret;

	if (!args)
		return mrs_err(err, -ENOMEM, "out of memory");
	ret = again ? mrs_qemu_cmd_again(q, "migrate-set-capabilities", args, NULL, err)
		    : mrs_qemu_cmd(q, "migrate-set-capabilities", args, NULL, err);
	json_decref(args);
	return ret;
}

/* query-migrate-capabilities: the present state of each capability mrsnap switches on. */
static int read_capabilities(struct mrs_qemu *q, bool *states, struct mrs_error *err)
{
	json_t *list = NULL, *item;
	unsigned found = 0;
	size_t i;
	int ret = mrs_qemu_cmd(q, "query-migrate-capabilities", NULL, &list, err);

	if (ret)
		return ret;
	json_array_foreach(list, i, item)
	{
		const char *name = json_string_value(json_object_get(item, "capability"));

		for (unsigned c = 0; name && c < MRS_QEMU_NCAPS; c++)
			if (!strcmp(name, capability_names[c])) {
				states[c] = json_is_true(json_object_get(item, "state"));
				found |= 1u << c;
			}
	}
	json_decref(list);
	if (found != (1u << MRS_QEMU_NCAPS) - 1)
		return mrs_err(err, -EPROTO,
			       "QEMU's query-migrate-capabilities lacks x-ignore-shared or events");
	return 0;
}

int mrs_qemu_set_capabilities(struct mrs_qemu *q, struct mrs_error *err)
{
	static const bool on[MRS_QEMU_NCAPS] = {true, true};
	int ret = read_capabilities(q, q->caps_before, err);

	if (!ret && (!q->caps_before[0] || !q->caps_before[1])) {
		/* Before the command: a set whose answer is lost is still undone. */
		q->caps_changed = true;
		ret = send_capabilities(q, on, false, err);
	}
	return ret ? mrs_err_prefix(err, "cannot leave shared RAM out of QEMU's migration stream")
		   : 0;
}

void mrs_qemu_restore_capabilities(struct mrs_qemu *q)
{
	struct mrs_error e = {0};

	if (!q->caps_changed)
		return;
	if (send_capabilities(q, q->caps_before, true, &e)) {
		mrs_qemu_add_warning(q,
				     "cannot switch QEMU's migration capability x-ignore-shared "
				     "back off (%s): its next migrate would leave out its shared "
				     "RAM; send it migrate-set-capabilities with x-ignore-shared "
				     "false",
				     e.msg);
		return;
	}
	q->caps_changed = false;
}

void mrs_qemu_add_warning(struct mrs_qemu *q, const char *fmt, ...)
{
	size_t at = strlen(q->warning);
	va_list ap;

	if (at + 3 >= sizeof(q->warning))
		return;
	if (at)
		at += (size_t)snprintf(q->warning + at, sizeof(q->warning) - at, "; ");
	va_start(ap, fmt);
	vsnprintf(q->warning + at, sizeof(q->warning) - at, fmt, ap);
	va_end(ap);
}

/*
 * The machine type, as the device state must be loaded into: the QOM type
 * of /machine without its "-machine" suffix ("pc-i440fx-7.2"). Left empty
 * if QEMU does not say (it is only recorded and compared).
 */
static void read_machine(struct mrs_qemu *q)
{
	json_t *args = json_pack("{s:s,s:s}", "path", "/machine", "property", "type");
	json_t *ret = NULL;
	const char *type;
	size_t n;

	if (args && !mrs_qemu_cmd(q, "qom-get", args, &ret, NULL) &&
	    (type = json_string_value(ret))) {
		n = strlen(type);
		if (n > 8 && !strcmp(type + n - 8, "-machine"))
			n -= 8;
		snprintf(q->machine, sizeof(q->machine), "%.*s", (int)n, type);
	}
	json_decref(ret);
	json_decref(args);
}

int mrs_qemu_connect(struct mrs_qemu **out, const char *path, const struct mrs_qemu_opts *opts,
		     struct mrs_error *err)
{
	struct mrs_qemu_opts o;
	struct mrs_qemu *q;
	int ret;

	*out = NULL;
	ret = mrs_struct_in(&o, sizeof(o), opts, "mrs_qemu_opts", err);
	if (ret)
		return ret;
	q = calloc(1, sizeof(*q));
	if (!q)
		return mrs_err(err, -ENOMEM, "out of memory");
	q->path = strdup(path);
	if (!q->path) {
		free(q);
		return mrs_err(err, -ENOMEM, "out of memory");
	}
	q->timeout_ms = o.timeout_ms ? o.timeout_ms : MRS_QMP_TIMEOUT_MS;
	ret = mrs_qmp_connect(&q->qmp, path, q->timeout_ms, err);
	if (ret) {
		mrs_qemu_close(q); /* the message names the socket already */
		return ret;
	}
	q->pid = (int)mrs_qmp_peer_pid(q->qmp);
	snprintf(q->producer, sizeof(q->producer), "QEMU %s", mrs_qmp_version(q->qmp));
	read_machine(q);
	*out = q;
	return 0;
}

void mrs_qemu_free_ram(struct mrs_qemu *q)
{
	for (unsigned i = 0; i < q->nram; i++) {
		free((char *)q->ram[i].name);
		free((char *)q->ram[i].path);
	}
	free(q->ram);
	q->ram = NULL;
	q->nram = 0;
}

void mrs_qemu_close(struct mrs_qemu *q)
{
	if (!q)
		return;
	/* Last resort: a session never leaves QEMU's next migrate without its RAM. */
	mrs_qemu_restore_capabilities(q);
	mrs_qmp_close(q->qmp);
	for (unsigned i = 0; i < q->nbackends; i++) {
		free(q->backends[i].id);
		free(q->backends[i].type);
		free(q->backends[i].mem_path);
	}
	free(q->backends);
	mrs_qemu_free_ram(q);
	free(q->path);
	free(q);
}

int mrs_qemu_pid(const struct mrs_qemu *q)
{
	return q->pid;
}

const char *mrs_qemu_producer(const struct mrs_qemu *q)
{
	return q->producer;
}

const char *mrs_qemu_machine(const struct mrs_qemu *q)
{
	return q->machine;
}

const char *mrs_qemu_warning(const struct mrs_qemu *q)
{
	return q->warning[0] ? q->warning : NULL;
}
