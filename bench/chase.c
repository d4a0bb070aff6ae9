/*
 * chase.c: the cost of a dependent random load over a working set of
 * BYTES, in ns (a pointer chase over 64-byte lines in random order, 20
 * million loads), to tell the memory hierarchy's share of an operation's
 * growth with the cache on a machine without hardware counters (README,
 * "Cost against the cache's size").  With a second argument "huge" the
 * working set is a MAP_HUGETLB mapping of 2 MB pages (vm.nr_hugepages must
 * leave enough free), as PostgreSQL's shared memory is with huge_pages = on.
 *
 * Usage: gcc -O2 -o /tmp/chase bench/chase.c && for b in 65536 4194304 367001600; do /tmp/chase $b; /tmp/chase $b huge; done
 */
#include <stdio.h>
#include <stdlib.h>
#include <stdint.h>
#include <string.h>
#include <time.h>
#include <sys/mman.h>
int main(int argc, char **argv)
{
	size_t bytes = strtoull(argv[1], NULL, 10);
	int huge = argc > 2 && strcmp(argv[2], "huge") == 0;
	size_t len = (bytes + (2 << 20) - 1) & ~((size_t) (2 << 20) - 1);
	size_t n = bytes / 64, i;
	size_t *a = mmap(NULL, len, PROT_READ | PROT_WRITE,
					 MAP_SHARED | MAP_ANONYMOUS | (huge ? MAP_HUGETLB : 0), -1, 0);
	size_t *perm = malloc(n * sizeof(size_t));
	struct timespec t0, t1;
	size_t p = 0, steps = 20000000;
	if (a == MAP_FAILED) { perror("mmap"); return 1; }
	for (i = 0; i < n; i++) perm[i] = i;
	srand(1);
	for (i = n - 1; i > 0; i--) { size_t j = ((size_t) rand() << 16 ^ rand()) % (i + 1), t = perm[i]; perm[i] = perm[j]; perm[j] = t; }
	for (i = 0; i < n; i++) a[perm[i] * 8] = perm[(i + 1) % n] * 8;
	for (i = 0; i < n; i++) p = a[p];
	clock_gettime(CLOCK_MONOTONIC, &t0);
	for (i = 0; i < steps; i++) p = a[p];
	clock_gettime(CLOCK_MONOTONIC, &t1);
	printf("%zu bytes%s: %.1f ns per dependent load (%zu)\n", bytes, huge ? " (2 MB pages)" : "",
		   ((t1.tv_sec - t0.tv_sec) * 1e9 + (t1.tv_nsec - t0.tv_nsec)) / steps, p % 2);
	return 0;
}
