/*-------------------------------------------------------------------------
 *
 * dsa_classes.h
 *		How much memory the DSA allocator really takes for a request.
 *
 * Borrowed from PostgreSQL 15's src/backend/utils/mmgr/dsa.c, where the
 * table is static: requests up to 8 kB are served from superblocks of
 * fixed size classes, larger ones from whole 4 kB pages.  qcache charges
 * each entry what the allocator takes, so that bytes_used tells how full
 * the area is.  Keep it in step with dsa.c when supporting a new major
 * version (it has not changed from 10 to 17).
 *
 * Portions Copyright (c) 1996-2022, PostgreSQL Global Development Group
 *
 *-------------------------------------------------------------------------
 */
#ifndef QCACHE_DSA_CLASSES_H
#define QCACHE_DSA_CLASSES_H

/* dsa.c's dsa_size_classes, without its two special classes. */
static const uint16 qc_dsa_size_classes[] = {
	8, 16, 24, 32, 40, 48, 56, 64,	/* 8 classes separated by 8 bytes */
	80, 96, 112, 128,			/* 4 classes separated by 16 bytes */
	160, 192, 224, 256,			/* 4 classes separated by 32 bytes */
	320, 384, 448, 512,			/* 4 classes separated by 64 bytes */
	640, 768, 896, 1024,		/* 4 classes separated by 128 bytes */
	1280, 1560, 1816, 2048,		/* 4 classes separated by ~256 bytes */
	2616, 3120, 3640, 4096,		/* 4 classes separated by ~512 bytes */
	5456, 6552, 7280, 8192		/* 4 classes separated by ~1024 bytes */
};

/* dsa.c's FPM_PAGE_SIZE */
#define QC_DSA_PAGE_SIZE		4096

#endif							/* QCACHE_DSA_CLASSES_H */
