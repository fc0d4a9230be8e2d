/* SPDX-License-Identifier: MIT */
/*
 * Uploads: images renamed into the inbox directory trigger "resize" (a
 * directory watch), which shrinks them with a 4x4 box filter; its
 * on_success destination hands the thumbnail to "publish", which writes it
 * to the outbox and removes the upload. A schedule runs "cleanup" every
 * two seconds to delete old thumbnails. Images are binary PGM (P5), the
 * simplest greyscale format there is.
 */
#include <dirent.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "demo.h"

#define BOX 4               /* thumbnails are 1/BOX of each side */
#define OUTPUT_MAX_AGE_S 2  /* cleanup deletes thumbnails older than this */

/* Parses a P5 header ("P5 <w> <h> <max>", '#' comments allowed) and
 * returns the offset of the pixels, or 0 when it is not one we take. */
static size_t
pgm_parse(const unsigned char *p, size_t len, int *w, int *h)
{
	int v[3], nv = 0;
	size_t i = 2;
	if (len < 2 || p[0] != 'P' || p[1] != '5')
		return 0;
	while (nv < 3 && i < len) {
		if (p[i] == '#') {
			while (i < len && p[i] != '\n')
				i++;
		} else if (p[i] >= '0' && p[i] <= '9') {
			long x = 0;
			while (i < len && p[i] >= '0' && p[i] <= '9' &&
			       x < 65536)
				x = x * 10 + (p[i++] - '0');
			v[nv++] = (int)x;
			continue;
		}
		i++;
	}
	i++; /* the single blank after maxval */
	if (nv < 3 || v[0] < 1 || v[1] < 1 || v[0] > 16384 || v[1] > 16384 ||
	    v[2] != 255 || i > len || len - i < (size_t)v[0] * (size_t)v[1])
		return 0;
	*w = v[0];
	*h = v[1];
	return i;
}

static unsigned char *
read_file(const char *path, size_t *len)
{
	FILE *f = fopen(path, "rb");
	if (!f)
		return NULL;
	unsigned char *buf = NULL;
	long size;
	if (fseek(f, 0, SEEK_END) == 0 && (size = ftell(f)) > 0 &&
	    fseek(f, 0, SEEK_SET) == 0 && (buf = malloc((size_t)size)) &&
	    fread(buf, 1, (size_t)size, f) != (size_t)size) {
		free(buf);
		buf = NULL;
	}
	fclose(f);
	*len = buf ? (size_t)size : 0;
	return buf;
}

/* Writes a file whole under a temporary name, then renames it, so that a
 * reader (or a directory watch) never sees half of it. */
static int
write_file_atomic(const char *dir, const char *name, const void *data,
                  size_t len)
{
	char tmp[256], path[256];
	snprintf(tmp, sizeof(tmp), "%s/.%s.tmp", dir, name);
	snprintf(path, sizeof(path), "%s/%s", dir, name);
	FILE *f = fopen(tmp, "wb");
	if (!f)
		return -1;
	bool ok = fwrite(data, 1, len, f) == len;
	ok &= fclose(f) == 0;
	if (!ok || rename(tmp, path) != 0) {
		unlink(tmp);
		return -1;
	}
	return 0;
}

/* The watch's event: payload = the upload's full path, subject = its
 * name. The response is the thumbnail, carrying the name in a PGM comment
 * because a destination event holds only the response. */
static int
resize(evfn_ctx *ctx, const evfn_event *ev, void *userdata)
{
	size_t plen;
	const char *payload = evfn_event_data(ev, &plen);
	const char *name = evfn_event_subject(ev);
	char path[256];
	if (!payload || !name || plen >= sizeof(path)) {
		evfn_ctx_set_error(ctx, "not an upload event");
		return EVFN_FAIL;
	}
	memcpy(path, payload, plen);
	path[plen] = '\0';

	size_t len;
	unsigned char *in = read_file(path, &len);
	int w, h;
	size_t off = in ? pgm_parse(in, len, &w, &h) : 0;
	if (!off || w < BOX || h < BOX) {
		evfn_ctx_errorf(ctx, "%s: not a PGM image we can shrink", name);
		free(in);
		return EVFN_FAIL; /* the same bytes will fail again */
	}
	int tw = w / BOX, th = h / BOX;
	char head[300];
	int hn = snprintf(head, sizeof(head), "P5\n# %s\n%d %d\n255\n", name,
	                  tw, th);
	size_t outlen = (size_t)hn + (size_t)tw * (size_t)th;
	unsigned char *out = malloc(outlen);
	if (!out) {
		free(in);
		return EVFN_RETRY;
	}
	memcpy(out, head, (size_t)hn);
	const unsigned char *px = in + off;
	for (int y = 0; y < th; y++) {
		for (int x = 0; x < tw; x++) {
			unsigned sum = 0;
			for (int dy = 0; dy < BOX; dy++)
				for (int dx = 0; dx < BOX; dx++)
					sum += px[(size_t)(y * BOX + dy) * w +
					          (size_t)(x * BOX + dx)];
			out[hn + y * tw + x] =
				(unsigned char)(sum / (BOX * BOX));
		}
	}
	int rc = evfn_ctx_respond(ctx, out, outlen);
	free(out);
	free(in);
	return rc == 0 ? EVFN_OK : EVFN_RETRY;
}

/* The destination of "resize": writes the thumbnail and removes the
 * upload it came from. */
static int
publish(evfn_ctx *ctx, const evfn_event *ev, void *userdata)
{
	struct demo *d = userdata;
	size_t len;
	const char *pgm = evfn_event_data(ev, &len);
	char name[128];
	if (!pgm || len < 6 || memcmp(pgm, "P5\n# ", 5) != 0 ||
	    sscanf(pgm + 5, "%127[^\n/]", name) != 1) {
		evfn_ctx_set_error(ctx, "thumbnail without a name");
		return EVFN_FAIL;
	}
	if (write_file_atomic(d->outbox, name, pgm, len) != 0) {
		evfn_ctx_errorf(ctx, "%s: cannot write to the outbox", name);
		return EVFN_RETRY;
	}
	char upload[256];
	snprintf(upload, sizeof(upload), "%s/%s", d->inbox, name);
	unlink(upload);
	atomic_fetch_add(&d->published, 1);
	return EVFN_OK;
}

/* Scheduled: deletes thumbnails older than OUTPUT_MAX_AGE_S. */
static int
cleanup(evfn_ctx *ctx, const evfn_event *ev, void *userdata)
{
	struct demo *d = userdata;
	DIR *dir = opendir(d->outbox);
	if (!dir) {
		evfn_ctx_errorf(ctx, "%s: cannot list", d->outbox);
		return EVFN_RETRY;
	}
	time_t now = time(NULL);
	struct dirent *e;
	struct stat st;
	while ((e = readdir(dir))) {
		if (e->d_name[0] == '.')
			continue; /* ".", "..", and files being written */
		if (fstatat(dirfd(dir), e->d_name, &st, 0) == 0 &&
		    S_ISREG(st.st_mode) &&
		    now - st.st_mtime > OUTPUT_MAX_AGE_S &&
		    unlinkat(dirfd(dir), e->d_name, 0) == 0)
			atomic_fetch_add(&d->cleaned, 1);
	}
	closedir(dir);
	return EVFN_OK;
}

int
demo_uploads_setup(struct demo *d)
{
	evfn_fn_options *o;
	int rc = evfn_fn_options_new(&o);
	if (rc)
		return rc;
	evfn_fn_options_set_destinations(o, "publish", NULL);
	rc = evfn_register(d->rt, "resize", resize, NULL, o, NULL);
	evfn_fn_options_free(o);
	if (rc || (rc = evfn_register(d->rt, "publish", publish, d, NULL,
	                              NULL)) ||
	    (rc = evfn_register(d->rt, "cleanup", cleanup, d, NULL, NULL)))
		return rc;

	/* Triggers deliver to one function each instead of to a topic. */
	evfn_trigger_options *t;
	if ((rc = evfn_trigger_options_new(&t)))
		return rc;
	evfn_trigger_options_set_function(t, "resize");
	rc = evfn_watch_add(d->rt, d->inbox, "*.pgm", "demo.upload", t,
	                    &d->watch);
	if (!rc) {
		evfn_trigger_options_set_function(t, "cleanup");
		rc = evfn_timer_add(d->rt, "@every 2s", NULL, "demo.cleanup",
		                    t, &d->cleanup);
	}
	evfn_trigger_options_free(t);
	return rc;
}

void
demo_uploads_stop(struct demo *d)
{
	evfn_trigger_free(d->watch);
	evfn_trigger_free(d->cleanup);
	d->watch = d->cleanup = NULL;
}
