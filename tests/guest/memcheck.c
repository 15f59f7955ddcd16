/* The init of the end-to-end tests' Linux guest (tests/qemu/e2e.sh): it
 * keeps rewriting a large buffer and checks every page of it against its own
 * record, printing one line a pass on the serial console:
 *
 *   memcheck ready 40960 pages
 *   memcheck pass 17 ok 40960
 *   memcheck pass 18 BAD 123 of 40960
 *
 * Built static (gcc -static, glibc's libc.a from libc6-dev) and packed alone
 * into an initramfs as /init. The buffer's size comes from the kernel command
 * line: the kernel hands unknown key=value parameters to init's environment
 * (memcheck_mb=160; default 64).
 *
 * A pass goes page by page: check the page against what the previous pass
 * left (its record names that pass, its words are what that pass writes
 * there, its checksum matches), rewrite it with content derived from (pass,
 * page), then write its record (the pass and the checksum of what was
 * written). The guest never stops writing: there is no quiet phase in which
 * a snapshot that lost the pages written just before the guest was stopped
 * would still be right. Wherever in a pass the guest resumes, the pages ahead
 * of it are checked in that pass and the ones behind it in the next: two
 * lines after a restore, every page was checked.
 *
 * Why RAM copied while the guest ran is caught, restored under the CPU state
 * of a later moment: a page of the buffer copied a whole pass before that
 * moment holds content from an older pass than the one the CPU goes on with,
 * and its record (wherever it was copied from) either names that older pass
 * or has the newer checksum: either way its next check fails. A page whose
 * content and record were copied on either side of its rewrite fails too.
 * A restore that is exactly the state of one moment passes every check, even
 * when it lands in the middle of a pass or of a page. */
#include <fcntl.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/mount.h>
#include <sys/stat.h>
#include <unistd.h>

#define PAGE  4096u
#define WORDS (PAGE / sizeof(uint64_t))

struct record {
	uint64_t pass;
	uint64_t sum;
};

static int console = 2;

__attribute__((format(printf, 1, 2))) static void say(const char *fmt, ...)
{
	char line[160];
	va_list ap;
	int n;

	va_start(ap, fmt);
	n = vsnprintf(line, sizeof(line), fmt, ap);
	va_end(ap);

	if (n > 0 && write(console, line, (size_t)n) < 0)
		_exit(1);
}

/* Where the serial console is: devtmpfs gives /dev/ttyS0; /dev/console is the
 * kernel's console= device. */
static void open_console(void)
{
	int fd;

	mkdir("/dev", 0755);
	mount("devtmpfs", "/dev", "devtmpfs", 0, NULL);
	fd = open("/dev/ttyS0", O_WRONLY | O_NOCTTY);
	if (fd < 0)
		fd = open("/dev/console", O_WRONLY | O_NOCTTY);
	if (fd >= 0)
		console = fd;
}

/* The first word of a page in a pass: distinct for every (pass, page), so a
 * page from another pass or another place never matches. */
static uint64_t page_seed(uint64_t pass, uint64_t page)
{
	uint64_t x = (pass << 32 ^ page) * 0x9e3779b97f4a7c15ull;

	return x ^ x >> 29;
}

/* Fill one page for this pass and return the checksum of what was written. */
static uint64_t write_page(uint64_t *p, uint64_t seed)
{
	uint64_t sum = 0;

	for (unsigned w = 0; w < WORDS; w++) {
		uint64_t v = seed + w * 0xbf58476d1ce4e5b9ull;

		p[w] = v;
		sum = (sum ^ v) * 0x100000001b3ull;
	}
	return sum;
}

/* Whether a page holds what this pass wrote and what its record says. */
static int page_good(const uint64_t *p, const struct record *r, uint64_t pass, uint64_t seed)
{
	uint64_t sum = 0;
	int same = 1;

	for (unsigned w = 0; w < WORDS; w++) {
		uint64_t v = p[w];

		same &= v == seed + w * 0xbf58476d1ce4e5b9ull;
		sum = (sum ^ v) * 0x100000001b3ull;
	}
	return same && r->pass == pass && r->sum == sum;
}

/* Where the buffer is in guest RAM, for a test that changes some of it
 * from outside: "memcheck frames FIRST COUNT" for the first runs of pages
 * that fill a range of page frames (the kernel hands them out in ascending or
 * descending order; a frame's byte offset in the RAM of a guest under 3 GiB
 * is FIRST * 4096), from /proc/self/pagemap. */
#define FRAME_RUNS 16
static void print_frames(const uint64_t *buf, unsigned long pages)
{
	int fd = open("/proc/self/pagemap", O_RDONLY);
	uint64_t lo = 0, hi = 0;
	unsigned runs = 0;

	if (fd < 0) {
		mkdir("/proc", 0555);
		mount("proc", "/proc", "proc", 0, NULL);
		fd = open("/proc/self/pagemap", O_RDONLY);
	}
	for (unsigned long i = 0; fd >= 0 && i < pages && runs < FRAME_RUNS; i++) {
		uint64_t e, pfn;
		off_t at = (off_t)((uintptr_t)(buf + i * WORDS) / PAGE * sizeof(e));

		if (pread(fd, &e, sizeof(e), at) != sizeof(e) || !(e >> 63))
			break;
		pfn = e & ((1ull << 55) - 1);
		if (i && (pfn == hi + 1 || pfn + 1 == lo)) {
			lo = pfn < lo ? pfn : lo;
			hi = pfn > hi ? pfn : hi;
			continue;
		}
		if (i) {
			say("memcheck frames %llu %llu\n", (unsigned long long)lo,
			    (unsigned long long)(hi - lo + 1));
			runs++;
		}
		lo = hi = pfn;
	}
	if (pages && runs < FRAME_RUNS && fd >= 0)
		say("memcheck frames %llu %llu\n", (unsigned long long)lo,
		    (unsigned long long)(hi - lo + 1));
	if (fd >= 0)
		close(fd);
}

static unsigned long buffer_mb(void)
{
	const char *s = getenv("memcheck_mb");
	unsigned long mb = s ? strtoul(s, NULL, 10) : 0;

	return mb ? mb : 64;
}

int main(void)
{
	unsigned long mb, pages;
	uint64_t *buf;
	struct record *rec;

	open_console();
	mb = buffer_mb();
	pages = mb * (1024 * 1024 / PAGE);
	buf = mmap(NULL, pages * PAGE, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	rec = calloc(pages, sizeof(*rec));
	/* Small pages, present and locked: where each page of the buffer is
	 * in guest RAM stays what print_frames says (no huge page collapses
	 * it elsewhere, no swap). */
	if (buf == MAP_FAILED || !rec || madvise(buf, pages * PAGE, MADV_NOHUGEPAGE) < 0 ||
	    mlock(buf, pages * PAGE) < 0) {
		say("memcheck cannot allocate %lu MiB\n", mb);
		for (;;)
			pause();
	}
	print_frames(buf, pages);
	say("memcheck ready %lu pages\n", pages);
	for (uint64_t pass = 1;; pass++) {
		unsigned long bad = 0;

		for (unsigned long i = 0; i < pages; i++) {
			uint64_t *page = buf + i * WORDS;
			uint64_t sum;

			/* Pass 1 finds the buffer as the kernel gave it. */
			if (pass > 1)
				bad += !page_good(page, &rec[i], pass - 1, page_seed(pass - 1, i));
			sum = write_page(page, page_seed(pass, i));
			/* The record after its page: a copy that has the new
			 * record has the new page only if it was consistent. */
			__atomic_store_n(&rec[i].sum, sum, __ATOMIC_RELEASE);
			__atomic_store_n(&rec[i].pass, pass, __ATOMIC_RELEASE);
		}
		if (bad)
			say("memcheck pass %llu BAD %lu of %lu\n", (unsigned long long)pass, bad,
			    pages);
		else
			say("memcheck pass %llu ok %lu\n", (unsigned long long)pass, pages);
	}
}
