/* SPDX-License-Identifier: MIT */
/*
 * The QEMU session (src/qemu/) against the scripted fake QMP server
 * (fake_qmp.h): the backends it finds and refuses, the checks before a
 * restore, the freezer's stop and cont, the device state's migration, and
 * that every failure after stop ends in cont. The fake's peer is this
 * process, so a memfd made here is what a memfd backend's descriptor is in
 * QEMU. Timeouts are what a test waits for, never a measure of speed.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "fake_qmp.h"
#include "helpers.h"
#include "mrsnap.h"

#define ARRAY_SIZE(a) (sizeof(a) / sizeof((a)[0]))
#define SHORT_MS      200 /* for waits that are meant to time out */
#define MIB	      (1u << 20)

/* What connect asks after the greeting. */
#define MACHINE_STEP                                                                               \
	{                                                                                          \
		.cmd = "qom-get", .ret = "\"pc-i440fx-7.2-machine\""                               \
	}
#define RUNNING	  "{\"status\": \"running\", \"running\": true}"
#define PAUSED	  "{\"status\": \"paused\", \"running\": false}"
#define INMIGRATE "{\"status\": \"inmigrate\", \"running\": false}"
/* The capabilities as a QEMU has them by default, then mrsnap's, then put back. */
#define CAPS_OFF                                                                                   \
	"[{\"capability\": \"xbzrle\", \"state\": false}, "                                        \
	"{\"capability\": \"x-ignore-shared\", \"state\": false}, "                                \
	"{\"capability\": \"events\", \"state\": false}]"
#define CAPS_QUERY                                                                                 \
	{                                                                                          \
		.cmd = "query-migrate-capabilities", .ret = CAPS_OFF                               \
	}
#define CAPS_STEP                                                                                  \
	{                                                                                          \
		.cmd = "migrate-set-capabilities"                                                  \
	}
#define CAPS_ON                                                                                    \
	"{\"capabilities\":[{\"capability\":\"x-ignore-shared\",\"state\":true},"                  \
	"{\"capability\":\"events\",\"state\":true}]}"
#define CAPS_BACK                                                                                  \
	"{\"capabilities\":[{\"capability\":\"x-ignore-shared\",\"state\":false},"                 \
	"{\"capability\":\"events\",\"state\":false}]}"

struct env {
	char *dir;
	char link[512];	     /* the socket path given to mrs_qemu_connect: a symlink to a fake's */
	struct fake_qmp *f;  /* the first server */
	struct fake_qmp *f2; /* the one a reconnect reaches, if any */
	char *dir2;
	struct mrs_qemu *q;
	struct mrs_error err;
};

/* A session with a fake playing steps (which must start with MACHINE_STEP). */
static void env_start(struct env *e, const struct fake_qmp_step *steps, size_t n, unsigned ms)
{
	struct mrs_qemu_opts o = MRS_QEMU_OPTS_INIT;
	int ret;

	memset(e, 0, sizeof(*e));
	e->dir = mrs_test_tmpdir();
	e->f = fake_qmp_listen(e->dir, steps, n, NULL);
	snprintf(e->link, sizeof(e->link), "%s/link.sock", e->dir);
	assert_int_equal(symlink(fake_qmp_path(e->f), e->link), 0);
	o.timeout_ms = ms;
	ret = mrs_qemu_connect(&e->q, e->link, &o, &e->err);
	if (ret)
		print_error("connect: %s\n", e->err.msg);
	assert_int_equal(ret, 0);
}

/* From now on the socket path leads to a second server (what a reconnect finds). */
static void env_second(struct env *e, const struct fake_qmp_step *steps, size_t n)
{
	char tmp[600];

	e->dir2 = mrs_test_tmpdir();
	e->f2 = fake_qmp_listen(e->dir2, steps, n, NULL);
	snprintf(tmp, sizeof(tmp), "%s.new", e->link);
	assert_int_equal(symlink(fake_qmp_path(e->f2), tmp), 0);
	assert_int_equal(rename(tmp, e->link), 0);
}

static void check_finished(struct fake_qmp *f)
{
	const char *why = fake_qmp_finish(f);

	if (why)
		print_error("fake QMP: %s\n", why);
	assert_null(why);
}

/* Close the session; every server must have seen its whole script and nothing more. */
static void env_end(struct env *e)
{
	mrs_qemu_close(e->q);
	check_finished(e->f);
	/* A server no client reached would wait for one forever: fail instead. */
	if (e->f2)
		assert_true(fake_qmp_count(e->f2) > 0);
	if (e->f2)
		check_finished(e->f2);
}

static void env_free(struct env *e)
{
	fake_qmp_free(e->f);
	if (e->f2)
		fake_qmp_free(e->f2);
	mrs_test_tmpdir_remove(e->dir);
	if (e->dir2)
		mrs_test_tmpdir_remove(e->dir2);
}

/* The last command a server received. */
static const char *last_cmd(struct fake_qmp *f)
{
	size_t n = fake_qmp_count(f);

	return n ? fake_qmp_cmd(f, n - 1) : "";
}

/* The qom-list answer for backends "ID:TYPE" ... */
static char *qom_list(const char *const *backends, size_t n)
{
	char *s = strdup("[{\"name\": \"type\", \"type\": \"string\"}"), *t;

	for (size_t i = 0; i < n; i++) {
		const char *colon = strchr(backends[i], ':');

		assert_int_not_equal(
		    asprintf(&t, "%s, {\"name\": \"%.*s\", \"type\": \"child<%s>\"}", s,
			     (int)(colon - backends[i]), backends[i], colon + 1),
		    -1);
		free(s);
		s = t;
	}
	t = NULL;
	assert_int_not_equal(asprintf(&t, "%s]", s), -1);
	free(s);
	return t;
}

static int make_memfd(uint64_t size)
{
	int fd = memfd_create("memory-backend-memfd", MFD_CLOEXEC);

	assert_true(fd >= 0);
	assert_int_equal(ftruncate(fd, (off_t)size), 0);
	return fd;
}

/*
 * Catches a file backend not reached at its mem-path, a memfd backend not
 * found among the descriptors of QEMU's process (here: this one) or taken
 * at the wrong size, the block not named by the backend's id, and --ram
 * blocks lost (an override of a backend, or one added).
 */
static void test_backends_file_and_memfd(void **state)
{
	static const char *const kinds[] = {"pc.ram:memory-backend-file",
					    "mem1:memory-backend-memfd", "vga:memory-backend-file"};
	char *list = qom_list(kinds, 3), *file, *other, want_memfd[64];
	/* Another memfd, of another size: not the backend's. */
	int small = make_memfd(MIB), fd = make_memfd(2 * MIB);
	struct mrs_ram given[] = {{.name = "vga", .path = "/elsewhere/vga.ram"},
				  {.name = "extra", .path = "/x/extra.ram", .size = 4096}};
	const struct mrs_ram *ram;
	unsigned n;
	struct env e;

	(void)state;
	assert_int_not_equal(asprintf(&file, "\"%s/guest.ram\"", "/dev/shm"), -1);
	assert_int_not_equal(asprintf(&other, "\"%s\"", "/dev/shm/vga.ram"), -1);
	{
		const struct fake_qmp_step steps[] = {
		    MACHINE_STEP,
		    {.cmd = "qom-list", .ret = list},
		    {.cmd = "qom-get", .ret = "\"memory-backend-file\""},
		    {.cmd = "qom-get", .ret = "1048576"},
		    {.cmd = "qom-get", .ret = "true"},
		    {.cmd = "qom-get", .ret = file},
		    {.cmd = "qom-get", .ret = "\"memory-backend-memfd\""},
		    {.cmd = "qom-get", .ret = "2097152"},
		    {.cmd = "qom-get", .ret = "true"},
		    {.cmd = "qom-get", .ret = "\"memory-backend-file\""},
		    {.cmd = "qom-get", .ret = "1048576"},
		    {.cmd = "qom-get", .ret = "true"},
		    {.cmd = "qom-get", .ret = other},
		};

		env_start(&e, steps, ARRAY_SIZE(steps), 0);
		assert_int_equal(mrs_qemu_pid(e.q), getpid());
		assert_string_equal(mrs_qemu_producer(e.q), "QEMU 7.2.0");
		assert_string_equal(mrs_qemu_machine(e.q), "pc-i440fx-7.2");
		if (mrs_qemu_ram(e.q, given, 2, &ram, &n, &e.err))
			print_error("%s\n", e.err.msg);
		assert_int_equal(n, 4);
		assert_string_equal(ram[0].name, "pc.ram");
		assert_string_equal(ram[0].path, "/dev/shm/guest.ram");
		assert_int_equal(ram[0].size, MIB);
		assert_string_equal(ram[1].name, "mem1");
		snprintf(want_memfd, sizeof(want_memfd), "/proc/%d/fd/%d", getpid(), fd);
		assert_string_equal(ram[1].path, want_memfd);
		assert_int_equal(ram[1].size, 2 * MIB);
		assert_string_equal(ram[2].name, "vga");
		assert_string_equal(ram[2].path, "/elsewhere/vga.ram"); /* --ram wins */
		assert_string_equal(ram[3].name, "extra");
		assert_int_equal(ram[3].size, 4096);
		assert_string_equal(fake_qmp_args(e.f, 3),
				    "{\"path\":\"/objects/pc.ram\",\"property\":\"type\"}");
		env_end(&e);
		env_free(&e);
	}
	close(small);
	close(fd);
	free(list);
	free(file);
	free(other);
}

/* A file of size bytes at path, and (if map) mapped shared here (the fake's peer, "QEMU"). */
static void make_file(const char *path, uint64_t size, bool map)
{
	int fd = open(path, O_RDWR | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);

	assert_true(fd >= 0);
	assert_int_equal(ftruncate(fd, (off_t)size), 0);
	if (map)
		assert_true(mmap(NULL, size, PROT_READ, MAP_SHARED, fd, 0) != MAP_FAILED);
	close(fd);
}

/*
 * Catches a block taken by its path alone: with --qmp, a --ram override
 * that is not a file QEMU maps (a copy of the RAM file elsewhere, a file
 * that does not exist, a memfd QEMU does not map) must be refused naming
 * the block, the path and what QEMU maps for it; QEMU's own files and
 * memfds pass.
 */
static void test_ram_must_be_mapped(void **state)
{
	static const char *const kinds[] = {"pc.ram:memory-backend-file",
					    "mem1:memory-backend-memfd"};
	char *list = qom_list(kinds, 2), *dir = mrs_test_tmpdir(), ram_file[600], copy[600],
	     none[600], mem_path[700], unmapped[64];
	int fd = make_memfd(2 * MIB), other = make_memfd(2 * MIB);
	struct mrs_ram given = {.name = "pc.ram"};
	const struct mrs_ram *ram;
	unsigned n;
	struct env e;

	(void)state;
	snprintf(ram_file, sizeof(ram_file), "%s/guest.ram", dir);
	snprintf(copy, sizeof(copy), "%s/copy.ram", dir);
	snprintf(none, sizeof(none), "%s/none.ram", dir);
	snprintf(mem_path, sizeof(mem_path), "\"%s\"", ram_file);
	make_file(ram_file, MIB, true);
	make_file(copy, MIB, false);
	assert_true(mmap(NULL, 2 * MIB, PROT_READ, MAP_SHARED, fd, 0) != MAP_FAILED);
	{
		const struct fake_qmp_step steps[] = {
		    MACHINE_STEP,
		    {.cmd = "qom-list", .ret = list},
		    {.cmd = "qom-get", .ret = "\"memory-backend-file\""},
		    {.cmd = "qom-get", .ret = "1048576"},
		    {.cmd = "qom-get", .ret = "true"},
		    {.cmd = "qom-get", .ret = mem_path},
		    {.cmd = "qom-get", .ret = "\"memory-backend-memfd\""},
		    {.cmd = "qom-get", .ret = "2097152"},
		    {.cmd = "qom-get", .ret = "true"},
		};

		/* Two memfds of that size: mem1 is named by the one this process maps. */
		snprintf(unmapped, sizeof(unmapped), "/proc/%d/fd/%d", getpid(), other);
		env_start(&e, steps, ARRAY_SIZE(steps), 0);
		given = (struct mrs_ram){.name = "mem1", .path = unmapped};
		assert_int_equal(mrs_qemu_ram(e.q, &given, 1, &ram, &n, &e.err), 0);
		assert_int_equal(mrs_qemu_check_mapped(e.q, ram, n, &e.err), -MRS_EUSAGE);
		assert_msg_has(&e.err, "block 'mem1': '");
		assert_msg_has(&e.err, "is not a file QEMU");
		snprintf(unmapped, sizeof(unmapped), "/proc/%d/fd/%d", getpid(), fd);
		assert_int_equal(mrs_qemu_ram(e.q, &given, 1, &ram, &n, &e.err), 0);
		assert_int_equal(mrs_qemu_check_mapped(e.q, ram, n, &e.err), 0);
		given = (struct mrs_ram){.name = "pc.ram", .path = copy};
		assert_int_equal(mrs_qemu_ram(e.q, &given, 1, &ram, &n, &e.err), -MRS_EUSAGE);
		assert_msg_has(&e.err, "2 memfds"); /* without mem1 named, it cannot be told */
		{
			struct mrs_ram both[] = {given, {.name = "mem1", .path = unmapped}};

			assert_int_equal(mrs_qemu_ram(e.q, both, 2, &ram, &n, &e.err), 0);
			assert_int_equal(mrs_qemu_check_mapped(e.q, ram, n, &e.err), -MRS_EUSAGE);
			assert_msg_has(&e.err, "block 'pc.ram'");
			assert_msg_has(&e.err, copy);
			assert_msg_has(&e.err, "is not a file QEMU");
			assert_msg_has(&e.err, ram_file); /* what QEMU maps instead */
			both[0].path = none;
			assert_int_equal(mrs_qemu_ram(e.q, both, 2, &ram, &n, &e.err), 0);
			assert_int_equal(mrs_qemu_check_mapped(e.q, ram, n, &e.err), -MRS_EUSAGE);
			assert_msg_has(&e.err, "does not exist");
			both[0].path = ram_file;
			assert_int_equal(mrs_qemu_ram(e.q, both, 2, &ram, &n, &e.err), 0);
			assert_int_equal(mrs_qemu_check_mapped(e.q, ram, n, &e.err), 0);
		}
		env_end(&e);
		env_free(&e);
	}
	close(fd);
	close(other);
	free(list);
	mrs_test_tmpdir_remove(dir);
}

/*
 * Catches a relative mem-path taken from mrsnap's working directory: it is
 * QEMU's (here this process's, as the fake's peer), from QEMU's.
 */
static void test_relative_mem_path(void **state)
{
	static const struct fake_qmp_step steps[] = {
	    MACHINE_STEP,
	    {.cmd = "qom-list",
	     .ret = "[{\"name\": \"pc.ram\", \"type\": \"child<memory-backend-file>\"}]"},
	    {.cmd = "qom-get", .ret = "\"memory-backend-file\""},
	    {.cmd = "qom-get", .ret = "1048576"},
	    {.cmd = "qom-get", .ret = "true"},
	    {.cmd = "qom-get", .ret = "\"vm/guest.ram\""},
	};
	char cwd[4096], want[4200];
	const struct mrs_ram *ram;
	unsigned n;
	struct env e;

	(void)state;
	assert_non_null(getcwd(cwd, sizeof(cwd)));
	snprintf(want, sizeof(want), "%s/vm/guest.ram", cwd);
	env_start(&e, steps, ARRAY_SIZE(steps), 0);
	assert_int_equal(mrs_qemu_ram(e.q, NULL, 0, &ram, &n, &e.err), 0);
	assert_string_equal(ram[0].path, want);
	env_end(&e);
	env_free(&e);
}

/*
 * Catches a backend id cut short in the qom-get path (once a fixed 128-byte
 * buffer): QEMU sets no bound on an id, and a cut path names another object
 * (or none). A 200-byte id must reach QEMU whole; as a block name it is too
 * long, which must then be said naming it. Seen failing (the path cut at
 * 127 bytes) with the 128-byte buffer put back.
 */
static void test_long_backend_id(void **state)
{
	char id[201], *list, *want;
	struct env e;
	const struct mrs_ram *ram;
	unsigned n;

	(void)state;
	memset(id, 'b', sizeof(id) - 1);
	id[sizeof(id) - 1] = '\0';
	assert_int_not_equal(
	    asprintf(&list, "[{\"name\": \"%s\", \"type\": \"child<memory-backend-file>\"}]", id),
	    -1);
	assert_int_not_equal(
	    asprintf(&want, "{\"path\":\"/objects/%s\",\"property\":\"type\"}", id), -1);
	{
		const struct fake_qmp_step steps[] = {
		    MACHINE_STEP,
		    {.cmd = "qom-list", .ret = list},
		    {.cmd = "qom-get", .ret = "\"memory-backend-file\""},
		    {.cmd = "qom-get", .ret = "1048576"},
		    {.cmd = "qom-get", .ret = "true"},
		    {.cmd = "qom-get", .ret = "\"/dev/shm/guest.ram\""},
		};

		env_start(&e, steps, ARRAY_SIZE(steps), 0);
		assert_int_equal(mrs_qemu_ram(e.q, NULL, 0, &ram, &n, &e.err), -MRS_EUSAGE);
		assert_msg_has(&e.err, id);
		assert_string_equal(fake_qmp_args(e.f, 3), want);
		env_end(&e);
		env_free(&e);
	}
	free(list);
	free(want);
}

/* The backends of a script: one of type and share given, 1 MiB, and a mem-path if a file. */
static void refused_backend(const char *type, const char *share, const char *needle)
{
	char kind[128], *list, typ[64];
	const char *const kinds[] = {kind};
	struct env e;
	const struct mrs_ram *ram;
	unsigned n;

	snprintf(kind, sizeof(kind), "pc.ram:%s", type);
	snprintf(typ, sizeof(typ), "\"%s\"", type);
	list = qom_list(kinds, 1);
	{
		const struct fake_qmp_step steps[] = {
		    MACHINE_STEP,
		    {.cmd = "qom-list", .ret = list},
		    {.cmd = "qom-get", .ret = typ},
		    {.cmd = "qom-get", .ret = "1048576"},
		    {.cmd = "qom-get", .ret = share},
		    {.cmd = "qom-get", .ret = "\"/dev/shm/x.ram\""},
		};
		size_t nsteps = strcmp(type, "memory-backend-file") ? 5 : 6;

		env_start(&e, steps, nsteps, 0);
		assert_int_equal(mrs_qemu_ram(e.q, NULL, 0, &ram, &n, &e.err), -MRS_EUSAGE);
		assert_msg_has(&e.err, "memory backend 'pc.ram'");
		assert_msg_has(&e.err, needle);
		env_end(&e);
		env_free(&e);
	}
	free(list);
}

/*
 * Catches RAM that is not shared being saved (its pages would be missing
 * from the image: QEMU's writes stay in its private memory): a ram
 * backend, and a file backend with share=off, each refused by name.
 */
static void test_backend_not_shared(void **state)
{
	(void)state;
	refused_backend("memory-backend-ram", "false", "private memory");
	refused_backend("memory-backend-file", "false", "is not shared");
	refused_backend("memory-backend-memfd", "false", "is not shared");
}

/*
 * Catches a shared backend that is not the machine's RAM (no -machine
 * memory-backend=mem0: QEMU then makes its own private pc.ram from -m)
 * answered with "use memory-backend-file" although the user has one: the
 * message says mem0 is not used as RAM and what to add.
 */
static void test_backend_not_machine_ram(void **state)
{
	static const char *const kinds[] = {"pc.ram:memory-backend-ram",
					    "mem0:memory-backend-file"};
	char *list = qom_list(kinds, 2);
	const struct fake_qmp_step steps[] = {
	    MACHINE_STEP,
	    {.cmd = "qom-list", .ret = list},
	    {.cmd = "qom-get", .ret = "\"memory-backend-ram\""},
	    {.cmd = "qom-get", .ret = "1048576"},
	    {.cmd = "qom-get", .ret = "false"},
	    {.cmd = "qom-get", .ret = "\"memory-backend-file\""},
	    {.cmd = "qom-get", .ret = "1048576"},
	    {.cmd = "qom-get", .ret = "true"},
	    {.cmd = "qom-get", .ret = "\"/dev/shm/mem0.ram\""},
	};
	const struct mrs_ram *ram;
	unsigned n;
	struct env e;

	(void)state;
	env_start(&e, steps, ARRAY_SIZE(steps), 0);
	assert_int_equal(mrs_qemu_ram(e.q, NULL, 0, &ram, &n, &e.err), -MRS_EUSAGE);
	assert_msg_has(&e.err, "QEMU's RAM is 'pc.ram', a private memory-backend-ram");
	assert_msg_has(&e.err, "'mem0' is not used as RAM: add -machine memory-backend=mem0");
	env_end(&e);
	env_free(&e);
	free(list);
}

/*
 * Catches two memfd backends of one size given each other's descriptor
 * (nothing tells them apart): refused, asking for --ram, and accepted once
 * --ram names them.
 */
static void test_memfd_ambiguous(void **state)
{
	static const char *const kinds[] = {"m1:memory-backend-memfd", "m2:memory-backend-memfd"};
	char *list = qom_list(kinds, 2), p1[64], p2[64];
	int a = make_memfd(MIB), b = make_memfd(MIB);
	const struct fake_qmp_step steps[] = {
	    MACHINE_STEP,
	    {.cmd = "qom-list", .ret = list},
	    {.cmd = "qom-get", .ret = "\"memory-backend-memfd\""},
	    {.cmd = "qom-get", .ret = "1048576"},
	    {.cmd = "qom-get", .ret = "true"},
	    {.cmd = "qom-get", .ret = "\"memory-backend-memfd\""},
	    {.cmd = "qom-get", .ret = "1048576"},
	    {.cmd = "qom-get", .ret = "true"},
	};
	struct mrs_ram given[2] = {{.name = "m1", .path = p1}, {.name = "m2", .path = p2}};
	const struct mrs_ram *ram;
	unsigned n;
	struct env e;

	(void)state;
	snprintf(p1, sizeof(p1), "/proc/%d/fd/%d", getpid(), b);
	snprintf(p2, sizeof(p2), "/proc/%d/fd/%d", getpid(), a);
	env_start(&e, steps, ARRAY_SIZE(steps), 0);
	assert_int_equal(mrs_qemu_ram(e.q, NULL, 0, &ram, &n, &e.err), -MRS_EUSAGE);
	assert_msg_has(&e.err, "'m1', 'm2'");
	assert_msg_has(&e.err, "cannot be told");
	assert_msg_has(&e.err, "--ram NAME=/proc/");
	/* The backends are read once: named, they need no more questions to QEMU. */
	assert_int_equal(mrs_qemu_ram(e.q, given, 2, &ram, &n, &e.err), 0);
	assert_int_equal(n, 2);
	assert_string_equal(ram[0].path, p1);
	assert_string_equal(ram[1].path, p2);
	env_end(&e);
	env_free(&e);
	close(a);
	close(b);
	free(list);
}

/* An image of blocks "name:size" with device state of machine. */
static struct mrs_image_info *fake_image(const char *const *blocks, unsigned n, bool devstate,
					 const char *machine)
{
	struct mrs_image_info *info = calloc(1, sizeof(*info));

	info->nblocks = n;
	info->blocks = calloc(n, sizeof(*info->blocks));
	for (unsigned i = 0; i < n; i++) {
		const char *colon = strchr(blocks[i], ':');

		snprintf(info->blocks[i].name, sizeof(info->blocks[i].name), "%.*s",
			 (int)(colon - blocks[i]), blocks[i]);
		info->blocks[i].size = strtoull(colon + 1, NULL, 10);
	}
	info->devstate.present = devstate;
	snprintf(info->devstate.machine, sizeof(info->devstate.machine), "%s", machine);
	return info;
}

static void free_image(struct mrs_image_info *info)
{
	free(info->blocks);
	free(info);
}

/* The blocks of ram again, each a file of its size in dir that this process maps. */
struct mapped {
	struct mrs_ram ram[2];
	char path[2][512];
	void *map[2];
	unsigned n;
};

static void map_blocks(struct mapped *m, const char *dir, const struct mrs_ram *ram, unsigned n)
{
	assert_true(n <= 2);
	m->n = n;
	for (unsigned i = 0; i < n; i++) {
		int fd;

		snprintf(m->path[i], sizeof(m->path[i]), "%s/%s.ram", dir, ram[i].name);
		fd = open(m->path[i], O_RDWR | O_CREAT, 0600);
		assert_true(fd >= 0);
		assert_int_equal(ftruncate(fd, (off_t)ram[i].size), 0);
		m->map[i] = mmap(NULL, ram[i].size, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
		assert_true(m->map[i] != MAP_FAILED);
		close(fd);
		m->ram[i] =
		    (struct mrs_ram){.name = ram[i].name, .path = m->path[i], .size = ram[i].size};
	}
}

static void unmap_blocks(struct mapped *m)
{
	for (unsigned i = 0; i < m->n; i++) {
		munmap(m->map[i], m->ram[i].size);
		unlink(m->path[i]);
	}
}

/* A session whose QEMU has file backends pc.ram (1 MiB) and extra (1 MiB), in status. */
#define TWO_FILE_BACKENDS(list)                                                                    \
	{.cmd = "qom-list", .ret = list}, {.cmd = "qom-get", .ret = "\"memory-backend-file\""},    \
	    {.cmd = "qom-get", .ret = "1048576"}, {.cmd = "qom-get", .ret = "true"},               \
	    {.cmd = "qom-get", .ret = "\"/dev/shm/a.ram\""},                                       \
	    {.cmd = "qom-get", .ret = "\"memory-backend-file\""},                                  \
	    {.cmd = "qom-get", .ret = "1048576"}, {.cmd = "qom-get", .ret = "true"},               \
	{                                                                                          \
		.cmd = "qom-get", .ret = "\"/dev/shm/b.ram\""                                      \
	}

/*
 * Catches a restore into a QEMU whose RAM is not the image's: a size that
 * differs, a block of the image QEMU lacks, a backend the image lacks, each
 * named in one message, before QEMU is changed at all (no capability set);
 * and a QEMU that is not waiting for incoming state, an image without
 * device state, another machine type; and a backend's target QEMU does not
 * map (its mem-path file removed since it started: restore would create a
 * file QEMU never sees, seen with a real QEMU before check_qemu_maps()).
 */
static void test_incoming_checks(void **state)
{
	static const char *const kinds[] = {"pc.ram:memory-backend-file",
					    "extra:memory-backend-file"};
	static const char *const blocks[] = {"pc.ram:2097152", "vga:1048576"};
	static const char *const good[] = {"pc.ram:1048576", "extra:1048576"};
	char *list = qom_list(kinds, 2);
	const struct fake_qmp_step steps[] = {
	    MACHINE_STEP,
	    TWO_FILE_BACKENDS(list),
	    {.cmd = "query-status", .ret = INMIGRATE},
	    {.cmd = "query-status", .ret = RUNNING},
	    {.cmd = "query-status", .ret = INMIGRATE},
	    {.cmd = "query-status", .ret = INMIGRATE},
	};
	struct mapped mapped;
	struct mrs_image_info *bad = fake_image(blocks, 2, true, "pc-i440fx-7.2");
	struct mrs_image_info *ok = fake_image(good, 2, true, "pc-i440fx-7.2");
	struct mrs_image_info *ram_only = fake_image(good, 2, false, "");
	struct mrs_image_info *q35 = fake_image(good, 2, true, "pc-q35-7.2");
	struct mrs_devstate_sink sink;
	const struct mrs_ram *ram;
	unsigned n;
	struct env e;

	(void)state;
	env_start(&e, steps, ARRAY_SIZE(steps), 0);
	assert_int_equal(mrs_qemu_ram(e.q, NULL, 0, &ram, &n, &e.err), 0);
	map_blocks(&mapped, e.dir, ram, n);
	assert_int_equal(mrs_qemu_incoming(e.q, bad, ram, n, &sink, &e.err), -MRS_EUSAGE);
	assert_msg_has(&e.err, "block 'pc.ram' is 2097152 bytes in the image, 1048576 in QEMU");
	assert_msg_has(&e.err, "QEMU's backend 'extra' (1048576 bytes) is not in the image");
	assert_msg_has(&e.err, "the image's block 'vga' (1048576 bytes) is no backend");
	assert_string_equal(last_cmd(e.f), "query-status");
	assert_int_equal(mrs_qemu_incoming(e.q, ram_only, ram, n, &sink, &e.err), -MRS_EUSAGE);
	assert_msg_has(&e.err, "no device state");
	assert_int_equal(mrs_qemu_incoming(e.q, q35, ram, n, &sink, &e.err), -MRS_EUSAGE);
	assert_msg_has(&e.err, "machine type 'pc-q35-7.2', QEMU runs 'pc-i440fx-7.2'");
	assert_int_equal(mrs_qemu_incoming(e.q, ok, ram, n, &sink, &e.err), -MRS_EUSAGE);
	assert_msg_has(&e.err, "not waiting for incoming state (its status is 'running': it has "
			       "a guest already, restored before");
	/* QEMU (this process: the fake is a thread) does not map /dev/shm/a.ram. */
	assert_int_equal(mrs_qemu_incoming(e.q, ok, ram, n, &sink, &e.err), -MRS_EUSAGE);
	assert_msg_has(&e.err, "does not map '/dev/shm/a.ram', the target of its backend 'pc.ram'");
	assert_int_equal(mrs_qemu_incoming(e.q, ok, mapped.ram, n, &sink, &e.err), 0);
	assert_non_null(sink.start);
	assert_int_equal(sink.size, sizeof(sink));
	unmap_blocks(&mapped);
	env_end(&e);
	env_free(&e);
	free_image(bad);
	free_image(ok);
	free_image(ram_only);
	free_image(q35);
	free(list);
}

/*
 * Catches a failed load of the device state reported as "QEMU gave no
 * reason" (QEMU says why only on its standard error, "Unknown savevm
 * section ..."): the message says where the reason is and what to change,
 * naming the snapshot's QEMU and machine. Also: the capabilities are set
 * only once the load begins (read first), never during the checks.
 */
static void test_load_failed(void **state)
{
	static const char *const kinds[] = {"pc.ram:memory-backend-file",
					    "extra:memory-backend-file"};
	static const char *const good[] = {"pc.ram:1048576", "extra:1048576"};
	char *list = qom_list(kinds, 2);
	const struct fake_qmp_step steps[] = {
	    MACHINE_STEP,
	    TWO_FILE_BACKENDS(list),
	    {.cmd = "query-status", .ret = INMIGRATE},
	    CAPS_QUERY,
	    CAPS_STEP,
	    {.cmd = "getfd"},
	    {.cmd = "migrate-incoming",
	     .events_after = "{\"event\": \"MIGRATION\", \"data\": {\"status\": \"active\"}}\n"
			     "{\"event\": \"MIGRATION\", \"data\": {\"status\": \"failed\"}}"},
	    {.cmd = "query-migrate", .ret = "{\"status\": \"failed\"}"},
	};
	struct mrs_image_info *ok = fake_image(good, 2, true, "pc-i440fx-7.2");
	struct mrs_devstate_sink sink;
	const struct mrs_ram *ram;
	unsigned n;
	struct mapped mapped;
	struct env e;
	int sv[2];

	(void)state;
	env_start(&e, steps, ARRAY_SIZE(steps), 0);
	assert_int_equal(mrs_qemu_ram(e.q, NULL, 0, &ram, &n, &e.err), 0);
	map_blocks(&mapped, e.dir, ram, n); /* targets this process ("QEMU") maps */
	assert_int_equal(mrs_qemu_incoming(e.q, ok, mapped.ram, n, &sink, &e.err), 0);
	assert_string_equal(last_cmd(e.f), "query-status"); /* nothing set yet */
	assert_int_equal(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv), 0);
	assert_int_equal(sink.start(sink.ctx, sv[1], &e.err), 0);
	close(sv[1]);
	assert_int_equal(sink.finish(sink.ctx, 0, &e.err), -EIO);
	assert_msg_has(&e.err, "QEMU failed while loading the device state; its reason is on "
			       "QEMU's standard error");
	assert_msg_has(&e.err, "same devices and machine as the snapshot's QEMU");
	assert_msg_has(&e.err, "machine pc-i440fx-7.2");
	env_end(&e); /* the QEMU exits: no capability is sent to it */
	unmap_blocks(&mapped);
	env_free(&e);
	close(sv[0]);
	free_image(ok);
	free(list);
}

/*
 * QEMU exits while the device state is sent (a device it does not know:
 * it stops reading, says why on its standard error, and exits). The engine
 * asks the sink's finish then, with the bytes sent so far; the sink must
 * say that QEMU exited and where its reason is, which the restore's message
 * leads with. Catches a finish that reports a QMP connection gone as a
 * bare "connection reset" (or waits for a MIGRATION event that never comes).
 */
static void test_qemu_exits_during_load(void **state)
{
	static const char *const kinds[] = {"pc.ram:memory-backend-file",
					    "extra:memory-backend-file"};
	static const char *const good[] = {"pc.ram:1048576", "extra:1048576"};
	char *list = qom_list(kinds, 2);
	const struct fake_qmp_step steps[] = {
	    MACHINE_STEP,
	    TWO_FILE_BACKENDS(list),
	    {.cmd = "query-status", .ret = INMIGRATE},
	    CAPS_QUERY,
	    CAPS_STEP,
	    {.cmd = "getfd"},
	    {.cmd = "migrate-incoming",
	     .events_after = "{\"event\": \"MIGRATION\", \"data\": {\"status\": \"active\"}}"},
	};
	struct mrs_image_info *ok = fake_image(good, 2, true, "pc-i440fx-7.2");
	struct mrs_devstate_sink sink;
	const struct mrs_ram *ram;
	unsigned n;
	struct mapped mapped;
	struct env e;
	int sv[2];

	(void)state;
	env_start(&e, steps, ARRAY_SIZE(steps), 0);
	assert_int_equal(mrs_qemu_ram(e.q, NULL, 0, &ram, &n, &e.err), 0);
	map_blocks(&mapped, e.dir, ram, n);
	assert_int_equal(mrs_qemu_incoming(e.q, ok, mapped.ram, n, &sink, &e.err), 0);
	assert_int_equal(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv), 0);
	assert_int_equal(sink.start(sink.ctx, sv[1], &e.err), 0);
	close(sv[1]);
	fake_qmp_free(e.f); /* QEMU exits: its QMP socket closes */
	assert_int_equal(sink.finish(sink.ctx, 4096, &e.err), -ECONNRESET);
	assert_msg_has(&e.err, "QEMU exited (it closed its QMP connection) while loading the "
			       "device state; its reason is on QEMU's standard error");
	mrs_qemu_close(e.q);
	unmap_blocks(&mapped);
	mrs_test_tmpdir_remove(e.dir);
	close(sv[0]);
	free_image(ok);
	free(list);
}

/* freeze and thaw of a QEMU freezer, by hand (what mrs_save does). */
static int freeze_thaw(struct env *e, struct mrs_freezer **f)
{
	assert_int_equal(mrs_qemu_freezer(e->q, f, &e->err), 0);
	return mrs_freezer_freeze(*f, &e->err);
}

/*
 * Catches a freeze that does not stop a running guest, or does not confirm
 * it, and a thaw that does not resume it; and a guest already paused
 * before mrsnap came being resumed (or stopped again).
 */
static void test_freeze_stop_cont(void **state)
{
	static const struct fake_qmp_step running[] = {
	    MACHINE_STEP,
	    {.cmd = "query-status", .ret = RUNNING},
	    {.cmd = "stop", .events = "{\"event\": \"STOP\"}"},
	    {.cmd = "query-status", .ret = PAUSED},
	    {.cmd = "cont"},
	};
	static const struct fake_qmp_step paused[] = {
	    MACHINE_STEP,
	    {.cmd = "query-status", .ret = PAUSED},
	};
	static const struct fake_qmp_step unstopped[] = {
	    MACHINE_STEP,    {.cmd = "query-status", .ret = RUNNING},
	    {.cmd = "stop"}, {.cmd = "query-status", .ret = RUNNING},
	    {.cmd = "cont"},
	};
	struct mrs_freezer *f;
	struct env e;

	(void)state;
	env_start(&e, running, ARRAY_SIZE(running), 0);
	assert_int_equal(freeze_thaw(&e, &f), 0);
	assert_string_equal(last_cmd(e.f), "query-status");
	assert_int_equal(mrs_freezer_thaw(f, &e.err), 0);
	mrs_freezer_free(f);
	env_end(&e);
	assert_string_equal(last_cmd(e.f), "cont");
	env_free(&e);

	env_start(&e, paused, ARRAY_SIZE(paused), 0);
	assert_int_equal(freeze_thaw(&e, &f), 0);
	assert_int_equal(mrs_freezer_thaw(f, &e.err), 0);
	mrs_freezer_free(f);
	env_end(&e); /* the script ends at query-status: no stop, no cont */
	env_free(&e);

	env_start(&e, unstopped, ARRAY_SIZE(unstopped), 0);
	assert_int_equal(freeze_thaw(&e, &f), -EAGAIN);
	assert_msg_has(&e.err, "still runs the guest after 'stop'");
	assert_int_equal(mrs_freezer_thaw(f, &e.err), 0);
	mrs_freezer_free(f);
	env_end(&e);
	env_free(&e);
}

/* Catches a refused stop not quoted, and the guest not resumed after it (stop may have
 * half-worked). */
static void test_stop_refused(void **state)
{
	static const struct fake_qmp_step steps[] = {
	    MACHINE_STEP,
	    {.cmd = "query-status", .ret = RUNNING},
	    {.cmd = "stop", .error = "Guest is being debugged"},
	    {.cmd = "cont"},
	};
	struct mrs_freezer *f;
	struct env e;

	(void)state;
	env_start(&e, steps, ARRAY_SIZE(steps), 0);
	assert_int_equal(freeze_thaw(&e, &f), -EREMOTEIO);
	assert_msg_has(&e.err, "cannot stop the guest");
	assert_msg_has(&e.err, "Guest is being debugged");
	assert_int_equal(mrs_freezer_thaw(f, &e.err), 0);
	mrs_freezer_free(f);
	env_end(&e);
	env_free(&e);
}

/* The device state's start over a socketpair, as the engine calls it; returns its result. */
static int devstate_start(struct env *e, struct mrs_devstate_source *src, int *mine)
{
	int sv[2], ret;

	assert_int_equal(mrs_qemu_devstate_source(e->q, src, &e->err), 0);
	assert_int_equal(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv), 0);
	ret = src->start(src->ctx, sv[1], &e->err);
	close(sv[1]);
	*mine = sv[0];
	return ret;
}

/*
 * Catches QEMU's refusal of migrate not quoted, its descriptor left with
 * QEMU (closefd), and the guest not resumed after it.
 */
static void test_migrate_refused(void **state)
{
	static const struct fake_qmp_step steps[] = {
	    MACHINE_STEP,
	    {.cmd = "query-status", .ret = RUNNING},
	    {.cmd = "stop"},
	    {.cmd = "query-status", .ret = PAUSED},
	    {.cmd = "query-status", .ret = PAUSED},
	    CAPS_QUERY,
	    CAPS_STEP,
	    {.cmd = "getfd"},
	    {.cmd = "migrate",
	     .error = "Migration is disabled when VirtFS export path '/x' is mounted"},
	    {.cmd = "closefd"},
	    CAPS_STEP,
	    {.cmd = "cont"},
	};
	struct mrs_devstate_source src;
	struct mrs_freezer *f;
	struct env e;
	int fd;

	(void)state;
	env_start(&e, steps, ARRAY_SIZE(steps), 0);
	assert_int_equal(freeze_thaw(&e, &f), 0);
	assert_int_equal(devstate_start(&e, &src, &fd), -EREMOTEIO);
	assert_msg_has(&e.err, "cannot save QEMU's device state: QEMU refused 'migrate': Migration "
			       "is disabled when VirtFS");
	assert_true(fake_qmp_fd(e.f, 8) >= 0); /* getfd carried the descriptor */
	assert_string_equal(fake_qmp_args(e.f, 7), CAPS_ON);
	assert_string_equal(fake_qmp_args(e.f, 9), "{\"uri\":\"fd:mrsnap-devstate\"}");
	assert_int_equal(mrs_freezer_thaw(f, &e.err), 0);
	mrs_freezer_free(f);
	env_end(&e);
	assert_string_equal(last_cmd(e.f), "cont");
	/* Put back before cont, as they were: the user's next migrate carries RAM. */
	assert_string_equal(fake_qmp_args(e.f, 11), CAPS_BACK);
	env_free(&e);
	close(fd);
}

/*
 * Catches a snapshot of a QEMU waiting for incoming state going ahead: it
 * would read all RAM and fail only at migrate. Refused when the source is
 * made, before anything (no capability set).
 */
static void test_source_inmigrate(void **state)
{
	static const struct fake_qmp_step steps[] = {
	    MACHINE_STEP,
	    {.cmd = "query-status", .ret = INMIGRATE},
	};
	struct mrs_devstate_source src;
	struct env e;

	(void)state;
	env_start(&e, steps, ARRAY_SIZE(steps), 0);
	assert_int_equal(mrs_qemu_devstate_source(e.q, &src, &e.err), -MRS_EUSAGE);
	assert_msg_has(&e.err, "QEMU is waiting for incoming state (status 'inmigrate'");
	env_end(&e);
	env_free(&e);
}

/*
 * Catches capabilities the user had on already switched off afterwards (or
 * set again): only what mrsnap changed is put back.
 */
static void test_capabilities_already_on(void **state)
{
	static const struct fake_qmp_step steps[] = {
	    MACHINE_STEP,
	    {.cmd = "query-status", .ret = RUNNING},
	    {.cmd = "query-migrate-capabilities",
	     .ret = "[{\"capability\": \"x-ignore-shared\", \"state\": true}, "
		    "{\"capability\": \"events\", \"state\": true}]"},
	    {.cmd = "getfd"},
	    {.cmd = "migrate", .error = "Migration is disabled"},
	    {.cmd = "closefd"},
	};
	struct mrs_devstate_source src;
	struct env e;
	int fd;

	(void)state;
	env_start(&e, steps, ARRAY_SIZE(steps), 0);
	assert_int_equal(devstate_start(&e, &src, &fd), -EREMOTEIO);
	env_end(&e); /* the script ends at closefd: no migrate-set-capabilities at all */
	env_free(&e);
	close(fd);
}

/*
 * Catches a guest left stopped when the QMP connection broke after stop
 * (QEMU closed it mid-command, or stopped answering: that connection takes
 * no more commands): thaw reaches QEMU again on a new connection and sends
 * cont there, and the migration whose answer was lost (it may run) is
 * cancelled first.
 */
static void broken_then_cont(enum fake_qmp_action action, unsigned ms, int code, const char *needle)
{
	const struct fake_qmp_step first[] = {
	    MACHINE_STEP,
	    {.cmd = "query-status", .ret = RUNNING},
	    {.cmd = "stop"},
	    {.cmd = "query-status", .ret = PAUSED},
	    {.cmd = "query-status", .ret = PAUSED},
	    CAPS_QUERY,
	    CAPS_STEP,
	    {.cmd = "getfd"},
	    {.cmd = "migrate", .action = action},
	};
	/* The cancel is awaited (QEMU takes no capability while cancelling), then they go back. */
	static const struct fake_qmp_step second[] = {
	    {.cmd = "migrate_cancel"},
	    {.cmd = "query-migrate",
	     .ret = "{\"status\": \"cancelling\"}",
	     .events_after = "{\"event\": \"MIGRATION\", \"data\": {\"status\": \"cancelled\"}}"},
	    CAPS_STEP,
	    {.cmd = "cont"},
	};
	struct mrs_devstate_source src;
	struct mrs_freezer *f;
	struct env e;
	int fd;

	env_start(&e, first, ARRAY_SIZE(first), ms);
	assert_int_equal(freeze_thaw(&e, &f), 0);
	env_second(&e, second, ARRAY_SIZE(second));
	assert_int_equal(devstate_start(&e, &src, &fd), code);
	assert_msg_has(&e.err, needle);
	assert_int_equal(mrs_freezer_thaw(f, &e.err), 0);
	mrs_freezer_free(f);
	env_end(&e);
	assert_string_equal(last_cmd(e.f2), "cont");
	assert_string_equal(fake_qmp_args(e.f2, 3), CAPS_BACK);
	env_free(&e);
	close(fd);
}

static void test_close_mid_command(void **state)
{
	(void)state;
	broken_then_cont(FAKE_QMP_CLOSE, 0, -ECONNRESET, "closed");
}

static void test_timeout(void **state)
{
	(void)state;
	broken_then_cont(FAKE_QMP_HANG, SHORT_MS, -ETIMEDOUT, "within 200 ms");
}

/*
 * Catches cont sent on the connection a stop that timed out left unusable,
 * when no migration is there to cancel (whose cmd_again would reconnect
 * first and hide it): the guest that stop may have stopped stays stopped.
 * Seen failing with mrs_qemu_cont() on mrs_qemu_cmd().
 */
static void test_stop_timeout_then_cont(void **state)
{
	static const struct fake_qmp_step first[] = {
	    MACHINE_STEP,
	    {.cmd = "query-status", .ret = RUNNING},
	    {.cmd = "stop", .action = FAKE_QMP_HANG},
	};
	static const struct fake_qmp_step second[] = {{.cmd = "cont"}};
	struct mrs_freezer *f;
	struct env e;

	(void)state;
	env_start(&e, first, ARRAY_SIZE(first), SHORT_MS);
	env_second(&e, second, ARRAY_SIZE(second));
	assert_int_equal(freeze_thaw(&e, &f), -ETIMEDOUT);
	assert_msg_has(&e.err, "cannot stop the guest");
	assert_int_equal(mrs_freezer_thaw(f, &e.err), 0);
	mrs_freezer_free(f);
	env_end(&e);
	assert_string_equal(last_cmd(e.f2), "cont");
	env_free(&e);
}

/* What QEMU says while a migration runs, ending with status (a format for it). */
#define MIGRATION_EVENTS                                                                           \
	"{\"event\": \"MIGRATION_PASS\", \"data\": {\"pass\": 1}}\n"                               \
	"{\"event\": \"MIGRATION\", \"data\": {\"status\": \"active\"}}\n"                         \
	"{\"event\": \"MIGRATION\", \"data\": {\"status\": \"device\"}}\n"                         \
	"{\"event\": \"MIGRATION\", \"data\": {\"status\": \"%s\"}}"

/* The pc.ram backend of devstate_run: a file (a mem-path) or a memfd, of size bytes. */
struct pc_ram {
	bool memfd;
	uint64_t size;
};

/* A devstate source run through start and finish against a script ending in query-migrate. */
static void devstate_run(struct pc_ram pc, const char *status, const char *migrate_info, int code,
			 const char *needle, const char *warning)
{
	char events[1024], size[32], type[64];
	struct fake_qmp_step steps[16] = {
	    MACHINE_STEP,
	    {.cmd = "qom-list",
	     .ret = pc.memfd
			? "[{\"name\": \"pc.ram\", \"type\": \"child<memory-backend-memfd>\"}]"
			: "[{\"name\": \"pc.ram\", \"type\": \"child<memory-backend-file>\"}]"},
	    {.cmd = "qom-get", .ret = type},
	    {.cmd = "qom-get", .ret = size},
	    {.cmd = "qom-get", .ret = "true"},
	};
	const struct fake_qmp_step after[] = {
	    {.cmd = "query-status", .ret = RUNNING},
	    CAPS_QUERY,
	    CAPS_STEP,
	    {.cmd = "getfd"},
	    {.cmd = "migrate",
	     .events = "{\"event\": \"MIGRATION\", \"data\": {\"status\": \"setup\"}}",
	     .events_after = events},
	    {.cmd = "query-migrate", .ret = migrate_info},
	    CAPS_STEP,
	};
	size_t nsteps = 5;
	/* A memfd backend is found among this process's descriptors ("QEMU" is this one). */
	int memfd = pc.memfd ? make_memfd(pc.size) : -1;
	struct mrs_devstate_source src;
	const struct mrs_ram *ram;
	unsigned n;
	struct env e;
	int fd;

	snprintf(type, sizeof(type), "\"memory-backend-%s\"", pc.memfd ? "memfd" : "file");
	snprintf(size, sizeof(size), "%llu", (unsigned long long)pc.size);
	if (!pc.memfd)
		steps[nsteps++] =
		    (struct fake_qmp_step){.cmd = "qom-get", .ret = "\"/dev/shm/a.ram\""};
	for (size_t i = 0; i < ARRAY_SIZE(after); i++)
		steps[nsteps++] = after[i];
	snprintf(events, sizeof(events), MIGRATION_EVENTS, status);
	env_start(&e, steps, nsteps, 0);
	assert_int_equal(mrs_qemu_ram(e.q, NULL, 0, &ram, &n, &e.err), 0);
	assert_int_equal(devstate_start(&e, &src, &fd), 0);
	assert_string_equal(src.producer, "QEMU 7.2.0");
	assert_string_equal(src.machine, "pc-i440fx-7.2");
	assert_int_equal(src.finish(src.ctx, 317994, &e.err), code);
	if (needle)
		assert_msg_has(&e.err, needle);
	if (warning) {
		assert_non_null(mrs_qemu_warning(e.q));
		assert_non_null(strstr(mrs_qemu_warning(e.q), warning));
	} else {
		assert_null(mrs_qemu_warning(e.q));
	}
	/* Back as they were once the migration is over, whatever its end. */
	assert_string_equal(last_cmd(e.f), "migrate-set-capabilities");
	assert_string_equal(fake_qmp_args(e.f, fake_qmp_count(e.f) - 1), CAPS_BACK);
	env_end(&e);
	env_free(&e);
	close(fd);
	if (memfd >= 0)
		close(memfd);
}

/*
 * Catches a finish that returns before QEMU says the migration completed
 * (it must take the MIGRATION event that ends it, not the first one), a
 * failed migration taken for success or without QEMU's reason, and shared
 * RAM that QEMU put into its own stream anyway going unmentioned (newer
 * QEMUs do so for memfd backends) or mentioned when it did not: ram.total
 * of QEMU 7.2 counts only the blocks not left out, and a 16 MiB video RAM
 * (never shared, always in the stream) next to a 4 MiB file-backed pc.ram
 * (always left out) is no sign of it (the warning used to compare with the
 * smallest backend, and fired).
 */
static void test_devstate_finish(void **state)
{
	const struct pc_ram file_256m = {false, 268435456}, file_4m = {false, 4194304},
			    memfd_4m = {true, 4194304}, memfd_256m = {true, 268435456};

	(void)state;
	devstate_run(file_256m, "completed",
		     "{\"status\": \"completed\", \"ram\": {\"total\": 532480}}", 0, NULL, NULL);
	/* vga.vram 16 MiB + ROMs: the video RAM went in, not pc.ram. */
	devstate_run(file_4m, "completed",
		     "{\"status\": \"completed\", \"ram\": {\"total\": 17309696}}", 0, NULL, NULL);
	devstate_run(memfd_256m, "completed",
		     "{\"status\": \"completed\", \"ram\": {\"total\": 17309696}}", 0, NULL, NULL);
	/* The memfd pc.ram went in, next to the video RAM and the ROMs. */
	devstate_run(memfd_4m, "completed",
		     "{\"status\": \"completed\", \"ram\": {\"total\": 21504000}}", 0, NULL,
		     "holds that memory twice");
	devstate_run(memfd_256m, "completed",
		     "{\"status\": \"completed\", \"ram\": {\"total\": 268967936}}", 0, NULL,
		     "holds that memory twice");
	devstate_run(file_256m, "failed",
		     "{\"status\": \"failed\", \"error-desc\": \"Unable to write to socket: "
		     "Broken pipe\"}",
		     -EIO,
		     "QEMU could not save its device state (migration failed): Unable to "
		     "write to socket: Broken pipe",
		     NULL);
}

/*
 * A process standing in for a VMM: it maps a memfd of size bytes (or the
 * file) and waits; or, not mapping it, only holds it open (a disk image).
 */
struct vmm {
	pid_t pid;
	int fd;	  /* the memfd's number in the child */
	int hold; /* closing it ends the child */
	char path[64];
};

static void vmm_start_as(struct vmm *v, uint64_t size, const char *file, bool map)
{
	int ready[2], hold[2];
	char c;

	assert_int_equal(pipe(ready), 0);
	assert_int_equal(pipe(hold), 0);
	v->pid = fork();
	assert_true(v->pid >= 0);
	if (v->pid == 0) {
		int fd = file ? open(file, O_RDWR) : make_memfd(size);
		void *p = map ? mmap(NULL, size, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0) : NULL;

		if (p == MAP_FAILED || write(ready[1], &fd, sizeof(fd)) != sizeof(fd))
			_exit(1);
		close(hold[1]);
		while (read(hold[0], &c, 1) > 0)
			;
		_exit(0);
	}
	close(hold[0]);
	close(ready[1]);
	assert_int_equal(read(ready[0], &v->fd, sizeof(v->fd)), sizeof(v->fd));
	close(ready[0]);
	v->hold = hold[1];
	snprintf(v->path, sizeof(v->path), "/proc/%d/fd/%d", v->pid, v->fd);
}

static void vmm_start(struct vmm *v, uint64_t size, const char *file)
{
	vmm_start_as(v, size, file, true);
}

static void vmm_stop(struct vmm *v)
{
	int status;

	close(v->hold);
	assert_int_equal(waitpid(v->pid, &status, 0), v->pid);
}

/* Restore block pc.ram of image into path for a VMM of pid vmm. */
static int restore_into(const char *image, const char *path, int vmm, struct mrs_error *err)
{
	struct mrs_restore_opts o = MRS_RESTORE_OPTS_INIT;
	struct mrs_ram t = {.name = "pc.ram", .path = path};

	o.vmm_pid = vmm;
	return mrs_restore(image, &t, 1, &o, NULL, err);
}

/*
 * Catches the restore engine's rules for a VMM waiting for incoming state
 * (mrs_restore_opts.vmm_pid) being too loose or too strict: its own memfd,
 * /proc/PID/fd/N, is a symlink followed only for that pid; a file it maps is
 * accepted only if no other process maps it, and never resized under it;
 * and the pages land in the VMM's memory.
 */
static void test_restore_into_vmm(void **state)
{
	char *dir = mrs_test_tmpdir(), ram[512], image[512], shared[512];
	uint8_t *data = malloc(MIB), *back = malloc(MIB);
	struct mrs_ram src = {.name = "pc.ram", .path = ram};
	struct mrs_error err = {0};
	struct vmm v, big, other;
	int fd;

	(void)state;
	if (!mrs_test_have_io_uring())
		skip();
	snprintf(ram, sizeof(ram), "%s/guest.ram", dir);
	snprintf(image, sizeof(image), "%s/vm.img", dir);
	snprintf(shared, sizeof(shared), "%s/shared.ram", dir);
	mrs_test_fill(data, MIB, 7);
	fd = open(ram, O_RDWR | O_CREAT, 0600);
	assert_int_equal(write(fd, data, MIB), MIB);
	close(fd);
	assert_int_equal(mrs_save(image, &src, 1, NULL, NULL, &err), 0);

	vmm_start(&v, MIB, NULL);
	assert_int_equal(restore_into(image, v.path, 0, &err), -ELOOP);
	/* A process's descriptor: named with its pid, and --qmp suggested, not --force alone. */
	{
		char who[64];

		snprintf(who, sizeof(who), "a descriptor of pid %d (", (int)v.pid);
		assert_msg_has(&err, who);
		assert_msg_has(&err, "restore with --qmp");
	}
	assert_int_equal(restore_into(image, v.path, getpid(), &err), -ELOOP);
	assert_int_equal(restore_into(image, v.path, v.pid, &err), 0);
	fd = open(v.path, O_RDONLY);
	assert_int_equal(pread(fd, back, MIB, 0), MIB);
	close(fd);
	assert_memory_equal(back, data, MIB);
	vmm_stop(&v);

	vmm_start(&big, 2 * MIB, NULL);
	assert_int_equal(restore_into(image, big.path, big.pid, &err), -EINVAL);
	assert_msg_has(&err, "would lose its memory if it were resized");
	vmm_stop(&big);

	/* A file the VMM maps, and so does another process. */
	fd = open(shared, O_RDWR | O_CREAT, 0600);
	assert_int_equal(ftruncate(fd, MIB), 0);
	close(fd);
	vmm_start(&v, MIB, shared);
	assert_int_equal(restore_into(image, shared, v.pid, &err), 0);
	vmm_start(&other, MIB, shared);
	assert_int_equal(restore_into(image, shared, v.pid, &err), -EBUSY);
	assert_msg_has(&err, "not only of the VMM");
	assert_msg_has(&err, "give the new VMM its own mem-path");
	vmm_stop(&other);
	vmm_stop(&v);
	free(data);
	free(back);
	mrs_test_tmpdir_remove(dir);
}

/*
 * Catches vmm_pid's symlink relaxation reaching past the VMM's RAM: a
 * descriptor /proc/PID/fd/N of the VMM that it does not map (its disk
 * image, say, named by mistake) must be refused, neither resized nor
 * written, whatever its size.
 */
static void test_restore_vmm_fd_not_ram(void **state)
{
	char *dir = mrs_test_tmpdir(), ram[512], image[512], disk[512];
	uint8_t *data = malloc(MIB), *back = malloc(2 * MIB), *before = malloc(2 * MIB);
	struct mrs_ram src = {.name = "pc.ram", .path = ram};
	uint64_t sizes[] = {MIB, 2 * MIB};
	struct mrs_error err = {0};
	struct stat st;
	struct vmm v;
	int fd;

	(void)state;
	if (!mrs_test_have_io_uring())
		skip();
	snprintf(ram, sizeof(ram), "%s/guest.ram", dir);
	snprintf(image, sizeof(image), "%s/vm.img", dir);
	snprintf(disk, sizeof(disk), "%s/disk.img", dir);
	mrs_test_fill(data, MIB, 7);
	mrs_test_fill(before, 2 * MIB, 9);
	fd = open(ram, O_RDWR | O_CREAT, 0600);
	assert_int_equal(write(fd, data, MIB), MIB);
	close(fd);
	assert_int_equal(mrs_save(image, &src, 1, NULL, NULL, &err), 0);
	for (unsigned i = 0; i < 2; i++) {
		fd = open(disk, O_RDWR | O_CREAT | O_TRUNC, 0600);
		assert_int_equal(write(fd, before, sizes[i]), (ssize_t)sizes[i]);
		close(fd);
		vmm_start_as(&v, sizes[i], disk, false);
		assert_int_equal(restore_into(image, v.path, v.pid, &err), -EINVAL);
		assert_msg_has(&err, "does not map");
		vmm_stop(&v);
		assert_int_equal(stat(disk, &st), 0);
		assert_int_equal(st.st_size, sizes[i]);
		fd = open(disk, O_RDONLY);
		assert_int_equal(pread(fd, back, sizes[i], 0), (ssize_t)sizes[i]);
		close(fd);
		assert_memory_equal(back, before, sizes[i]);
	}
	free(data);
	free(back);
	free(before);
	mrs_test_tmpdir_remove(dir);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_backends_file_and_memfd),
	    cmocka_unit_test(test_long_backend_id),
	    cmocka_unit_test(test_relative_mem_path),
	    cmocka_unit_test(test_backend_not_shared),
	    cmocka_unit_test(test_memfd_ambiguous),
	    cmocka_unit_test(test_incoming_checks),
	    cmocka_unit_test(test_freeze_stop_cont),
	    cmocka_unit_test(test_stop_refused),
	    cmocka_unit_test(test_migrate_refused),
	    cmocka_unit_test(test_backend_not_machine_ram),
	    cmocka_unit_test(test_source_inmigrate),
	    cmocka_unit_test(test_load_failed),
	    cmocka_unit_test(test_qemu_exits_during_load),
	    cmocka_unit_test(test_ram_must_be_mapped),
	    cmocka_unit_test(test_capabilities_already_on),
	    cmocka_unit_test(test_close_mid_command),
	    cmocka_unit_test(test_timeout),
	    cmocka_unit_test(test_stop_timeout_then_cont),
	    cmocka_unit_test(test_devstate_finish),
	    cmocka_unit_test(test_restore_into_vmm),
	    cmocka_unit_test(test_restore_vmm_fd_not_ram),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
