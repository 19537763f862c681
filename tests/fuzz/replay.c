/* Runs a fuzz target over every file of its corpus directories, so `make
 * test` replays the corpus (seeds and every crash found, kept as regression
 * inputs) without libFuzzer. Prints "ok NAME: N inputs". */
#include <dirent.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

int LLVMFuzzerTestOneInput(const unsigned char *data, size_t size);

int main(int argc, char **argv)
{
	size_t n = 0;
#ifdef KG_FUZZ_CORPUS
	char *fallback[] = { argv[0], KG_FUZZ_CORPUS, NULL };
	if (argc < 2) {
		argc = 2;
		argv = fallback;
	}
#endif
	for (int i = 1; i < argc; i++) {
		DIR *d = opendir(argv[i]);
		struct dirent *e;
		if (!d) {
			printf("not ok replay: cannot open %s\n", argv[i]);
			return 1;
		}
		while ((e = readdir(d))) {
			char path[4096];
			if (e->d_name[0] == '.')
				continue;
			snprintf(path, sizeof(path), "%s/%s", argv[i], e->d_name);
			FILE *f = fopen(path, "rb");
			if (!f)
				continue;
			unsigned char *buf = malloc(1 << 20);
			size_t len = buf ? fread(buf, 1, 1 << 20, f) : 0;
			fclose(f);
			LLVMFuzzerTestOneInput(buf, len);
			free(buf);
			n++;
		}
		closedir(d);
	}
	printf("ok %s: %zu corpus inputs replayed\n# 1 passed, 0 failed\n", strrchr(argv[0], '/') ? strrchr(argv[0], '/') + 1 : argv[0], n);
	return 0;
}
