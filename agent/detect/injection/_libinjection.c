/*
 * lappguard's binding to libinjection (vendored, BSD-3-Clause, see libinjection/COPYING).
 *
 * Two functions, no token objects: the detector needs a verdict per value, called
 * thousands of times a second, so the per-call work is one struct on the C stack.
 *
 *   sqli(data: bytes, double_quotes: bool = False) -> str | None
 *       libinjection_is_sqli() with its MySQL-only double-quote context made optional
 *       (PostgreSQL quotes identifiers with "): the fingerprint when data is SQLi.
 *   is_xss(data: bytes) -> bool
 *       libinjection_xss(): script found in any of its five HTML contexts.
 *
 * Only exact bytes objects are accepted: CPython keeps a NUL after their content, and
 * libinjection 3.9.2's HTML5 tokenizer may read the byte at s[len] before its bounds test
 * (h5_state_tag_open); with bytes that read stays inside the object.
 */
#define PY_SSIZE_T_CLEAN
#include <Python.h>

#include "libinjection.h"
#include "libinjection_sqli.h"

/* The contexts libinjection_is_sqli() tries, in its order. */
static int try_context(struct libinjection_sqli_state *state, int flags)
{
    libinjection_sqli_fingerprint(state, flags);
    return libinjection_sqli_check_fingerprint(state);
}

static int try_with_mysql_comments(struct libinjection_sqli_state *state, int quote)
{
    if (try_context(state, quote | FLAG_SQL_ANSI)) {
        return 1;
    }
    /* ANSI reads "--x" and "#" differently from MySQL: re-parse when they occurred. */
    if (state->stats_comment_ddx || state->stats_comment_hash) {
        return try_context(state, quote | FLAG_SQL_MYSQL);
    }
    return 0;
}

static PyObject *py_sqli(PyObject *self, PyObject *args, PyObject *kwargs)
{
    static char *keywords[] = {"data", "double_quotes", NULL};
    PyObject *data;
    int double_quotes = 0;
    const char *s;
    size_t len;
    struct libinjection_sqli_state state;
    int found;

    (void)self;
    if (!PyArg_ParseTupleAndKeywords(args, kwargs, "O!|p:sqli", keywords, &PyBytes_Type, &data,
                                     &double_quotes)) {
        return NULL;
    }
    s = PyBytes_AS_STRING(data);
    len = (size_t)PyBytes_GET_SIZE(data);
    if (len == 0) {
        Py_RETURN_NONE;
    }
    libinjection_sqli_init(&state, s, len, 0);
    found = try_with_mysql_comments(&state, FLAG_QUOTE_NONE);
    if (!found && memchr(s, '\'', len) != NULL) {
        found = try_with_mysql_comments(&state, FLAG_QUOTE_SINGLE);
    }
    if (!found && double_quotes && memchr(s, '"', len) != NULL) {
        found = try_context(&state, FLAG_QUOTE_DOUBLE | FLAG_SQL_MYSQL);
    }
    if (!found) {
        Py_RETURN_NONE;
    }
    return PyUnicode_DecodeASCII(state.fingerprint, (Py_ssize_t)strlen(state.fingerprint),
                                 "replace");
}

static PyObject *py_is_xss(PyObject *self, PyObject *data)
{
    (void)self;
    if (!PyBytes_CheckExact(data)) {
        PyErr_Format(PyExc_TypeError, "is_xss() argument must be bytes, not %.100s",
                     Py_TYPE(data)->tp_name);
        return NULL;
    }
    if (PyBytes_GET_SIZE(data) == 0) {
        Py_RETURN_FALSE;
    }
    return PyBool_FromLong(
        libinjection_xss(PyBytes_AS_STRING(data), (size_t)PyBytes_GET_SIZE(data)));
}

static PyMethodDef methods[] = {
    {"sqli", (PyCFunction)(void (*)(void))py_sqli, METH_VARARGS | METH_KEYWORDS,
     "sqli(data, double_quotes=False)\n--\n\n"
     "libinjection's fingerprint (e.g. 's&sos') when data is SQL injection, else None."},
    {"is_xss", py_is_xss, METH_O,
     "is_xss(data)\n--\n\nWhether libinjection's HTML5 tokenizer finds script in data."},
    {NULL, NULL, 0, NULL},
};

static struct PyModuleDef module = {
    PyModuleDef_HEAD_INIT,
    "_libinjection",
    "libinjection 3.9.2 (vendored): SQLi fingerprints and XSS verdicts.",
    -1,
    methods,
    NULL,
    NULL,
    NULL,
    NULL,
};

PyMODINIT_FUNC PyInit__libinjection(void)
{
    PyObject *m = PyModule_Create(&module);
    if (m == NULL) {
        return NULL;
    }
    if (PyModule_AddStringConstant(m, "VERSION", libinjection_version()) < 0) {
        Py_DECREF(m);
        return NULL;
    }
    return m;
}
