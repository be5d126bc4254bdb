/* Shared by the parts of tickstream.feeds._fastwire: the canonical types handed over by setup(),
 * byte readers and the object builders. See _fastwire.c for what the module does. */
#ifndef TICKSTREAM_FASTWIRE_H
#define TICKSTREAM_FASTWIRE_H

#define PY_SSIZE_T_CLEAN
#include <Python.h>
#include <stdint.h>
#include <string.h>

#define TS_MIN_S 946684800ULL  /* 2000-01-01T00:00:00Z, as wire_common.TS_MIN_S */
#define TS_MAX_S 4102444800ULL /* 2100-01-01T00:00:00Z, as wire_common.TS_MAX_S */
#define NS_PER_S 1000000000LL
#define KITE_NAMES 28
#define KITE_QUOTE_NAMES 19
#define ANGEL_NAMES 31

/* Defined in _fastwire.c, set by setup(). */
extern PyObject *Tick, *Depth, *DepthLevel, *ModeFull, *ModeQuote, *Segments;
extern PyObject *KiteFullNames, *KiteQuoteNames;
extern PyObject *AngelTypes, *Indices, *AngelSnapNames;

/* The entry points, METH_FASTCALL. */
PyObject *kite_frame(PyObject *self, PyObject *const *args, Py_ssize_t nargs);
PyObject *angel_snap_quote(PyObject *self, PyObject *const *args, Py_ssize_t nargs);

/* The first level kept on a side: the Tick's bid/ask and their quantities. */
typedef struct {
    int present;
    double price;
    unsigned long long qty;
} Best;


static inline uint32_t be32(const unsigned char *p) {
    return ((uint32_t)p[0] << 24) | ((uint32_t)p[1] << 16) | ((uint32_t)p[2] << 8) | p[3];
}
static inline uint16_t be16(const unsigned char *p) { return (uint16_t)((p[0] << 8) | p[1]); }
static inline int ts_ok(uint64_t s) { return s == 0 || (s >= TS_MIN_S && s < TS_MAX_S); }

/* Steals every reference in items[0..n) (also on failure). */
static inline PyObject *tuple_steal(PyObject **items, Py_ssize_t n) {
    PyObject *t = PyTuple_New(n);
    if (t == NULL) {
        for (Py_ssize_t i = 0; i < n; i++) Py_XDECREF(items[i]);
        return NULL;
    }
    for (Py_ssize_t i = 0; i < n; i++) {
        if (items[i] == NULL) { /* a failed allocation earlier: drop the rest */
            for (Py_ssize_t j = i + 1; j < n; j++) Py_XDECREF(items[j]);
            Py_DECREF(t);
            return NULL;
        }
        PyTuple_SET_ITEM(t, i, items[i]);
    }
    return t;
}

static inline PyObject *level(double price, unsigned long long qty, PyObject *orders) {
    PyObject *args[3] = {PyFloat_FromDouble(price), PyLong_FromUnsignedLongLong(qty), orders};
    if (args[0] == NULL || args[1] == NULL || args[2] == NULL) {
        Py_XDECREF(args[0]); Py_XDECREF(args[1]); Py_XDECREF(args[2]);
        return NULL;
    }
    PyObject *lv = PyObject_Vectorcall(DepthLevel, args, 3, NULL);
    Py_DECREF(args[0]); Py_DECREF(args[1]); Py_DECREF(args[2]);
    return lv;
}

static inline PyObject *depth(PyObject *bids, PyObject *asks) {
    if (bids == NULL || asks == NULL) {
        Py_XDECREF(bids); Py_XDECREF(asks);
        return NULL;
    }
    PyObject *args[2] = {bids, asks};
    PyObject *d = PyObject_Vectorcall(Depth, args, 2, NULL);
    Py_DECREF(bids); Py_DECREF(asks);
    return d;
}

/* symbol = resolve(exchange, token) or str(token) */
static inline PyObject *symbol(PyObject *resolve, PyObject *exchange, PyObject *token) {
    if (resolve != Py_None) {
        PyObject *args[2] = {exchange, token};
        PyObject *s = PyObject_Vectorcall(resolve, args, 2, NULL);
        if (s == NULL) return NULL;
        if (s != Py_None) return s;
        Py_DECREF(s);
    }
    return PyObject_Str(token);
}

static inline PyObject *opt_float(int present, double v) {
    if (!present) Py_RETURN_NONE;
    return PyFloat_FromDouble(v);
}

static inline PyObject *opt_uint(int present, unsigned long long v) {
    if (!present) Py_RETURN_NONE;
    return PyLong_FromUnsignedLongLong(v);
}

/* Calls Tick(**dict(zip(names, values))) and releases values[0..n). */
static inline PyObject *make_tick(PyObject **values, Py_ssize_t n, PyObject *names) {
    for (Py_ssize_t i = 0; i < n; i++) {
        if (values[i] == NULL) {
            for (Py_ssize_t j = 0; j < n; j++) Py_XDECREF(values[j]);
            return NULL;
        }
    }
    PyObject *tick = PyObject_Vectorcall(Tick, values, 0, names);
    for (Py_ssize_t i = 0; i < n; i++) Py_DECREF(values[i]);
    return tick;
}

static inline int64_t le64(const unsigned char *p) {
    uint64_t v = 0;
    for (int i = 7; i >= 0; i--) v = (v << 8) | p[i];
    return (int64_t)v;
}
static inline uint16_t le16(const unsigned char *p) { return (uint16_t)(p[0] | (p[1] << 8)); }
static inline double lef64(const unsigned char *p) {
    uint64_t bits = (uint64_t)le64(p);
    double d;
    memcpy(&d, &bits, sizeof d);
    return d;
}

/* Checks shared by the entry points: the argument shape and that setup() ran. */
static inline int entry_ok(const char *name, PyObject *const *args, Py_ssize_t nargs) {
    if (nargs != 4 || !PyBytes_Check(args[0])) {
        PyErr_Format(PyExc_TypeError, "%s(data: bytes, ts_recv, resolve, source)", name);
        return 0;
    }
    if (Tick == NULL) {
        PyErr_SetString(PyExc_RuntimeError, "_fastwire.setup() was not called");
        return 0;
    }
    return 1;
}

#endif
