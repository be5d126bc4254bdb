/* Kite: frames of full (184-byte) and quote (44-byte) packets. See _fastwire.c. */
#include "_fastwire.h"

#define KITE_FULL 184
#define KITE_QUOTE 44

static double kite_divisor(unsigned seg) {
    return seg == 3 ? 1e7 : (seg == 6 || seg == 12) ? 1e4 : 100.0;
}

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

/* 1 if the quote part (the first 44 bytes, shared by full packets) decodes on the fast path,
 * 0 if the Python decoder must judge the packet. */
static int kite_quote_ok(const unsigned char *p) {
    if (PyTuple_GET_ITEM(Segments, be32(p) & 0xFF) == Py_None) return 0;
    static const int prices[] = {4, 12, 28, 32, 36, 40};
    for (int i = 0; i < 6; i++)
        if ((int32_t)be32(p + prices[i]) < 0) return 0;
    return 1;
}

static int kite_full_ok(const unsigned char *p) {
    if (!kite_quote_ok(p)) return 0;
    for (int k = 0; k < 10; k++)
        if ((int32_t)be32(p + 64 + 12 * k + 4) < 0) return 0;
    return ts_ok(be32(p + 44)) && ts_ok(be32(p + 60));
}

/* Values 0..17 of both name lists (exchange .. change_pct): the part a full packet shares with a
 * quote packet. Takes over ``token``, ``sym`` and ``ts_exchange``. */
static void kite_head(PyObject **v, const unsigned char *p, double div, PyObject *exchange,
                      PyObject *token, PyObject *sym, PyObject *source, PyObject *ts_exchange,
                      PyObject *ts_recv) {
    double last = (int32_t)be32(p + 4) / div, prev = (int32_t)be32(p + 40) / div;
    double change = last - prev;
    PyObject *head[18] = {
        Py_NewRef(exchange), token, sym, Py_NewRef(source), ts_exchange, Py_NewRef(ts_recv),
        PyFloat_FromDouble(last), PyLong_FromUnsignedLong(be32(p + 8)),
        PyFloat_FromDouble((int32_t)be32(p + 12) / div), PyLong_FromUnsignedLong(be32(p + 16)),
        PyLong_FromUnsignedLong(be32(p + 20)), PyLong_FromUnsignedLong(be32(p + 24)),
        PyFloat_FromDouble((int32_t)be32(p + 28) / div),
        PyFloat_FromDouble((int32_t)be32(p + 32) / div),
        PyFloat_FromDouble((int32_t)be32(p + 36) / div), PyFloat_FromDouble(prev),
        opt_float(prev != 0, change), opt_float(prev != 0, change * 100 / prev),
    };
    memcpy(v, head, sizeof head);
}

/* The token and its symbol: what calls into Python first, checked, so that no call is ever made
 * with an exception pending. NULL (with the exception set) on failure. */
static PyObject *kite_token(const unsigned char *p, PyObject *resolve, PyObject **sym) {
    uint32_t itok = be32(p);
    PyObject *token = PyLong_FromUnsignedLong(itok >> 8);
    *sym = token ? symbol(resolve, PyTuple_GET_ITEM(Segments, itok & 0xFF), token) : NULL;
    if (*sym == NULL) {
        Py_XDECREF(token);
        return NULL;
    }
    return token;
}

static PyObject *kite_full_tick(const unsigned char *p, PyObject *ts_recv, PyObject *resolve,
                                PyObject *source) {
    unsigned seg = be32(p) & 0xFF;
    double div = kite_divisor(seg);
    PyObject *sym, *token = kite_token(p, resolve, &sym);
    Best b0, a0;
    PyObject *bids = token ? kite_side(p + 64, div, &b0) : NULL;
    PyObject *asks = bids ? kite_side(p + 124, div, &a0) : NULL;
    PyObject *dep = asks ? depth(bids, asks) : NULL;
    if (dep == NULL) {
        if (asks == NULL) Py_XDECREF(bids);
        if (token != NULL) {
            Py_DECREF(sym);
            Py_DECREF(token);
        }
        return NULL;
    }
    uint32_t ltt = be32(p + 44), ts = be32(p + 60);
    PyObject *v[KITE_NAMES];
    kite_head(v, p, div, PyTuple_GET_ITEM(Segments, seg), token, sym, source,
              ts ? PyLong_FromLongLong((long long)ts * NS_PER_S) : Py_NewRef(ts_recv), ts_recv);
    PyObject *tail[KITE_NAMES - 18] = {
        PyLong_FromUnsignedLong(be32(p + 48)), PyLong_FromUnsignedLong(be32(p + 52)),
        PyLong_FromUnsignedLong(be32(p + 56)),
        ltt ? PyLong_FromLongLong((long long)ltt * NS_PER_S) : Py_NewRef(Py_None),
        opt_float(b0.present, b0.price), opt_uint(b0.present, b0.qty),
        opt_float(a0.present, a0.price), opt_uint(a0.present, a0.qty),
        dep, Py_NewRef(ModeFull),
    };
    memcpy(v + 18, tail, sizeof tail);
    return make_tick(v, KITE_NAMES, KiteFullNames);
}

static PyObject *kite_quote_tick(const unsigned char *p, PyObject *ts_recv, PyObject *resolve,
                                 PyObject *source) {
    unsigned seg = be32(p) & 0xFF;
    PyObject *sym, *token = kite_token(p, resolve, &sym);
    if (token == NULL) return NULL;
    PyObject *v[KITE_QUOTE_NAMES];
    kite_head(v, p, kite_divisor(seg), PyTuple_GET_ITEM(Segments, seg), token, sym, source,
              Py_NewRef(ts_recv), ts_recv);
    v[18] = Py_NewRef(ModeQuote);
    return make_tick(v, KITE_QUOTE_NAMES, KiteQuoteNames);
}

/* kite_frame(frame, ts_recv, resolve, source) -> list[Tick] | None: a frame of well-formed full
 * (184-byte) and quote (44-byte) packets, in any mix; None for anything else. */
PyObject *kite_frame(PyObject *self, PyObject *const *args, Py_ssize_t nargs) {
    if (!entry_ok("kite_frame", args, nargs)) return NULL;
    const unsigned char *f = (const unsigned char *)PyBytes_AS_STRING(args[0]);
    Py_ssize_t size = PyBytes_GET_SIZE(args[0]), pos = 2;
    if (size < 4) Py_RETURN_NONE;
    Py_ssize_t count = be16(f);
    for (Py_ssize_t i = 0; i < count; i++) { /* validate the whole frame first */
        if (pos + 2 > size) Py_RETURN_NONE;
        Py_ssize_t len = be16(f + pos);
        if (pos + 2 + len > size) Py_RETURN_NONE;
        const unsigned char *pk = f + pos + 2;
        if (len == KITE_FULL ? !kite_full_ok(pk) : len != KITE_QUOTE || !kite_quote_ok(pk))
            Py_RETURN_NONE;
        pos += 2 + len;
    }
    if (count == 0 || pos != size) Py_RETURN_NONE;
    PyObject *out = PyList_New(count);
    if (out == NULL) return NULL;
    pos = 2;
    for (Py_ssize_t i = 0; i < count; i++) {
        Py_ssize_t len = be16(f + pos);
        const unsigned char *pk = f + pos + 2;
        PyObject *t = len == KITE_FULL ? kite_full_tick(pk, args[1], args[2], args[3])
                                       : kite_quote_tick(pk, args[1], args[2], args[3]);
        if (t == NULL) {
            Py_DECREF(out);
            return NULL;
        }
        PyList_SET_ITEM(out, i, t);
        pos += 2 + len;
    }
    return out;
}

