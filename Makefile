# qcache: a query result cache in PostgreSQL shared memory.  PGXS build.

MODULE_big = qcache
OBJS = \
	src/qcache.o \
	src/shmem.o \
	src/stats.o \
	src/store.o \
	src/sqlfuncs.o \
	src/fetch.o \
	src/deps.o \
	src/security.o \
	src/flight.o \
	src/nsstats.o \
	src/invalidate.o \
	src/walinval.o \
	src/ddl.o \
	src/worker.o \
	src/redis.o \
	src/redis_conn.o \
	src/redis_debt.o \
	src/redis_worker.o
SHLIB_LINK = -lhiredis

EXTENSION = qcache
DATA = qcache--1.0.sql qcache--1.0--1.1.sql qcache--1.1--1.2.sql qcache--1.2--1.3.sql
PGFILEDESC = "qcache - query result cache in shared memory"

# pg_regress suites (sql/ and expected/), on a temporary instance with
# qcache preloaded; then isolation specs; then TAP tests.
REGRESS = api errors ttl tags config stats eviction isolation_db privileges fetch triggers watch transactional fetch_tags fetch_acl upgrade fetch_json fetch_checked security readthrough guidance readme_examples tag_index write_paths review_options settings_digest
REGRESS_OPTS = --temp-instance=./tmp_check --temp-config=$(srcdir)/test/qcache.conf
ISOLATION = set_get concurrent_set invalidate clear stale_set read_your_writes truncate_cascade explicit_stamp temp_tables revoke_in_transaction set_reasons write_paths lease
ISOLATION_OPTS = --inputdir=$(srcdir)/test/isolation \
	--temp-instance=./tmp_check_iso --temp-config=$(srcdir)/test/qcache.conf
TAP_TESTS = 1
PROVE_TESTS = test/t/*.pl
PROVE_FLAGS = -I ./test/perl

PG_CONFIG ?= pg_config
PGXS := $(shell $(PG_CONFIG) --pgxs)
include $(PGXS)
