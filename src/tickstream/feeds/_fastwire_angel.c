/* Angel One: SNAP_QUOTE (379-byte) packets. See _fastwire.c. */
#include "_fastwire.h"

#define ANGEL_SNAP 379
#define ANGEL_BEST5 147
#define ANGEL_INDEX_TOKEN_MIN 99900000LL

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
PyObject *angel_snap_quote(PyObject *self, PyObject *const *args, Py_ssize_t nargs) {
    if (!entry_ok("angel_snap_quote", args, nargs)) return NULL;
    const unsigned char *p = (const unsigned char *)PyBytes_AS_STRING(args[0]);
    AngelHead h;
    if (PyBytes_GET_SIZE(args[0]) != ANGEL_SNAP || p[0] != 3 || !angel_snap_ok(p, &h))
        Py_RETURN_NONE;
    return angel_snap_tick(p, &h, args[1], args[2], args[3]);
}

