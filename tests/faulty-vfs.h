/* SPDX-License-Identifier: MIT */
/*
 * A failing disk for the journal's tests: an SQLite VFS named
 * "evfn-faulty" over SQLite's own that counts fsyncs and fails writes or
 * fsyncs with the errno asked for, as a full or broken disk would. Set
 * fail_writes or fail_syncs to an errno (0: none); faults_clear() ends
 * them. Include after <sqlite3.h> and cmocka.
 */
#ifndef EVFN_TEST_FAULTY_VFS_H
#define EVFN_TEST_FAULTY_VFS_H

#include <errno.h>
#include <stdatomic.h>

#include <sqlite3.h>


static sqlite3_vfs *base_vfs;
static sqlite3_vfs faulty_vfs;
static sqlite3_io_methods faulty_io;
static atomic_int fail_writes, fail_syncs; /* an errno, or 0 */
static atomic_int syncs;
static atomic_int last_errno;

struct faulty_file {
	sqlite3_file base;
	sqlite3_file *real; /* follows this struct */
};

#define REAL(f) (((struct faulty_file *)(void *)(f))->real)

static int
f_close(sqlite3_file *f)
{
	return REAL(f)->pMethods->xClose(REAL(f));
}

static int
f_read(sqlite3_file *f, void *buf, int n, sqlite3_int64 off)
{
	return REAL(f)->pMethods->xRead(REAL(f), buf, n, off);
}

static int
f_write(sqlite3_file *f, const void *buf, int n, sqlite3_int64 off)
{
	int e = atomic_load(&fail_writes);
	if (e) {
		atomic_store(&last_errno, e);
		return e == ENOSPC ? SQLITE_FULL : SQLITE_IOERR_WRITE;
	}
	return REAL(f)->pMethods->xWrite(REAL(f), buf, n, off);
}

static int
f_truncate(sqlite3_file *f, sqlite3_int64 size)
{
	return REAL(f)->pMethods->xTruncate(REAL(f), size);
}

static int
f_sync(sqlite3_file *f, int flags)
{
	atomic_fetch_add(&syncs, 1);
	int e = atomic_load(&fail_syncs);
	if (e) {
		atomic_store(&last_errno, e);
		return SQLITE_IOERR_FSYNC;
	}
	return REAL(f)->pMethods->xSync(REAL(f), flags);
}

static int
f_size(sqlite3_file *f, sqlite3_int64 *size)
{
	return REAL(f)->pMethods->xFileSize(REAL(f), size);
}

static int
f_lock(sqlite3_file *f, int lock)
{
	return REAL(f)->pMethods->xLock(REAL(f), lock);
}

static int
f_unlock(sqlite3_file *f, int lock)
{
	return REAL(f)->pMethods->xUnlock(REAL(f), lock);
}

static int
f_reserved(sqlite3_file *f, int *out)
{
	return REAL(f)->pMethods->xCheckReservedLock(REAL(f), out);
}

static int
f_control(sqlite3_file *f, int op, void *arg)
{
	return REAL(f)->pMethods->xFileControl(REAL(f), op, arg);
}

static int
f_sector(sqlite3_file *f)
{
	return REAL(f)->pMethods->xSectorSize(REAL(f));
}

static int
f_device(sqlite3_file *f)
{
	return REAL(f)->pMethods->xDeviceCharacteristics(REAL(f));
}

static int
v_open(sqlite3_vfs *vfs, const char *name, sqlite3_file *f, int flags,
       int *out_flags)
{
	(void)vfs;
	struct faulty_file *ff = (struct faulty_file *)(void *)f;
	ff->real = (sqlite3_file *)(ff + 1);
	int rc = base_vfs->xOpen(base_vfs, name, ff->real, flags, out_flags);
	/* The journal's lock mode is exclusive: no shared memory. */
	ff->base.pMethods = rc == SQLITE_OK ? &faulty_io : NULL;
	return rc;
}

static int
v_last_error(sqlite3_vfs *vfs, int n, char *buf)
{
	(void)vfs;
	int e = atomic_load(&last_errno);
	return e ? e : base_vfs->xGetLastError(base_vfs, n, buf);
}

static void
faulty_register(void)
{
	if (base_vfs)
		return;
	base_vfs = sqlite3_vfs_find(NULL);
	faulty_io = (sqlite3_io_methods){
		.iVersion = 1, .xClose = f_close, .xRead = f_read,
		.xWrite = f_write, .xTruncate = f_truncate, .xSync = f_sync,
		.xFileSize = f_size, .xLock = f_lock, .xUnlock = f_unlock,
		.xCheckReservedLock = f_reserved, .xFileControl = f_control,
		.xSectorSize = f_sector, .xDeviceCharacteristics = f_device};
	faulty_vfs = *base_vfs;
	faulty_vfs.iVersion = 1;
	faulty_vfs.pNext = NULL;
	faulty_vfs.zName = "evfn-faulty";
	faulty_vfs.szOsFile = (int)sizeof(struct faulty_file) +
	                      base_vfs->szOsFile;
	faulty_vfs.xOpen = v_open;
	faulty_vfs.xGetLastError = v_last_error;
	assert_int_equal(sqlite3_vfs_register(&faulty_vfs, 0), SQLITE_OK);
}

static void
faults_clear(void)
{
	atomic_store(&fail_writes, 0);
	atomic_store(&fail_syncs, 0);
	atomic_store(&last_errno, 0);
}

#endif /* EVFN_TEST_FAULTY_VFS_H */
