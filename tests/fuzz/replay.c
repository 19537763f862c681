/* Runs a fuzz target over every file of its corpus directories, so `make
 * test` replays the corpus (seeds and every crash found, kept as regression
 * inputs) without libFuzzer. Prints "ok NAME: N inputs" and exits 0 only
 * when every file was read and replayed: a corpus file that cannot be read,
 * or a directory with no inputs, is a failure, never a silent pass (a
 * crash input that is skipped is a regression test that no longer runs). */
#include <dirent.h>
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

int LLVMFuzzerTestOneInput(const unsigned char *data, size_t size);

/* libFuzzer runs with -max_len=4096 (tools/fuzz.sh); this is far above it */
#define REPLAY_MAX_INPUT (1u << 20)

static const char *name;
static int failures;

__attribute__((format(printf, 1, 2))) static void fail(const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	printf("not ok %s: ", name);
	vprintf(fmt, ap);
	printf("\n");
	va_end(ap);
	failures++;
}

/* Replays one file; returns 1 when it was replayed. */
static int replay_file(const char *path)
{
	FILE *f = fopen(path, "rb");
	if (!f) {
		fail("cannot read %s: %s", path, strerror(errno));
		return 0;
	}
	unsigned char *buf = malloc(REPLAY_MAX_INPUT + 1);
	if (!buf) {
		fail("cannot read %s: %s", path, strerror(ENOMEM));
		fclose(f);
		return 0;
	}
	size_t len = fread(buf, 1, REPLAY_MAX_INPUT + 1, f);
	int is_error = ferror(f);
	int saved = errno;
	fclose(f);
	if (is_error) {
		fail("cannot read %s: %s", path, strerror(saved ? saved : EIO));
		free(buf);
		return 0;
	}
	if (len > REPLAY_MAX_INPUT) {
		fail("cannot read %s: larger than 1 MiB", path);
		free(buf);
		return 0;
	}
	LLVMFuzzerTestOneInput(buf, len);
	free(buf);
	return 1;
}

int main(int argc, char **argv)
{
	size_t total = 0;
	name = strrchr(argv[0], '/') ? strrchr(argv[0], '/') + 1 : argv[0];
#ifdef KG_FUZZ_CORPUS
	char *fallback[] = { argv[0], KG_FUZZ_CORPUS, NULL };
	if (argc < 2) {
		argc = 2;
		argv = fallback;
	}
#endif
	if (argc < 2)
		fail("no corpus directory given");
	for (int i = 1; i < argc; i++) {
		DIR *d = opendir(argv[i]);
		if (!d) {
			fail("cannot open corpus %s: %s", argv[i], strerror(errno));
			continue;
		}
		size_t n = 0;
		struct dirent *e;
		for (errno = 0; (e = readdir(d)); errno = 0) {
			char path[4096];
			if (e->d_name[0] == '.')
				continue;
			int m = snprintf(path, sizeof(path), "%s/%s", argv[i], e->d_name);
			if (m < 0 || (size_t)m >= sizeof(path)) {
				fail("cannot read %s/%s: path too long", argv[i], e->d_name);
				continue;
			}
			n += (size_t)replay_file(path);
		}
		if (errno)
			fail("cannot list corpus %s: %s", argv[i], strerror(errno));
		closedir(d);
		if (n == 0)
			fail("corpus %s has no inputs", argv[i]);
		total += n;
	}
	if (failures) {
		printf("# 0 passed, %d failed\n", failures);
		return 1;
	}
	printf("ok %s: %zu corpus inputs replayed\n# 1 passed, 0 failed\n", name, total);
	return 0;
}
