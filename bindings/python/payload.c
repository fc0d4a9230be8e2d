/* SPDX-License-Identifier: MIT */
/*
 * Payload encoding shared by Runtime.emit/invoke and Context.emit/respond:
 * bytes-like objects are passed as they are, str as UTF-8, and any other
 * object through json.dumps() (datacontenttype application/json). The bytes
 * stay borrowed from a Python object until evfn has copied them.
 */
#include "evfnpy.h"

int
evfnpy_payload_get(PyObject *obj, struct evfnpy_payload *p)
{
	Py_ssize_t len;
	p->owner = NULL;
	p->has_view = false;
	p->dct = NULL;
	if (obj == NULL || obj == Py_None) {
		p->data = NULL;
		p->len = 0;
		return 0;
	}
	if (PyBytes_Check(obj)) {
		p->data = PyBytes_AS_STRING(obj);
		p->len = (size_t)PyBytes_GET_SIZE(obj);
		return 0;
	}
	if (PyUnicode_Check(obj)) {
		p->data = PyUnicode_AsUTF8AndSize(obj, &len);
		if (!p->data)
			return -1;
		p->len = (size_t)len;
		p->dct = "text/plain; charset=utf-8";
		return 0;
	}
	if (PyObject_CheckBuffer(obj)) {
		if (PyObject_GetBuffer(obj, &p->view, PyBUF_SIMPLE) < 0)
			return -1;
		p->has_view = true;
		p->data = p->view.buf;
		p->len = (size_t)p->view.len;
		return 0;
	}
	p->owner = PyObject_CallOneArg(evfnpy_json_dumps(), obj);
	if (!p->owner)
		return -1;
	p->data = PyUnicode_AsUTF8AndSize(p->owner, &len);
	if (!p->data) {
		Py_CLEAR(p->owner);
		return -1;
	}
	p->len = (size_t)len;
	p->dct = "application/json";
	return 0;
}

void
evfnpy_payload_release(struct evfnpy_payload *p)
{
	if (p->has_view)
		PyBuffer_Release(&p->view);
	p->has_view = false;
	Py_CLEAR(p->owner);
}
