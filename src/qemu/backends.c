/* SPDX-License-Identifier: MIT */
/*
 * QEMU's RAM as mrsnap's blocks: each memory backend under /objects is a
 * block named by its id, reached at its file (memory-backend-file's
 * mem-path) or, for a memfd, through the QEMU process's own descriptor
 * (/proc/PID/fd/N). Only shared backends can be: QEMU's writes to any
 * other stay in its private memory, where no file shows them.
 */
#include <dirent.h>
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "error.h"
#include "qemu_impl.h"

#define BACKEND_PREFIX "memory-backend-"
/* What /proc/PID/fd shows for a memory-backend-memfd's descriptor. */
#define MEMFD_LINK "/memfd:" BACKEND_PREFIX "memfd (deleted)"

static int qom_get(struct mrs_qemu *q, const char *id, const char *prop, json_t **val,
		   struct mrs_error *err)
{
	char *path;
	json_t *args;
	int ret;

	/* Sized from the id: QEMU sets no bound on it, and a cut path would name another object. */
	if (asprintf(&path, "/objects/%s", id) < 0)
		return mrs_err(err, -ENOMEM, "memory backend '%s': out of memory", id);
	args = json_pack("{s:s,s:s}", "path", path, "property", prop);
	free(path);
	if (!args)
		return mrs_err(err, -ENOMEM, "out of memory");
	ret = mrs_qemu_cmd(q, "qom-get", args, val, err);
	json_decref(args);
	return ret ? mrs_err_prefix(err, "memory backend '%s'", id) : 0;
}

static int backend_string(struct mrs_qemu *q, const char *id, const char *prop, char **out,
			  struct mrs_error *err)
{
	json_t *v = NULL;
	int ret = qom_get(q, id, prop, &v, err);

	if (!ret && !json_is_string(v))
		ret =
		    mrs_err(err, -EPROTO, "memory backend '%s': its %s is not a string", id, prop);
	if (!ret && !(*out = strdup(json_string_value(v))))
		ret = mrs_err(err, -ENOMEM, "out of memory");
	json_decref(v);
	return ret;
}

/* type, size, share, and a file backend's mem-path. */
static int read_backend(struct mrs_qemu *q, const char *id, struct mrs_qemu_backend *b,
			struct mrs_error *err)
{
	json_t *size = NULL, *share = NULL;
	int ret;

	b->id = strdup(id);
	if (!b->id)
		return mrs_err(err, -ENOMEM, "out of memory");
	ret = backend_string(q, id, "type", &b->type, err);
	if (!ret)
		ret = qom_get(q, id, "size", &size, err);
	if (!ret && (!json_is_integer(size) || json_integer_value(size) <= 0))
		ret = mrs_err(err, -EPROTO,
			      "memory backend '%s': its size is not a positive number", id);
	if (!ret)
		ret = qom_get(q, id, "share", &share, err);
	if (!ret && !json_is_boolean(share))
		ret = mrs_err(err, -EPROTO, "memory backend '%s': its share is not true or false",
			      id);
	if (!ret) {
		b->size = (uint64_t)json_integer_value(size);
		b->share = json_is_true(share);
	}
	if (!ret && !strcmp(b->type, BACKEND_PREFIX "file"))
		ret = backend_string(q, id, "mem-path", &b->mem_path, err);
	json_decref(size);
	json_decref(share);
	return ret;
}

/* "child<memory-backend-file>": a memory backend (a RAM block of the guest). */
static bool is_backend_child(const char *type)
{
	static const char child[] = "child<" BACKEND_PREFIX;

	return type && !strncmp(type, child, sizeof(child) - 1);
}

int mrs_qemu_read_backends(struct mrs_qemu *q, struct mrs_error *err)
{
	json_t *args, *list = NULL, *item;
	size_t i;
	int ret;

	if (q->backends_read)
		return 0;
	args = json_pack("{s:s}", "path", "/objects");
	if (!args)
		return mrs_err(err, -ENOMEM, "out of memory");
	ret = mrs_qemu_cmd(q, "qom-list", args, &list, err);
	json_decref(args);
	if (ret)
		return mrs_err_prefix(err, "cannot list QEMU's memory backends");
	if (!json_is_array(list))
		ret = mrs_err(err, -EPROTO, "QEMU's qom-list /objects is not a list");
	q->backends = calloc(json_array_size(list) + 1, sizeof(*q->backends));
	if (!ret && !q->backends)
		ret = mrs_err(err, -ENOMEM, "out of memory");
	json_array_foreach(list, i, item)
	{
		const char *name = json_string_value(json_object_get(item, "name"));

		if (ret || !name ||
		    !is_backend_child(json_string_value(json_object_get(item, "type"))))
			continue;
		ret = read_backend(q, name, &q->backends[q->nbackends++], err);
	}
	json_decref(list);
	if (!ret && !q->nbackends)
		ret = mrs_err(err, -MRS_EUSAGE,
			      "QEMU has no memory backend: start it with -object "
			      "memory-backend-file,id=pc.ram,size=SIZE,mem-path=FILE,share=on "
			      "-machine memory-backend=pc.ram (or memory-backend-memfd)");
	q->backends_read = !ret;
	return ret;
}

/* A shared file or memfd backend: one mrsnap can read. */
static bool reachable(const struct mrs_qemu_backend *b)
{
	return b->share && (!strcmp(b->type, BACKEND_PREFIX "file") ||
			    !strcmp(b->type, BACKEND_PREFIX "memfd"));
}

/* A shared backend besides b that is not the machine's RAM (no -machine memory-backend=). */
static const struct mrs_qemu_backend *unused_shared(const struct mrs_qemu *q,
						    const struct mrs_qemu_backend *b)
{
	for (unsigned i = 0; i < q->nbackends; i++)
		if (&q->backends[i] != b && reachable(&q->backends[i]))
			return &q->backends[i];
	return NULL;
}

/* Only shared file and memfd backends have pages another process can read. */
static int check_reachable(const struct mrs_qemu *q, const struct mrs_qemu_backend *b,
			   struct mrs_error *err)
{
	bool file = !strcmp(b->type, BACKEND_PREFIX "file");
	const struct mrs_qemu_backend *other = unused_shared(q, b);

	/* QEMU made its own pc.ram: the user's backend is there but unused as RAM. */
	if (!strcmp(b->id, "pc.ram") && !strcmp(b->type, BACKEND_PREFIX "ram") && other)
		return mrs_err(err, -MRS_EUSAGE,
			       "QEMU's RAM is 'pc.ram', a private memory-backend-ram (QEMU made it "
			       "from -m), and '%s' is not used as RAM: add -machine "
			       "memory-backend=%s",
			       other->id, other->id);
	if (!file && strcmp(b->type, BACKEND_PREFIX "memfd"))
		return mrs_err(err, -MRS_EUSAGE,
			       "QEMU's memory backend '%s' is a %s: its pages are QEMU's private "
			       "memory, which mrsnap cannot reach; use memory-backend-file "
			       "(mem-path=FILE) or memory-backend-memfd, with share=on",
			       b->id, b->type);
	if (!b->share)
		return mrs_err(err, -MRS_EUSAGE,
			       "QEMU's memory backend '%s' (%s) is not shared: the guest's writes "
			       "stay in QEMU's private copy and never reach %s; start QEMU with "
			       "share=on for it",
			       b->id, b->type, file ? "its file" : "the memfd");
	return 0;
}

/* One descriptor of the QEMU process: its number, what its link says, its size. */
struct fdinfo {
	int n;
	char link[4096];
	uint64_t size;
};

/* QEMU's descriptors whose link reads link (or, with prefix, begins with it). */
static int find_fds(int pid, const char *link, bool prefix, struct fdinfo *found, unsigned max,
		    unsigned *nfound, uint64_t size, struct mrs_error *err)
{
	char dir[64], path[64 + sizeof(((struct dirent *)0)->d_name)];
	struct dirent *de;
	DIR *d;

	*nfound = 0;
	snprintf(dir, sizeof(dir), "/proc/%d/fd", pid);
	d = opendir(dir);
	if (!d)
		return mrs_err_errno(err, -errno, "cannot read QEMU's descriptors in '%s'", dir);
	while ((de = readdir(d))) {
		struct fdinfo fi = {0};
		struct stat st;
		ssize_t n;

		if (de->d_name[0] == '.')
			continue;
		snprintf(path, sizeof(path), "%s/%s", dir, de->d_name);
		n = readlink(path, fi.link, sizeof(fi.link) - 1);
		if (n <= 0)
			continue;
		fi.link[n] = '\0';
		if (prefix ? strncmp(fi.link, link, strlen(link)) : strcmp(fi.link, link))
			continue;
		if (stat(path, &st) || !S_ISREG(st.st_mode) || (uint64_t)st.st_size != size)
			continue;
		fi.n = atoi(de->d_name);
		fi.size = size;
		if (*nfound < max)
			found[*nfound] = fi;
		++*nfound;
	}
	closedir(d);
	return 0;
}

/* "a", "b", ...: the memfd backends of this size that need a descriptor. */
static unsigned same_size_memfds(const struct mrs_qemu *q, const struct mrs_qemu_backend *b,
				 const bool *given, char *names, size_t len)
{
	unsigned n = 0;
	size_t at = 0;

	names[0] = '\0';
	for (unsigned i = 0; i < q->nbackends; i++) {
		const struct mrs_qemu_backend *o = &q->backends[i];

		if (given[i] || o->size != b->size || strcmp(o->type, BACKEND_PREFIX "memfd"))
			continue;
		if (at < len)
			at +=
			    (size_t)snprintf(names + at, len - at, "%s'%s'", n ? ", " : "", o->id);
		n++;
	}
	return n;
}

/*
 * A memfd has no name but "memory-backend-memfd": it is the QEMU
 * descriptor of that name and the backend's size, if that tells one backend
 * from every other.
 */
static int memfd_path(const struct mrs_qemu *q, const struct mrs_qemu_backend *b, const bool *given,
		      char **path, struct mrs_error *err)
{
	struct fdinfo *fds = malloc(4 * sizeof(*fds));
	char names[512], list[512];
	unsigned nfds = 0, nb, shown;
	int ret;

	if (!fds)
		return mrs_err(err, -ENOMEM, "out of memory");
	if (q->pid <= 0) {
		free(fds);
		return mrs_err(err, -ESRCH,
			       "memory backend '%s': QEMU's pid is not known, so its memfd cannot "
			       "be found; give it with --ram %s=/proc/PID/fd/N",
			       b->id, b->id);
	}
	ret = find_fds(q->pid, MEMFD_LINK, false, fds, 4, &nfds, b->size, err);
	nb = same_size_memfds(q, b, given, names, sizeof(names));
	if (!ret && nfds == 0)
		ret = mrs_err(err, -ENOENT,
			      "memory backend '%s': QEMU (pid %d) has no memfd of %" PRIu64
			      " bytes among its descriptors; give it with --ram %s=PATH",
			      b->id, q->pid, b->size, b->id);
	if (!ret && (nfds > 1 || nb > 1)) {
		shown = nfds < 4 ? nfds : 4;
		list[0] = '\0';
		for (unsigned i = 0, at = 0; i < shown && at < sizeof(list); i++)
			at += (unsigned)snprintf(list + at, sizeof(list) - at, "%s/proc/%d/fd/%d",
						 i ? ", " : "", q->pid, fds[i].n);
		ret = mrs_err(err, -MRS_EUSAGE,
			      "memory backend%s %s: QEMU (pid %d) has %u memfd%s of %" PRIu64
			      " bytes (%s%s), and which is which cannot be told; name each with "
			      "--ram NAME=/proc/%d/fd/N",
			      nb > 1 ? "s" : "", names, q->pid, nfds, nfds == 1 ? "" : "s", b->size,
			      list, nfds > shown ? ", ..." : "", q->pid);
	}
	if (!ret && asprintf(path, "/proc/%d/fd/%d", q->pid, fds[0].n) < 0)
		ret = mrs_err(err, -ENOMEM, "out of memory");
	free(fds);
	return ret;
}

/*
 * A mem-path that is a directory (hugetlbfs mounts, typically) makes QEMU
 * create and unlink "DIR/qemu_back_mem.ID.XXXXXX": the file is then only
 * reachable through QEMU's descriptor.
 */
static int unlinked_file_path(const struct mrs_qemu *q, const struct mrs_qemu_backend *b,
			      char **path, struct mrs_error *err)
{
	struct fdinfo *fd = malloc(sizeof(*fd));
	char prefix[4200];
	unsigned n = 0;
	int ret;

	if (!fd)
		return mrs_err(err, -ENOMEM, "out of memory");
	snprintf(prefix, sizeof(prefix), "%s/qemu_back_mem.%s.", b->mem_path, b->id);
	ret = q->pid > 0 ? find_fds(q->pid, prefix, true, fd, 1, &n, b->size, err) : 0;
	if (!ret && n != 1)
		ret = mrs_err(err, -ENOENT,
			      "memory backend '%s': its mem-path '%s' is a directory, and QEMU's "
			      "file in it cannot be found; give a file as mem-path, or the block "
			      "with --ram %s=PATH",
			      b->id, b->mem_path, b->id);
	if (!ret && asprintf(path, "/proc/%d/fd/%d", q->pid, fd->n) < 0)
		ret = mrs_err(err, -ENOMEM, "out of memory");
	free(fd);
	return ret;
}

/*
 * A relative mem-path is QEMU's, from QEMU's working directory: made
 * absolute with it (/proc/PID/cwd), never taken from ours.
 */
static int absolute_mem_path(const struct mrs_qemu *q, struct mrs_qemu_backend *b,
			     struct mrs_error *err)
{
	char link[64], cwd[4096], *abs;
	ssize_t n;

	if (b->mem_path[0] == '/')
		return 0;
	snprintf(link, sizeof(link), "/proc/%d/cwd", q->pid);
	n = q->pid > 0 ? readlink(link, cwd, sizeof(cwd) - 1) : -1;
	if (n <= 0)
		return mrs_err(
		    err, -ENOENT,
		    "memory backend '%s': its mem-path '%s' is relative, and QEMU's "
		    "working directory cannot be read; give the block with --ram %s=PATH",
		    b->id, b->mem_path, b->id);
	cwd[n] = '\0';
	if (asprintf(&abs, "%s/%s", cwd, b->mem_path) < 0)
		return mrs_err(err, -ENOMEM, "out of memory");
	free(b->mem_path);
	b->mem_path = abs;
	return 0;
}

static int backend_path(const struct mrs_qemu *q, struct mrs_qemu_backend *b, const bool *given,
			char **path, struct mrs_error *err)
{
	struct stat st;
	int ret;

	if (!b->mem_path)
		return memfd_path(q, b, given, path, err);
	ret = absolute_mem_path(q, b, err);
	if (ret)
		return ret;
	if (stat(b->mem_path, &st) == 0 && S_ISDIR(st.st_mode))
		return unlinked_file_path(q, b, path, err);
	*path = strdup(b->mem_path);
	return *path ? 0 : mrs_err(err, -ENOMEM, "out of memory");
}

static int add_block(struct mrs_qemu *q, const char *name, const char *path, uint64_t size,
		     char *owned_path, struct mrs_error *err)
{
	struct mrs_ram *r = &q->ram[q->nram];

	r->name = strdup(name);
	r->path = owned_path ? owned_path : strdup(path);
	r->size = size;
	q->nram++;
	if (!r->name || !r->path)
		return mrs_err(err, -ENOMEM, "out of memory");
	return 0;
}

/* The given block of this name, or NULL. */
static const struct mrs_ram *given_named(const struct mrs_ram *given, unsigned n, const char *name)
{
	for (unsigned i = 0; i < n; i++)
		if (!strcmp(given[i].name, name))
			return &given[i];
	return NULL;
}

static int backend_block(struct mrs_qemu *q, struct mrs_qemu_backend *b, const struct mrs_ram *g,
			 const bool *given, struct mrs_error *err)
{
	char *path = NULL;
	int ret = check_reachable(q, b, err);

	if (!ret)
		ret = mrs_block_name_check(b->id, err);
	if (ret)
		return ret;
	if (g && g->size && g->size != b->size)
		return mrs_err(err, -MRS_EUSAGE,
			       "--ram %s: size %" PRIu64 " is not that of QEMU's backend (%" PRIu64
			       " bytes)",
			       b->id, g->size, b->size);
	if (g)
		return add_block(q, b->id, g->path, b->size, NULL, err);
	ret = backend_path(q, b, given, &path, err);
	if (ret)
		return ret;
	return add_block(q, b->id, NULL, b->size, path, err);
}

int mrs_qemu_ram(struct mrs_qemu *q, const struct mrs_ram *given, unsigned ngiven,
		 const struct mrs_ram **ram, unsigned *nram, struct mrs_error *err)
{
	bool *named;
	int ret;

	*ram = NULL;
	*nram = 0;
	mrs_qemu_free_ram(q);
	ret = mrs_qemu_read_backends(q, err);
	if (ret)
		return ret;
	named = calloc(q->nbackends, sizeof(*named));
	q->ram = calloc(q->nbackends + ngiven, sizeof(*q->ram));
	if (!named || !q->ram) {
		free(named);
		return mrs_err(err, -ENOMEM, "out of memory");
	}
	for (unsigned i = 0; i < q->nbackends; i++)
		named[i] = given_named(given, ngiven, q->backends[i].id) != NULL;
	for (unsigned i = 0; !ret && i < q->nbackends; i++)
		ret = backend_block(q, &q->backends[i],
				    given_named(given, ngiven, q->backends[i].id), named, err);
	/* Blocks the user named that are no backend of QEMU's: saved as given. */
	for (unsigned i = 0; !ret && i < ngiven; i++) {
		unsigned b = 0;

		while (b < q->nbackends && strcmp(q->backends[b].id, given[i].name))
			b++;
		if (b == q->nbackends)
			ret = add_block(q, given[i].name, given[i].path, given[i].size, NULL, err);
	}
	free(named);
	if (ret) {
		mrs_qemu_free_ram(q);
		return ret;
	}
	*ram = q->ram;
	*nram = q->nram;
	return 0;
}
