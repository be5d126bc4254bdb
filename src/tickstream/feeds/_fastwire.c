/* Native fast path of the broker wire decoders (tickstream.feeds._fastwire).
 *
 * One job: turn a frame of well-formed packets into canonical Tick objects without the
 * interpreter's per-field overhead. Anything that is not the happy path (another packet length,
 * an unknown segment, a negative price, an implausible timestamp, a short frame) makes the
 * function return None, and the pure-Python decoder in kite/wire.py (or angelone/wire.py)
 * decodes the frame instead, with its Reject reasons. So the Python module stays the definition
 * of the mapping; tests check that both paths give equal ticks for any frame.
 *
 * The canonical types (Tick, Depth, DepthLevel) and the constants are handed over once by
 * setup(), so this file knows field names, not classes.
 */
#define PY_SSIZE_T_CLEAN
#include <Python.h>
#include <stdint.h>
#include <string.h>

#define TS_MIN_S 946684800ULL  /* 2000-01-01T00:00:00Z, as wire_common.TS_MIN_S */
#define TS_MAX_S 4102444800ULL /* 2100-01-01T00:00:00Z, as wire_common.TS_MAX_S */
#define NS_PER_S 1000000000LL

static PyObject *Tick, *Depth, *DepthLevel, *ModeFull, *Segments, *KiteFullNames;
static PyObject *AngelTypes, *Indices, *AngelSnapNames;

/* ------------------------------------------------------------------------------ helpers */

static inline uint32_t be32(const unsigned char *p) {
    return ((uint32_t)p[0] << 24) | ((uint32_t)p[1] << 16) | ((uint32_t)p[2] << 8) | p[3];
}
static inline uint16_t be16(const unsigned char *p) { return (uint16_t)((p[0] << 8) | p[1]); }
static inline int ts_ok(uint64_t s) { return s == 0 || (s >= TS_MIN_S && s < TS_MAX_S); }

/* Steals every reference in items[0..n) (also on failure). */
static PyObject *tuple_steal(PyObject **items, Py_ssize_t n) {
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

static PyObject *level(double price, unsigned long long qty, PyObject *orders) {
    PyObject *args[3] = {PyFloat_FromDouble(price), PyLong_FromUnsignedLongLong(qty), orders};
    if (args[0] == NULL || args[1] == NULL || args[2] == NULL) {
        Py_XDECREF(args[0]); Py_XDECREF(args[1]); Py_XDECREF(args[2]);
        return NULL;
    }
    PyObject *lv = PyObject_Vectorcall(DepthLevel, args, 3, NULL);
    Py_DECREF(args[0]); Py_DECREF(args[1]); Py_DECREF(args[2]);
    return lv;
}

static PyObject *depth(PyObject *bids, PyObject *asks) {
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
static PyObject *symbol(PyObject *resolve, PyObject *exchange, PyObject *token) {
    if (resolve != Py_None) {
        PyObject *args[2] = {exchange, token};
        PyObject *s = PyObject_Vectorcall(resolve, args, 2, NULL);
        if (s == NULL) return NULL;
        if (s != Py_None) return s;
        Py_DECREF(s);
    }
    return PyObject_Str(token);
}

static PyObject *opt_float(int present, double v) {
    if (!present) Py_RETURN_NONE;
    return PyFloat_FromDouble(v);
}

static PyObject *opt_uint(int present, unsigned long long v) {
    if (!present) Py_RETURN_NONE;
    return PyLong_FromUnsignedLongLong(v);
}

/* Calls Tick(**dict(zip(names, values))) and releases values[0..n). */
static PyObject *make_tick(PyObject **values, Py_ssize_t n, PyObject *names) {
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

/* --------------------------------------------------------------------------- Kite full */

#define KITE_FULL 184
#define KITE_NAMES 28

static double kite_divisor(unsigned seg) {
    return seg == 3 ? 1e7 : (seg == 6 || seg == 12) ? 1e4 : 100.0;
}

typedef struct {
    int present;
    double price;
    unsigned long long qty;
} Best;

/* Five levels of one side, best first; empty levels (qty and price both 0) dropped. ``best``
 * gets the first level kept (the Tick's bid/ask and their quantities). */
static PyObject *kite_side(const unsigned char *p, double div, Best *best) {
    PyObject *items[5];
    Py_ssize_t n = 0;
    best->present = 0;
    for (int k = 0; k < 5; k++, p += 12) {
        uint32_t qty = be32(p);
        int32_t price = (int32_t)be32(p + 4);
        if (qty == 0 && price == 0) continue;
        if (n == 0) *best = (Best){1, price / div, qty};
        items[n] = level(price / div, qty, PyLong_FromUnsignedLong(be16(p + 8)));
        if (items[n] == NULL) {
            for (Py_ssize_t i = 0; i < n; i++) Py_DECREF(items[i]);
            return NULL;
        }
        n++;
    }
    return tuple_steal(items, n);
}

/* 1 if the packet decodes on the fast path, 0 if the Python decoder must judge it. */
static int kite_full_ok(const unsigned char *p) {
    if (PyTuple_GET_ITEM(Segments, be32(p) & 0xFF) == Py_None) return 0;
    static const int prices[] = {4, 12, 28, 32, 36, 40};
    for (int i = 0; i < 6; i++)
        if ((int32_t)be32(p + prices[i]) < 0) return 0;
    for (int k = 0; k < 10; k++)
        if ((int32_t)be32(p + 64 + 12 * k + 4) < 0) return 0;
    return ts_ok(be32(p + 44)) && ts_ok(be32(p + 60));
}

static PyObject *kite_full_tick(const unsigned char *p, PyObject *ts_recv, PyObject *resolve,
                                PyObject *source) {
    uint32_t itok = be32(p);
    double div = kite_divisor(itok & 0xFF);
    PyObject *exchange = PyTuple_GET_ITEM(Segments, itok & 0xFF);
    /* First what calls into Python (the resolver, the struct types), each checked, so that no
     * call is ever made with an exception pending. */
    PyObject *token = PyLong_FromUnsignedLong(itok >> 8);
    PyObject *sym = token ? symbol(resolve, exchange, token) : NULL;
    Best b0, a0;
    PyObject *bids = sym ? kite_side(p + 64, div, &b0) : NULL;
    PyObject *asks = bids ? kite_side(p + 124, div, &a0) : NULL;
    PyObject *dep = asks ? depth(bids, asks) : NULL;
    if (dep == NULL) {
        if (asks == NULL) Py_XDECREF(bids);
        Py_XDECREF(sym);
        Py_XDECREF(token);
        return NULL;
    }
    double last = (int32_t)be32(p + 4) / div, prev = (int32_t)be32(p + 40) / div;
    double change = last - prev;
    uint32_t ltt = be32(p + 44), ts = be32(p + 60);
    PyObject *v[KITE_NAMES] = {
        Py_NewRef(exchange), token, sym, Py_NewRef(source),
        ts ? PyLong_FromLongLong((long long)ts * NS_PER_S) : Py_NewRef(ts_recv), Py_NewRef(ts_recv),
        PyFloat_FromDouble(last), PyLong_FromUnsignedLong(be32(p + 8)),
        PyFloat_FromDouble((int32_t)be32(p + 12) / div), PyLong_FromUnsignedLong(be32(p + 16)),
        PyLong_FromUnsignedLong(be32(p + 20)), PyLong_FromUnsignedLong(be32(p + 24)),
        PyFloat_FromDouble((int32_t)be32(p + 28) / div),
        PyFloat_FromDouble((int32_t)be32(p + 32) / div),
        PyFloat_FromDouble((int32_t)be32(p + 36) / div), PyFloat_FromDouble(prev),
        opt_float(prev != 0, change), opt_float(prev != 0, change * 100 / prev),
        PyLong_FromUnsignedLong(be32(p + 48)), PyLong_FromUnsignedLong(be32(p + 52)),
        PyLong_FromUnsignedLong(be32(p + 56)),
        ltt ? PyLong_FromLongLong((long long)ltt * NS_PER_S) : Py_NewRef(Py_None),
        opt_float(b0.present, b0.price), opt_uint(b0.present, b0.qty),
        opt_float(a0.present, a0.price), opt_uint(a0.present, a0.qty),
        dep, Py_NewRef(ModeFull),
    };
    return make_tick(v, KITE_NAMES, KiteFullNames);
}

/* kite_full_frame(frame, ts_recv, resolve, source) -> list[Tick] | None */
static PyObject *kite_full_frame(PyObject *self, PyObject *const *args, Py_ssize_t nargs) {
    if (nargs != 4 || !PyBytes_Check(args[0])) {
        PyErr_SetString(PyExc_TypeError, "kite_full_frame(frame: bytes, ts_recv, resolve, source)");
        return NULL;
    }
    if (Tick == NULL) {
        PyErr_SetString(PyExc_RuntimeError, "_fastwire.setup() was not called");
        return NULL;
    }
    const unsigned char *f = (const unsigned char *)PyBytes_AS_STRING(args[0]);
    Py_ssize_t size = PyBytes_GET_SIZE(args[0]);
    if (size < 4) Py_RETURN_NONE;
    Py_ssize_t count = be16(f);
    if (count == 0 || size != 2 + count * (2 + KITE_FULL)) Py_RETURN_NONE;
    for (Py_ssize_t i = 0; i < count; i++) {
        const unsigned char *pk = f + 2 + i * (2 + KITE_FULL);
        if (be16(pk) != KITE_FULL || !kite_full_ok(pk + 2)) Py_RETURN_NONE;
    }
    PyObject *out = PyList_New(count);
    if (out == NULL) return NULL;
    for (Py_ssize_t i = 0; i < count; i++) {
        PyObject *t = kite_full_tick(f + 4 + i * (2 + KITE_FULL), args[1], args[2], args[3]);
        if (t == NULL) {
            Py_DECREF(out);
            return NULL;
        }
        PyList_SET_ITEM(out, i, t);
    }
    return out;
}

/* ------------------------------------------------------------------------ Angel SNAP_QUOTE */

#define ANGEL_SNAP 379
#define ANGEL_NAMES 31
#define ANGEL_BEST5 147
#define ANGEL_INDEX_TOKEN_MIN 99900000LL

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

/* A total buy/sell quantity sent as a double: a whole, finite, non-negative number (< 2^63). */
static int angel_quantity(double v, long long *out) {
    if (!(v >= 0 && v < 9.2e18) || v != (double)(long long)v) return 0;
    *out = (long long)v;
    return 1;
}

/* The token field: ASCII digits up to the first NUL (at most 18 here, so it fits an int64). */
static int angel_token(const unsigned char *p, long long *out) {
    long long t = 0;
    int n = 0;
    for (; n < 25 && p[n] != 0; n++) {
        if (p[n] < '0' || p[n] > '9' || n >= 18) return 0;
        t = t * 10 + (p[n] - '0');
    }
    *out = t;
    return n > 0;
}

typedef struct {
    PyObject *exchange; /* borrowed */
    long long token, ts_ms, ltt, buy, sell;
    double div;
} AngelHead;

/* 1 if the SNAP_QUOTE packet decodes on the fast path, filling ``h``; 0 to hand it back. */
static int angel_snap_ok(const unsigned char *p, AngelHead *h) {
    unsigned et = p[1];
    if (et >= (unsigned)PyTuple_GET_SIZE(AngelTypes)) return 0;
    h->exchange = PyTuple_GET_ITEM(AngelTypes, et);
    if (h->exchange == Py_None || !angel_token(p + 2, &h->token)) return 0;
    if ((et == 1 || et == 3) && h->token >= ANGEL_INDEX_TOKEN_MIN) h->exchange = Indices;
    h->div = et == 13 ? 1e7 : 100.0;
    h->ts_ms = le64(p + 35);
    if (h->ts_ms < 0 || !ts_ok((uint64_t)(h->ts_ms / 1000))) return 0;
    h->ltt = le64(p + 123);
    if (h->ltt < 0 || !ts_ok((uint64_t)h->ltt)) return 0;
    static const int nonneg[] = {43, 51, 59, 67, 91, 99, 107, 115, 131, 347, 355, 363, 371};
    for (size_t i = 0; i < sizeof nonneg / sizeof nonneg[0]; i++)
        if (le64(p + nonneg[i]) < 0) return 0;
    for (int k = 0; k < 10; k++) {
        const unsigned char *lv = p + ANGEL_BEST5 + 20 * k;
        if (le16(lv) > 1 || le64(lv + 2) < 0 || le64(lv + 10) < 0) return 0;
    }
    return angel_quantity(lef64(p + 75), &h->buy) && angel_quantity(lef64(p + 83), &h->sell);
}

/* The best five of both sides: flag 1 -> bids, 0 -> asks, in wire order; empty levels dropped. */
static PyObject *angel_best5(const unsigned char *p, double div, Best *b0, Best *a0,
                             PyObject **asks_out) {
    PyObject *bids[10], *asks[10];
    Py_ssize_t nb = 0, na = 0;
    b0->present = a0->present = 0;
    for (int k = 0; k < 10; k++) {
        const unsigned char *lv = p + ANGEL_BEST5 + 20 * k;
        long long qty = le64(lv + 2), price = le64(lv + 10);
        if (qty == 0 && price == 0) continue;
        int buy = le16(lv) == 1;
        Best *best = buy ? b0 : a0;
        if (!best->present) *best = (Best){1, price / div, (unsigned long long)qty};
        PyObject *item = level(price / div, (unsigned long long)qty,
                               PyLong_FromUnsignedLong(le16(lv + 18)));
        if (item == NULL) {
            for (Py_ssize_t i = 0; i < nb; i++) Py_DECREF(bids[i]);
            for (Py_ssize_t i = 0; i < na; i++) Py_DECREF(asks[i]);
            return NULL;
        }
        if (buy) bids[nb++] = item; else asks[na++] = item;
    }
    PyObject *bt = tuple_steal(bids, nb);
    if (bt == NULL) {
        for (Py_ssize_t i = 0; i < na; i++) Py_DECREF(asks[i]);
        return NULL;
    }
    *asks_out = tuple_steal(asks, na);
    if (*asks_out == NULL) {
        Py_DECREF(bt);
        return NULL;
    }
    return bt;
}

static PyObject *angel_snap_tick(const unsigned char *p, const AngelHead *h, PyObject *ts_recv,
                                 PyObject *resolve, PyObject *source) {
    double div = h->div;
    PyObject *token = PyLong_FromLongLong(h->token);
    PyObject *sym = token ? symbol(resolve, h->exchange, token) : NULL;
    Best b0, a0;
    PyObject *asks = NULL;
    PyObject *bids = sym ? angel_best5(p, div, &b0, &a0, &asks) : NULL;
    PyObject *dep = bids ? depth(bids, asks) : NULL;
    if (dep == NULL) {
        Py_XDECREF(sym);
        Py_XDECREF(token);
        return NULL;
    }
    double last = (double)le64(p + 43) / div, prev = (double)le64(p + 115) / div;
    double change = last - prev;
    PyObject *v[ANGEL_NAMES] = {
        Py_NewRef(h->exchange), token, sym, Py_NewRef(source),
        h->ts_ms ? PyLong_FromLongLong(h->ts_ms * 1000000LL) : Py_NewRef(ts_recv),
        Py_NewRef(ts_recv), PyLong_FromLongLong(le64(p + 27)), PyFloat_FromDouble(last),
        PyLong_FromLongLong(le64(p + 51)), PyFloat_FromDouble((double)le64(p + 59) / div),
        PyLong_FromLongLong(le64(p + 67)), PyLong_FromLongLong(h->buy),
        PyLong_FromLongLong(h->sell), PyFloat_FromDouble((double)le64(p + 91) / div),
        PyFloat_FromDouble((double)le64(p + 99) / div),
        PyFloat_FromDouble((double)le64(p + 107) / div), PyFloat_FromDouble(prev),
        opt_float(prev != 0, change), opt_float(prev != 0, change * 100 / prev),
        h->ltt ? PyLong_FromLongLong(h->ltt * NS_PER_S) : Py_NewRef(Py_None),
        PyLong_FromLongLong(le64(p + 131)), PyFloat_FromDouble((double)le64(p + 347) / div),
        PyFloat_FromDouble((double)le64(p + 355) / div),
        PyFloat_FromDouble((double)le64(p + 363) / div),
        PyFloat_FromDouble((double)le64(p + 371) / div),
        opt_float(b0.present, b0.price), opt_uint(b0.present, b0.qty),
        opt_float(a0.present, a0.price), opt_uint(a0.present, a0.qty),
        dep, Py_NewRef(ModeFull),
    };
    return make_tick(v, ANGEL_NAMES, AngelSnapNames);
}

/* angel_snap_quote(packet, ts_recv, resolve, source) -> Tick | None */
static PyObject *angel_snap_quote(PyObject *self, PyObject *const *args, Py_ssize_t nargs) {
    if (nargs != 4 || !PyBytes_Check(args[0])) {
        PyErr_SetString(PyExc_TypeError,
                        "angel_snap_quote(packet: bytes, ts_recv, resolve, source)");
        return NULL;
    }
    if (Tick == NULL) {
        PyErr_SetString(PyExc_RuntimeError, "_fastwire.setup() was not called");
        return NULL;
    }
    const unsigned char *p = (const unsigned char *)PyBytes_AS_STRING(args[0]);
    AngelHead h;
    if (PyBytes_GET_SIZE(args[0]) != ANGEL_SNAP || p[0] != 3 || !angel_snap_ok(p, &h))
        Py_RETURN_NONE;
    return angel_snap_tick(p, &h, args[1], args[2], args[3]);
}

/* -------------------------------------------------------------------------------- setup */

static PyObject *setup(PyObject *self, PyObject *args) {
    PyObject *tick, *dep, *lvl, *mfull, *segs, *kite_names, *angel_types, *indices, *angel_names;
    if (!PyArg_ParseTuple(args, "OOOOO!O!O!UO!", &tick, &dep, &lvl, &mfull, &PyTuple_Type, &segs,
                          &PyTuple_Type, &kite_names, &PyTuple_Type, &angel_types, &indices,
                          &PyTuple_Type, &angel_names))
        return NULL;
    if (PyTuple_GET_SIZE(segs) != 256 || PyTuple_GET_SIZE(kite_names) != KITE_NAMES ||
        PyTuple_GET_SIZE(angel_names) != ANGEL_NAMES) {
        PyErr_SetString(PyExc_ValueError, "setup: 256 segments, 28 Kite and 31 Angel names");
        return NULL;
    }
    Py_XSETREF(Tick, Py_NewRef(tick));
    Py_XSETREF(Depth, Py_NewRef(dep));
    Py_XSETREF(DepthLevel, Py_NewRef(lvl));
    Py_XSETREF(ModeFull, Py_NewRef(mfull));
    Py_XSETREF(Segments, Py_NewRef(segs));
    Py_XSETREF(KiteFullNames, Py_NewRef(kite_names));
    Py_XSETREF(AngelTypes, Py_NewRef(angel_types));
    Py_XSETREF(Indices, Py_NewRef(indices));
    Py_XSETREF(AngelSnapNames, Py_NewRef(angel_names));
    Py_RETURN_NONE;
}

static PyMethodDef methods[] = {
    {"setup", setup, METH_VARARGS, "Hand over the canonical types and constants (once)."},
    {"kite_full_frame", (PyCFunction)(void (*)(void))kite_full_frame, METH_FASTCALL,
     "kite_full_frame(frame, ts_recv, resolve, source) -> list[Tick] | None"},
    {"angel_snap_quote", (PyCFunction)(void (*)(void))angel_snap_quote, METH_FASTCALL,
     "angel_snap_quote(packet, ts_recv, resolve, source) -> Tick | None"},
    {NULL, NULL, 0, NULL},
};

static struct PyModuleDef module = {
    PyModuleDef_HEAD_INIT, "_fastwire", "Native fast path of the broker wire decoders.", -1,
    methods,
};

PyMODINIT_FUNC PyInit__fastwire(void) { return PyModule_Create(&module); }
